#!/usr/bin/env python3
"""Fjord benchmarks: one command per scenario.

    python3 bench/run.py smoke            # a few seconds, checks the tooling
    python3 bench/run.py throughput       # reference config, local-directory bucket
    python3 bench/run.py s3-standard      # moto S3 server + S3 Standard latency model
    python3 bench/run.py s3-express       # moto S3 server + S3 Express latency model
    python3 bench/run.py scaling          # 1/8/64/1024 partitions x 1/3 agents
    python3 bench/run.py all              # throughput, s3-standard, s3-express, scaling
    python3 bench/run.py render FILE.json # redraw a result's .md and .svg

Each writes <out>/<date>-<scenario>.{json,md,svg} (default out: bench/results,
bench/out for smoke). Options after the scenario override every configuration
of it (see --help). bench/README.md explains the phases and the metrics.
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

from fjordbench import report, scenarios, workload  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Run a Fjord benchmark scenario.", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("scenario", choices=[*scenarios.SCENARIOS, "all", "render"])
    parser.add_argument("json", nargs="?", help="render: the result JSON to redraw the .md and .svg of")
    build = parser.add_argument_group("agent binary")
    build.add_argument(
        "--profile",
        choices=["release", "dev"],
        default=None,
        help="cargo profile to build the agent with (default: release; dev for smoke)",
    )
    build.add_argument("--fjord-bin", help="use this fjord binary instead of building one")
    output = parser.add_argument_group("output")
    output.add_argument("--out", help="directory for results (default: bench/results; bench/out for smoke)")
    output.add_argument("--tag", default="", help="appended to the result file names")
    output.add_argument("--keep", action="store_true", help="keep the agents' data directories")
    output.add_argument("--quiet", action="store_true")
    output.add_argument(
        "--only", action="append", help="run only the configurations whose name contains this text (repeatable)"
    )
    o = parser.add_argument_group("workload overrides (apply to every configuration of the scenario)")
    o.add_argument("--partitions", type=int)
    o.add_argument("--message-size", type=int, help="record value bytes")
    o.add_argument("--payload", choices=["letters", "random", "zeros"])
    o.add_argument("--messages", type=int, help="records per producer per phase, instead of durations")
    o.add_argument("--duration", type=float, help="seconds of the saturation and of the fixed-rate phase")
    o.add_argument("--warmup", type=float, help="seconds at the start of each phase not measured")
    o.add_argument("--acks", choices=["all", "1", "0"])
    idem = o.add_mutually_exclusive_group()
    idem.add_argument("--idempotence", dest="idempotence", action="store_true", default=None)
    idem.add_argument("--no-idempotence", dest="idempotence", action="store_false")
    o.add_argument("--compression", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    o.add_argument("--linger-ms", type=int)
    o.add_argument("--batch-size", type=int, help="librdkafka batch.size")
    o.add_argument(
        "--message-max-bytes", type=int, help="librdkafka message.max.bytes (the largest produce request)"
    )
    o.add_argument("--rate", type=float, help="fixed-rate phase: records/s over all producers")
    o.add_argument("--rate-fraction", type=float, help="fixed rate as a fraction of the saturation rate")
    o.add_argument("--no-saturation", action="store_true", help="skip the saturation phase (needs --rate)")
    o.add_argument("--no-catchup", action="store_true", help="skip the cold catch-up read")
    o.add_argument("--producers", type=int, help="producer processes")
    o.add_argument("--consumers", type=int, help="consumer processes")
    o.add_argument("--agents", type=int)
    o.add_argument("--bucket", choices=["dir", "moto"], help="local directory or the moto S3 server")
    o.add_argument("--latency-profile", choices=["none", "s3-standard", "s3-express"])
    o.add_argument("--flush-interval-ms", type=int)
    o.add_argument("--idle-timeout", type=float, help="seconds a consumer waits without a new record before giving up")
    return parser.parse_args(argv)


def overrides_from(args):
    out = {}
    for key in (
        "partitions",
        "message_size",
        "payload",
        "messages",
        "acks",
        "idempotence",
        "compression",
        "linger_ms",
        "batch_size",
        "message_max_bytes",
        "rate_fraction",
        "producers",
        "consumers",
        "agents",
        "bucket",
        "latency_profile",
        "flush_interval_ms",
    ):
        value = getattr(args, key)
        if value is not None:
            out[key] = value
    if args.duration is not None:
        out["saturation_s"] = args.duration
        out["fixed_s"] = args.duration
    if args.warmup is not None:
        out["warmup_s"] = args.warmup
    if args.idle_timeout is not None:
        out["idle_timeout_s"] = args.idle_timeout
    if args.rate is not None:
        out["fixed_rate"] = args.rate
    if args.no_saturation:
        out["saturation_s"] = 0
        out["catchup"] = False
    if args.no_catchup:
        out["catchup"] = False
    if out.get("acks") in ("1", "0") and args.idempotence is None:
        out["idempotence"] = False
    return out


def agent_binary(args, profile):
    if args.fjord_bin:
        return os.path.abspath(args.fjord_bin)
    command = ["cargo", "build", "--profile", profile, "-p", "fjord-agent", "--bin", "fjord"]
    print(f"building the agent: {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=REPO_ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO_ROOT, "target"))
    return os.path.join(target, "debug" if profile == "dev" else profile, "fjord")


def run_scenario(name, args, binary, profile, log):
    configs, description = scenarios.configurations(name, overrides_from(args))
    if args.only:
        configs = [c for c in configs if any(text in c["name"] for text in args.only)]
        if not configs:
            raise SystemExit(f"no configuration of {name} matches --only {args.only}")
    out_dir = args.out or os.path.join(BENCH_DIR, "out" if name == "smoke" else "results")
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{time.strftime('%Y-%m-%d')}-{name}{'-' + args.tag if args.tag else ''}")
    document = {
        "scenario": name,
        "description": description,
        "command": "python3 bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "machine": report.machine_description(REPO_ROOT, binary, profile),
        "results": [],
    }
    for config in configs:
        document["results"].append(workload.run_configuration(config, binary, log, keep_dirs=args.keep))
        document["targets"] = scenarios.targets(name, document["results"])
        document["machine"]["load_average_at_end"] = workload.cluster_mod.load_average()
        # Written after every configuration, so a long run leaves partial results.
        report.write_json(stem + ".json", document)
        with open(stem + ".md", "w") as f:
            f.write(report.markdown(document))
        with open(stem + ".svg", "w") as f:
            f.write(report.svg(document))
    log(f"wrote {stem}.json, .md and .svg")
    for row in document.get("targets", []):
        log(f"target: {row['target']}: {row['measured']} -> {row['status']}")
    return document


def render(path):
    """Recomputes the summaries and targets of a result JSON and rewrites its
    .md and .svg (after a change to the report, without re-running)."""
    import json

    with open(path) as f:
        document = json.load(f)
    for result in document["results"]:
        result["summary"] = workload.summarize(result)
    document["targets"] = scenarios.targets(document["scenario"], document["results"])
    stem = path[: -len(".json")]
    report.write_json(stem + ".json", document)
    with open(stem + ".md", "w") as f:
        f.write(report.markdown(document))
    with open(stem + ".svg", "w") as f:
        f.write(report.svg(document))
    print(f"rewrote {stem}.json, .md and .svg")
    return 0


def main(argv):
    args = parse_args(argv)
    if args.scenario == "render":
        if not args.json:
            raise SystemExit("render needs the path of a result JSON")
        return render(args.json)
    profile = args.profile or ("dev" if args.scenario == "smoke" else "release")
    binary = agent_binary(args, profile)
    log = workload.Log(quiet=args.quiet)
    names = scenarios.ALL if args.scenario == "all" else [args.scenario]
    failed = False
    for name in names:
        document = run_scenario(name, args, binary, profile, log)
        failed |= any(r.get("error") or not r["summary"]["verified"] for r in document["results"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
