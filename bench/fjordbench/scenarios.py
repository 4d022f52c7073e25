"""The named scenarios: configurations to run, and the targets each one checks.

Each scenario is a list of configurations (overrides of ``workload.DEFAULTS``) and
a function that reads the results against the project's targets. Targets are
goals, not gates: a run never fails because one is missed.
"""

from .workload import DEFAULTS

# The reference configuration of the targets: acks=all, idempotence on, 1 KiB
# records, 8 partitions.
REFERENCE = {
    "partitions": 8,
    "message_size": 1024,
    "acks": "all",
    "idempotence": True,
}

SCALING_PARTITIONS = [1, 8, 64, 1024]
SCALING_AGENTS = [1, 3]


def _smoke():
    return [
        dict(
            REFERENCE,
            name="smoke",
            saturation_s=3.0,
            fixed_s=3.0,
            warmup_s=1.0,
        )
    ]


def _throughput():
    return [
        dict(REFERENCE, name="8p 1 producer"),
        # A larger request limit (message.max.bytes 8 MB) changes nothing:
        # librdkafka sends one partition's batch (at most batch.size, 1 MB) per
        # ProduceRequest, and with idempotence at most 5 requests are in flight
        # per connection, so one producer connection carries at most ~5 MB per
        # acknowledgement latency whatever this limit is.
        dict(REFERENCE, name="8p 1 producer, 8 MB requests", message_max_bytes=8_000_000),
        dict(REFERENCE, name="8p 2 producers", producers=2, consumers=2),
        # Incompressible records: how much of the agent's cost is segment zstd.
        dict(REFERENCE, name="8p random bytes", payload="random"),
    ]


# The latency targets are also read at a light load, 1 MB/s (1,000 records/s of
# 1 KiB), where the client's in-flight window is no limit.
LIGHT_RATE = 1000


def _modelled(profile, label, agent):
    return [
        dict(REFERENCE, name=f"8p moto + {label}", bucket="moto", latency_profile=profile, **agent),
        dict(
            REFERENCE,
            name=f"8p moto + {label}, 1 MB/s",
            bucket="moto",
            latency_profile=profile,
            saturation_s=0,
            fixed_rate=LIGHT_RATE,
            catchup=False,
            **agent,
        ),
    ]


# Agent settings per storage class. S3 Standard: PUTs and GETs hedged near the
# model's 90th percentile (HedgeOptions::S3_STANDARD). S3 Express One Zone:
# single-digit-millisecond requests (and PUTs at under a quarter of Standard's
# price) make a 25 ms flush interval the natural choice.
S3_STANDARD_AGENT = {"hedge_put_after_ms": 120, "hedge_get_after_ms": 75}
S3_EXPRESS_AGENT = {"flush_interval_ms": 25}


def _s3_standard():
    return _modelled("s3-standard", "S3 Standard model", S3_STANDARD_AGENT)


def _s3_express():
    return _modelled("s3-express", "S3 Express model", S3_EXPRESS_AGENT)


def _moto():
    return [dict(REFERENCE, name="8p moto, no latency model", bucket="moto")]


PARTITION_MATRIX = [1, 8, 64, 1024]


def _partitions():
    return [
        dict(
            REFERENCE,
            name=f"{partitions}p 1 producer",
            partitions=partitions,
            saturation_s=20.0,
            fixed_s=20.0,
            warmup_s=4.0,
        )
        for partitions in PARTITION_MATRIX
    ]


LATENCY_FRACTIONS = [0.1, 0.5, 0.9]
LATENCY_BUCKETS = [
    ("local directory", {"bucket": "dir"}),
    ("S3 Standard model", dict({"bucket": "moto", "latency_profile": "s3-standard"}, **S3_STANDARD_AGENT)),
    ("S3 Express model", dict({"bucket": "moto", "latency_profile": "s3-express"}, **S3_EXPRESS_AGENT)),
]


def _latency():
    return [
        dict(
            REFERENCE,
            name=f"8p {label}, {int(fraction * 100)}%",
            rate_fraction=fraction,
            saturation_s=15.0,
            fixed_s=20.0,
            warmup_s=4.0,
            catchup=False,
            **bucket,
        )
        for label, bucket in LATENCY_BUCKETS
        for fraction in LATENCY_FRACTIONS
    ]


def _scaling():
    configs = []
    for agents in SCALING_AGENTS:
        for partitions in SCALING_PARTITIONS:
            configs.append(
                dict(
                    REFERENCE,
                    name=f"{partitions}p {agents}a",
                    partitions=partitions,
                    agents=agents,
                    producers=agents,
                    consumers=agents,
                    saturation_s=15.0,
                    fixed_s=15.0,
                    warmup_s=3.0,
                )
            )
    return configs


SCENARIOS = {
    "smoke": (
        _smoke,
        "A few seconds of every phase on the reference configuration, to check the tooling end to end "
        "(numbers mean nothing).",
    ),
    "throughput": (
        _throughput,
        "The reference configuration (acks=all, idempotence on, 1 KiB records, 8 partitions) over a local-directory "
        "bucket with no latency model: what the agent itself costs, with one and with two producer processes, and with "
        "incompressible records.",
    ),
    "s3-standard": (
        _s3_standard,
        "The reference configuration over the moto S3 server, every object-store request delayed by the S3 Standard "
        "latency model (docs/latency-profiles.md; a model, not a measurement of S3); then a light fixed rate "
        "(1 MB/s) alone.",
    ),
    "s3-express": (
        _s3_express,
        "The reference configuration over the moto S3 server, every object-store request delayed by the S3 Express "
        "One Zone latency model (docs/latency-profiles.md; a model, not a measurement of S3); then a light fixed "
        "rate (1 MB/s) alone.",
    ),
    "moto": (
        _moto,
        "The reference configuration over the moto S3 server with no latency model: the S3 client path without "
        "modelled delays.",
    ),
    "partitions": (
        _partitions,
        "One agent, one producer process, 1, 8, 64 and 1,024 partitions over a local-directory bucket: whether "
        "the agent keeps up with a single client however the load is spread (the flush must not gate it).",
    ),
    "latency": (
        _latency,
        "The reference configuration (8 partitions, one producer) at fixed rates of 10%, 50% and 90% of the "
        "saturation rate measured just before, over a local directory and under the S3 Standard and S3 Express "
        "latency models: the ack and end-to-end latency a producer sees below saturation.",
    ),
    "scaling": (
        _scaling,
        "How cost grows with work: 1, 8, 64 and 1,024 partitions, on 1 and on 3 agents (one producer and one "
        "consumer per agent), shorter phases.",
    ),
}

ALL = ["throughput", "partitions", "latency", "s3-standard", "s3-express", "scaling"]


def configurations(scenario, overrides):
    build, description = SCENARIOS[scenario]
    configs = [{**DEFAULTS, **config, **overrides} for config in build()]
    return configs, description


# ----- targets -----


def _fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def _status(ok):
    if ok is None:
        return "not measured"
    return "met" if ok else "**not met**"


def _reference(results):
    for r in results:
        c = r["config"]
        if (
            c["partitions"] == 8
            and c["message_size"] == 1024
            and str(c["acks"]) == "all"
            and c["idempotence"]
            and c["agents"] == 1
            and c["producers"] == 1
        ):
            return r
    return None


def targets(scenario, results):
    """Target rows for this scenario's results: {target, measured, status}."""
    rows = []
    ref = _reference(results)
    if ref is None:
        return rows
    s = ref["summary"]
    name = s["name"]
    profile = ref["config"]["latency_profile"]
    if profile == "none":
        cpu = s.get("agent_cpu_seconds_per_gib_written_and_read")
        rows.append(
            {
                "target": "acks=all, idempotence, 1 KiB, 8 partitions: agent CPU ≤ 5 CPU-seconds per GiB written and read once",
                "measured": f"{_fmt(cpu, 2)} s/GiB ({_fmt(s.get('agent_cpu_seconds_per_gib_written'), 2)} writing, "
                f"{_fmt(s.get('agent_cpu_seconds_per_gib_read'), 2)} reading) [{name}]",
                "status": _status(None if cpu is None else cpu <= 5.0),
            }
        )
        agent = s.get("agent_cores_saturation")
        loadgen = s.get("loadgen_cores_saturation")
        limited = None
        if agent is not None and loadgen is not None:
            # The agent is not the limit if it left most of a core unused while
            # the producer process kept at least one core busy.
            limited = agent < 1.0 and loadgen >= 0.9
        rows.append(
            {
                "target": "produce throughput limited by the client, not the agent (2 cores): agent below 1 core "
                "while the producer process uses ≥ 0.9 core",
                "measured": f"{_fmt(s.get('produce_mb_per_second'))} MB/s; agent {_fmt(agent, 2)} cores, producer "
                f"{_fmt(loadgen, 2)} cores, others {_fmt(s.get('other_cores_saturation'), 2)} cores",
                "status": _status(limited),
            }
        )
    puts = s.get("puts_per_gib_written")
    rows.append(
        {
            "target": "≤ 128 PUTs per GiB written at full load",
            "measured": f"{_fmt(puts, 0)} PUTs/GiB at saturation ({_fmt(s.get('produce_mb_per_second'))} MB/s, "
            f"flush interval {ref['config']['flush_interval_ms']} ms); {_fmt(s.get('puts_per_gib_written_fixed_rate'), 0)} at the fixed rate",
            "status": _status(None if puts is None else puts <= 128),
        }
    )
    tail = s.get("tail_gets")
    rows.append(
        {
            "target": "0 GETs for tailing consumers",
            "measured": f"{_fmt(tail, 0)} GETs while tailing ({_fmt(s.get('tail_gets_per_gib_read'), 0)} per GiB read)",
            "status": _status(None if tail is None else tail == 0),
        }
    )
    catchup = s.get("catchup_gets_per_gib_read")
    rows.append(
        {
            "target": "≤ 1 GET per 4 MiB for catch-up reads (≤ 256 per GiB)",
            "measured": f"{_fmt(catchup, 0)} GETs/GiB ({_fmt(s.get('catchup_mib_per_get'), 2)} MiB per GET)",
            "status": _status(None if catchup is None else catchup <= 256),
        }
    )
    for limit, label, profile_name in ((300, "S3 Standard", "s3-standard"), (100, "S3 Express", "s3-express")):
        modelled = [r for r in results if r["config"]["latency_profile"] == profile_name]
        for r in modelled:
            m = r["summary"]
            ack = (m.get("ack_latency_fixed_ms") or {}).get("p99")
            ack_sat = (m.get("ack_latency_saturation_ms") or {}).get("p99")
            e2e = (m.get("e2e_latency_ms") or {}).get("p99")
            rate = f"{_fmt(m.get('fixed_rate_mb_per_second'))} MB/s"
            rows.append(
                {
                    "target": f"{label} model: produce p99 < {limit} ms",
                    "measured": f"{_fmt(ack)} ms at a fixed {rate}"
                    + (f"; {_fmt(ack_sat)} ms at saturation" if ack_sat is not None else "")
                    + f" [{m['name']}]",
                    "status": _status(None if ack is None else ack < limit),
                }
            )
            if profile_name == "s3-standard":
                rows.append(
                    {
                        "target": "S3 Standard model: end-to-end p99 < produce p99 + 50 ms",
                        "measured": f"end-to-end p99 {_fmt(e2e)} ms, produce p99 {_fmt(ack)} ms at {rate} "
                        f"(difference {_fmt(None if e2e is None or ack is None else e2e - ack)} ms) [{m['name']}]",
                        "status": _status(None if e2e is None or ack is None else e2e < ack + 50),
                    }
                )
    return rows
