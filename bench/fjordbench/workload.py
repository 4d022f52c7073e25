"""One configuration, run end to end against fresh agents:

1. **saturation**: producers as fast as they can (closed loop) for
   ``saturation_s`` seconds (or ``messages`` records); no consumers. Gives produce
   throughput, ack latency at saturation, PUTs per GiB at full load and the agent's
   CPU for writing.
2. **fixed rate**: producers on an open-loop schedule at ``rate_fraction`` of the
   saturation rate (or ``fixed_rate`` records/s), with consumers tailing the topic.
   Gives ack latency below saturation, end-to-end latency and the GETs tailing
   consumers cost.
3. **catch-up**: every agent is restarted (nothing of the written data is in its
   memory), then consumers read the saturation topic from the beginning once.
   Gives catch-up throughput from the bucket, GETs per GiB read and the agent's
   CPU for reading.

Consumers verify every phase they read: each (producer, partition) sequence
arrives complete, without duplicates and in order, with increasing offsets.

Units: MB is 10^6 bytes (as Kafka's tools report); GiB is 2^30 bytes. Bytes are
record value bytes (the record size), not wire or bucket bytes.
"""

import array
import math
import multiprocessing
import os
import queue
import shutil
import tempfile
import time

from . import cluster as cluster_mod
from . import workers

GIB = float(1 << 30)
MB = 1e6

DEFAULTS = {
    "name": "default",
    "partitions": 8,
    "message_size": 1024,
    "payload": "letters",
    "acks": "all",
    "idempotence": True,
    "compression": "none",
    "linger_ms": 5,
    "batch_size": 1_000_000,
    # librdkafka's message.max.bytes: the largest produce request. librdkafka
    # puts one partition's batch (batch.size) in each request and, with
    # idempotence, keeps at most 5 in flight per connection: a producer's bytes
    # in flight are ~5 × batch.size, and its throughput at most that over the
    # acknowledgement latency (one flush cycle).
    "message_max_bytes": 1_000_000,
    "producers": 1,
    "consumers": 1,
    "agents": 1,
    "bucket": "dir",
    "latency_profile": "none",
    "flush_interval_ms": 100,
    # Hedged object-store requests (the agent's --hedge-put-after-ms and
    # --hedge-get-after-ms; 0 = off).
    "hedge_put_after_ms": 0,
    "hedge_get_after_ms": 0,
    "saturation_s": 30.0,
    "fixed_s": 30.0,
    "warmup_s": 5.0,
    "messages": None,
    "fixed_rate": None,
    "rate_fraction": 0.5,
    "catchup": True,
    # A consumer stops reading after this long without a new record, once it
    # knows how many records to expect.
    "idle_timeout_s": 60.0,
}


def percentiles(samples, quantiles=(0.5, 0.99, 0.999)):
    """Nearest-rank percentiles of a list of floats; ``None`` when empty."""
    if not samples:
        return {f"p{_label(q)}": None for q in quantiles} | {"count": 0}
    ordered = sorted(samples)
    n = len(ordered)
    out = {"count": n}
    for q in quantiles:
        out[f"p{_label(q)}"] = ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]
    out["max"] = ordered[-1]
    return out


def _label(q):
    text = f"{q * 100:g}"
    return text.replace(".", "")  # 0.999 -> "999", 0.5 -> "50"


class Log:
    def __init__(self, quiet=False):
        self.quiet = quiet
        self.started = time.monotonic()

    def __call__(self, message):
        if not self.quiet:
            print(f"[{time.monotonic() - self.started:7.1f}s] {message}", flush=True)


def _split_partitions(partitions, clients):
    """The partitions each client gets: round-robin, so every client has a share
    (clients left without a partition are left out). Clients bootstrap from every
    agent and follow the leaders Metadata names, so with several agents each
    client talks to whichever agents lead its partitions.
    """
    out = []
    for client in range(clients):
        share = list(range(client, partitions, clients))
        if share:
            out.append(share)
    return out


def _bootstrap(cluster):
    return ",".join(agent.address for agent in cluster.agents)


def _create_topics(bootstrap, names, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names])
    for name, future in futures.items():
        future.result(60)
    metadata = admin.list_topics(timeout=30)
    for name in names:
        got = len(metadata.topics[name].partitions)
        if got != partitions:
            raise RuntimeError(f"topic {name} has {got} partitions, asked {partitions}")


def _collect(results, processes, count, timeout_s, role):
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        try:
            out.append(results.get(timeout=1))
            continue
        except queue.Empty:
            pass
        dead = [p for p in processes if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"a {role} process died (exit {dead[0].exitcode}) without a result")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{role}s did not finish within {timeout_s:.0f} s")
    for p in processes:
        p.join(30)
    fatal = [r for r in out if "fatal" in r]
    if fatal:
        raise RuntimeError(f"{role} {fatal[0]['index']} failed: {fatal[0]['fatal']}")
    return out


def _latencies(results):
    samples = array.array("d")
    for r in results:
        samples.frombytes(r["latencies_ms"])
    return samples


class Sampler:
    """Machine-wide and per-process CPU at phase boundaries."""

    def __init__(self, cluster):
        self.cluster = cluster

    def take(self):
        busy, total = cluster_mod.machine_cpu()
        driver = os.times()
        return {
            "at": time.monotonic(),
            "machine_busy": busy,
            "machine_total": total,
            "driver_cpu": driver.user + driver.system,
            "load": cluster_mod.load_average(),
            "cluster": self.cluster.sample(),
        }

    @staticmethod
    def delta(before, after, worker_cpu_seconds):
        """Phase accounting: CPU of agents, bucket server, load generator and
        whoever else used the machine (other engineers' builds, etc.)."""
        wall = after["at"] - before["at"]
        agents = [
            (a - b) if a is not None and b is not None else None
            for a, b in zip(after["cluster"]["agents_cpu_seconds"], before["cluster"]["agents_cpu_seconds"])
        ]
        agents_total = sum(a for a in agents if a is not None)
        bucket_server = after["cluster"]["bucket_server_cpu_seconds"] - before["cluster"]["bucket_server_cpu_seconds"]
        driver = after["driver_cpu"] - before["driver_cpu"]
        machine = after["machine_busy"] - before["machine_busy"]
        bench = agents_total + bucket_server + worker_cpu_seconds + driver
        stats = {}
        for key in ("put_requests", "put_bytes", "get_requests", "get_bytes", "head_requests", "delete_requests", "list_requests", "errors"):
            stats[key] = sum(
                a[key] - b[key] for a, b in zip(after["cluster"]["agents_stats"], before["cluster"]["agents_stats"])
            )
        return {
            "wall_seconds": wall,
            "agent_cpu_seconds": agents_total,
            "agent_cpu_seconds_each": agents,
            "agent_cores": agents_total / wall if wall > 0 else None,
            "bucket_server_cpu_seconds": bucket_server,
            "loadgen_cpu_seconds": worker_cpu_seconds,
            "loadgen_cores": worker_cpu_seconds / wall if wall > 0 else None,
            "machine_busy_cores": machine / wall if wall > 0 else None,
            "other_cores": max(0.0, machine - bench) / wall if wall > 0 else None,
            "load_average_start": before["load"],
            "load_average_end": after["load"],
            "object_store": stats,
            "object_store_put_latency_p99_us_upper_bound": [s["put_latency_p99_us"] for s in after["cluster"]["agents_stats"]],
            "object_store_get_latency_p99_us_upper_bound": [s["get_latency_p99_us"] for s in after["cluster"]["agents_stats"]],
        }


def run_configuration(config, binary, log, keep_dirs=False):
    """Runs one configuration; returns its metrics as a dict."""
    config = {**DEFAULTS, **config}
    if config["idempotence"] and str(config["acks"]) != "all":
        raise ValueError("idempotence needs acks=all (librdkafka enforces it)")
    slug = "".join(c if c.isalnum() else "-" for c in config["name"])
    run_dir = tempfile.mkdtemp(prefix=f"fjord-bench-{slug}-")
    log(f"== {config['name']}: {_describe(config)} (run dir {run_dir})")
    cluster = cluster_mod.Cluster(binary, run_dir, config["agents"], config["bucket"], config)
    context = multiprocessing.get_context("spawn")
    result = {"config": config, "phases": {}, "notes": []}
    try:
        cluster.start()
        _create_topics(_bootstrap(cluster), ["saturation", "fixed"], config["partitions"])
        if config["partitions"] < config["agents"]:
            result["notes"].append(
                f"{config['partitions']} partition(s) over {config['agents']} agents: "
                f"{config['agents'] - config['partitions']} agent(s) lead nothing"
            )
        saturation = None
        sat_rate = None
        if config["saturation_s"] or config["messages"]:
            saturation = _produce_phase(
                context, cluster, config, "saturation", rate=None, consumers=False, log=log
            )
            result["phases"]["saturation"] = saturation
            sat_rate = saturation["records_per_second"]
        if config["fixed_s"] or (config["messages"] and (config["fixed_rate"] or sat_rate)):
            rate = config["fixed_rate"] or (sat_rate * config["rate_fraction"] if sat_rate else None)
            if rate:
                result["phases"]["fixed_rate"] = _produce_phase(
                    context, cluster, config, "fixed", rate=rate, consumers=True, log=log
                )
            else:
                result["notes"].append("no fixed-rate phase: no rate given and no saturation phase measured")
        if config["catchup"] and saturation is not None:
            log("restarting the agents (cold) for the catch-up read")
            peak_rss_writer = cluster.peak_rss_bytes()
            cluster.restart()
            result["phases"]["catchup"] = _catchup_phase(context, cluster, config, saturation, log)
            result["peak_rss_bytes_writer"] = peak_rss_writer
        result["peak_rss_bytes_reader"] = cluster.peak_rss_bytes()
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        result["agent_log_tails"] = [agent.log_tail() for agent in cluster.agents if agent.process is not None]
        log(f"!! {config['name']} failed: {result['error']}")
    finally:
        # A failed phase may leave its client processes running: stop them
        # before the next configuration starts.
        for child in multiprocessing.active_children():
            child.terminate()
            child.join(10)
        cluster.stop()
        result["agent_lifetimes"] = [agent.exit_rusage for agent in cluster.agents]
        if not keep_dirs:
            shutil.rmtree(run_dir, ignore_errors=True)
    result["summary"] = summarize(result)
    return result


def _describe(config):
    return (
        f"{config['partitions']} partitions, {config['message_size']} B records, acks={config['acks']}, "
        f"idempotence={'on' if config['idempotence'] else 'off'}, compression={config['compression']}, "
        f"linger={config['linger_ms']} ms, {config['producers']} producer(s), {config['consumers']} consumer(s), "
        f"{config['agents']} agent(s), bucket={config['bucket']}, latency={config['latency_profile']}"
    )


def _consumer_specs(config, topic, measure_e2e):
    specs = []
    for index, partitions in enumerate(_split_partitions(config["partitions"], config["consumers"])):
        specs.append({"index": index, "topic": topic, "partitions": partitions, "measure_e2e": measure_e2e})
    return specs


def _start_consumers(context, cluster, specs, deadline_s):
    results = context.Queue()
    processes, controls = [], []
    for spec in specs:
        spec = dict(spec, bootstrap=_bootstrap(cluster))
        control = {"ready": context.Event(), "expected": context.Queue(), "deadline_s": deadline_s}
        process = context.Process(target=workers.consumer_main, args=(spec, control, results), daemon=True)
        process.start()
        processes.append(process)
        controls.append(control)
    for control, process in zip(controls, processes):
        if not control["ready"].wait(60):
            raise RuntimeError("a consumer did not connect within 60 s")
    return results, processes, controls


def _expected_for(partitions, producer_results):
    counts = {}
    wanted = set(partitions)
    for r in producer_results:
        for partition, count in r["sent_per_partition"].items():
            if int(partition) in wanted:
                counts[(r["index"] << 32) | int(partition)] = count
    return counts


def _produce_phase(context, cluster, config, topic, rate, consumers, log):
    placement = _split_partitions(config["partitions"], config["producers"])
    duration = config["saturation_s"] if topic == "saturation" else config["fixed_s"]
    messages = config["messages"]
    warmup = config["warmup_s"] if not messages else 0.0
    per_producer_rate = rate / len(placement) if rate else None
    log(
        f"-- {topic}: {len(placement)} producer(s)"
        + (f" at {rate:,.0f} records/s total (open loop)" if rate else " as fast as they can")
        + (f", {messages:,} records each" if messages else f", {duration:g} s (first {warmup:g} s warm-up)")
        + (", tailing consumers" if consumers else "")
    )
    consumer_state = None
    if consumers:
        consumer_state = _start_consumers(
            context, cluster, _consumer_specs(config, topic, True), deadline_s=config["idle_timeout_s"]
        )
    results = context.Queue()
    processes, controls = [], []
    for index, partitions in enumerate(placement):
        spec = {
            "index": index,
            "bootstrap": _bootstrap(cluster),
            "topic": topic,
            "partitions": partitions,
            "message_size": config["message_size"],
            "payload": config["payload"],
            "acks": config["acks"],
            "idempotence": config["idempotence"],
            "compression": config["compression"],
            "linger_ms": config["linger_ms"],
            "batch_size": config["batch_size"],
            "message_max_bytes": config["message_max_bytes"],
            "rate": per_producer_rate,
            "messages": messages,
            "duration_s": None if messages else duration,
        }
        control = {"ready": context.Event(), "start": context.Queue()}
        process = context.Process(target=workers.producer_main, args=(spec, control, results), daemon=True)
        process.start()
        processes.append(process)
        controls.append(control)
    for control in controls:
        if not control["ready"].wait(60):
            raise RuntimeError("a producer did not connect within 60 s")
    sampler = Sampler(cluster)
    start_at = time.monotonic_ns() + 300_000_000
    window = (start_at + int(warmup * 1e9), start_at + int(duration * 1e9)) if not messages else (start_at, 2**62)
    before = sampler.take()
    for control in controls:
        control["start"].put((start_at, window))
    producer_results = _collect(results, processes, len(processes), (duration or 600) + 600, "producer")
    after_producers = sampler.take()
    worker_cpu = sum(r["cpu_seconds"] for r in producer_results)
    consumer_results = []
    if consumer_state is not None:
        c_results, c_processes, c_controls = consumer_state
        for control, spec in zip(c_controls, _consumer_specs(config, topic, True)):
            control["expected"].put((_expected_for(spec["partitions"], producer_results), window))
        consumer_results = _collect(c_results, c_processes, len(c_processes), 900, "consumer")
        after = sampler.take()
        worker_cpu += sum(r["cpu_seconds"] for r in consumer_results)
    else:
        after = after_producers
    accounting = Sampler.delta(before, after, worker_cpu)
    sent = sum(r["sent"] for r in producer_results)
    acked = sum(r["acked"] for r in producer_results)
    acked_bytes = sum(r["acked_bytes"] for r in producer_results)
    errors = sum(r["errors"] for r in producer_results)
    first_start = min(r["start_ns"] for r in producer_results)
    last_ack = max(r["last_ack_ns"] for r in producer_results)
    if messages:
        span = (last_ack - first_start) / 1e9
        window_bytes, window_records = acked_bytes, acked
    elif rate:
        # Open loop: the rate delivered is what was sent in the window and acked
        # (whenever the ack came).
        span = (window[1] - window[0]) / 1e9
        window_bytes = sum(r["window_sent_acked_bytes"] for r in producer_results)
        window_records = sum(r["window_sent_acked"] for r in producer_results)
    else:
        # Closed loop: the rate acks arrived at in the window (steady state).
        span = (window[1] - window[0]) / 1e9
        window_bytes = sum(r["window_acked_bytes"] for r in producer_results)
        window_records = sum(r["window_acked"] for r in producer_results)
    phase = {
        "producers": len(placement),
        "target_rate_records_per_second": rate,
        "records_sent": sent,
        "records_acked": acked,
        "bytes_acked": acked_bytes,
        "produce_errors": errors,
        "first_produce_errors": [e for r in producer_results for e in r["first_errors"]][:5],
        "unflushed": sum(r["unflushed"] for r in producer_results),
        "measured_seconds": span,
        "records_per_second": window_records / span if span > 0 else None,
        "mb_per_second": window_bytes / MB / span if span > 0 else None,
        "producer_behind_max_ms": max(r["behind_max_ms"] for r in producer_results),
        "ack_latency_ms": percentiles(_latencies(producer_results)),
        "accounting": accounting,
    }
    if consumer_results:
        # The same, up to the last ack (before the consumers' last records).
        phase["accounting_producers_only"] = Sampler.delta(
            before, after_producers, sum(r["cpu_seconds"] for r in producer_results)
        )
    # For the catch-up read's verification; left out of the JSON.
    phase["_sent_per_producer"] = [
        {"index": r["index"], "sent_per_partition": r["sent_per_partition"]} for r in producer_results
    ]
    if consumer_results:
        phase["e2e_latency_ms"] = percentiles(_latencies(consumer_results))
        phase["verification"] = _verification(consumer_results, acked)
        phase["bytes_consumed"] = sum(r["received_bytes"] for r in consumer_results)
    log(_phase_line(topic, phase))
    return phase


def _verification(consumer_results, acked):
    received = sum(r["received"] for r in consumer_results)
    v = {
        "records_acked": acked,
        "records_received": received,
        # Records skipped inside a (producer, partition) sequence: lost, or
        # delivered out of order.
        "gaps": sum(r["gap_records"] for r in consumer_results),
        # Records after the last one received: lost, or never read because a
        # consumer gave up.
        "not_received": sum(r["missing_tail"] for r in consumer_results),
        "duplicates": sum(r["duplicates"] for r in consumer_results),
        "order_violations": sum(r["order_violations"] for r in consumer_results),
        # A consumer that saw no new record for the idle timeout stopped reading.
        "consumers_gave_up": sum(1 for r in consumer_results if r["gave_up"]),
        "consumer_errors": [e for r in consumer_results for e in r["errors"]][:5],
    }
    v["ok"] = (
        v["gaps"] == 0
        and v["not_received"] == 0
        and v["duplicates"] == 0
        and v["order_violations"] == 0
        and received == acked
    )
    # What was read is intact, but not everything was read in time.
    v["incomplete"] = (
        not v["ok"] and v["gaps"] == 0 and v["duplicates"] == 0 and v["order_violations"] == 0
        and v["consumers_gave_up"] > 0
    )
    return v


def _catchup_phase(context, cluster, config, saturation, log):
    log("-- catch-up: reading the saturation topic from the beginning")
    specs = _consumer_specs(config, "saturation", False)
    sampler = Sampler(cluster)
    # The producers' per-partition counts were kept in the saturation phase.
    producer_counts = saturation["_sent_per_producer"]
    c_results, c_processes, c_controls = _start_consumers(
        context, cluster, specs, deadline_s=config["idle_timeout_s"]
    )
    before = sampler.take()
    for control, spec in zip(c_controls, specs):
        control["expected"].put((_expected_for(spec["partitions"], producer_counts), (0, 0)))
    consumer_results = _collect(c_results, c_processes, len(c_processes), 1800, "consumer")
    after = sampler.take()
    accounting = Sampler.delta(before, after, sum(r["cpu_seconds"] for r in consumer_results))
    received_bytes = sum(r["received_bytes"] for r in consumer_results)
    first = min(r["first_ns"] for r in consumer_results if r["first_ns"])
    last = max(r["last_ns"] or 0 for r in consumer_results)
    span = (last - first) / 1e9 if last > first else None
    phase = {
        "consumers": len(specs),
        "records_received": sum(r["received"] for r in consumer_results),
        "bytes_received": received_bytes,
        "measured_seconds": span,
        "mb_per_second": received_bytes / MB / span if span else None,
        "records_per_second": sum(r["received"] for r in consumer_results) / span if span else None,
        "verification": _verification(consumer_results, saturation["records_acked"]),
        "accounting": accounting,
    }
    log(_phase_line("catch-up", phase))
    return phase


def _phase_line(name, phase):
    parts = [f"   {name}:"]
    if phase.get("mb_per_second") is not None:
        parts.append(f"{phase['mb_per_second']:.1f} MB/s, {phase['records_per_second']:,.0f} rec/s")
    ack = phase.get("ack_latency_ms")
    if ack and ack["count"]:
        parts.append(f"ack p50/p99/p99.9 {ack['p50']:.1f}/{ack['p99']:.1f}/{ack['p999']:.1f} ms")
    e2e = phase.get("e2e_latency_ms")
    if e2e and e2e["count"]:
        parts.append(f"e2e p50/p99 {e2e['p50']:.1f}/{e2e['p99']:.1f} ms")
    acc = phase["accounting"]
    parts.append(
        f"agent {acc['agent_cores']:.2f} cores, loadgen {acc['loadgen_cores']:.2f}, others {acc['other_cores']:.2f}; "
        f"PUT {acc['object_store']['put_requests']}, GET {acc['object_store']['get_requests']}"
    )
    if "verification" in phase:
        v = phase["verification"]
        if v["ok"]:
            parts.append("verified")
        elif v["incomplete"]:
            parts.append(f"INCOMPLETE: read {v['records_received']:,} of {v['records_acked']:,} records intact, then no progress for the idle timeout")
        else:
            parts.append(f"VERIFICATION FAILED {v}")
    return " ".join(parts)


def summarize(result):
    """The headline numbers of one configuration (what the tables and plot show)."""
    phases = result["phases"]
    sat = phases.get("saturation")
    fixed = phases.get("fixed_rate")
    catchup = phases.get("catchup")
    out = {"name": result["config"]["name"], "error": result.get("error")}
    if sat:
        gib = sat["bytes_acked"] / GIB
        out["produce_mb_per_second"] = sat["mb_per_second"]
        out["produce_records_per_second"] = sat["records_per_second"]
        out["ack_latency_saturation_ms"] = sat["ack_latency_ms"]
        out["agent_cores_saturation"] = sat["accounting"]["agent_cores"]
        out["loadgen_cores_saturation"] = sat["accounting"]["loadgen_cores"]
        out["other_cores_saturation"] = sat["accounting"]["other_cores"]
        out["gib_written"] = gib
        out["puts_per_gib_written"] = sat["accounting"]["object_store"]["put_requests"] / gib if gib else None
        out["agent_cpu_seconds_per_gib_written"] = sat["accounting"]["agent_cpu_seconds"] / gib if gib else None
        # Segment bytes uploaded per record byte acked (the agent's zstd).
        out["bucket_bytes_per_record_byte"] = (
            sat["accounting"]["object_store"]["put_bytes"] / sat["bytes_acked"] if sat["bytes_acked"] else None
        )
    if fixed:
        consumed_gib = fixed.get("bytes_consumed", 0) / GIB
        out["fixed_rate_records_per_second"] = fixed["target_rate_records_per_second"]
        out["fixed_rate_mb_per_second"] = fixed["mb_per_second"]
        out["ack_latency_fixed_ms"] = fixed["ack_latency_ms"]
        out["e2e_latency_ms"] = fixed.get("e2e_latency_ms")
        out["tail_gets"] = fixed["accounting"]["object_store"]["get_requests"]
        out["tail_gets_per_gib_read"] = out["tail_gets"] / consumed_gib if consumed_gib else None
        out["puts_per_gib_written_fixed_rate"] = (
            fixed["accounting"]["object_store"]["put_requests"] / (fixed["bytes_acked"] / GIB) if fixed["bytes_acked"] else None
        )
        out["other_cores_fixed_rate"] = fixed["accounting"]["other_cores"]
    if catchup and not catchup["verification"]["ok"]:
        # Per-GiB figures of a read that did not complete would mislead; the
        # phase keeps the raw counts.
        out["catchup_incomplete"] = True
    elif catchup:
        gib_read = catchup["bytes_received"] / GIB
        out["catchup_mb_per_second"] = catchup["mb_per_second"]
        out["catchup_gets_per_gib_read"] = catchup["accounting"]["object_store"]["get_requests"] / gib_read if gib_read else None
        out["catchup_mib_per_get"] = (
            catchup["bytes_received"] / (1 << 20) / catchup["accounting"]["object_store"]["get_requests"]
            if catchup["accounting"]["object_store"]["get_requests"]
            else None
        )
        out["agent_cpu_seconds_per_gib_read"] = catchup["accounting"]["agent_cpu_seconds"] / gib_read if gib_read else None
        out["other_cores_catchup"] = catchup["accounting"]["other_cores"]
        if sat and out.get("gib_written"):
            out["agent_cpu_seconds_per_gib_written_and_read"] = (
                sat["accounting"]["agent_cpu_seconds"] + catchup["accounting"]["agent_cpu_seconds"]
            ) / out["gib_written"]
    rss = [v for key in ("peak_rss_bytes_writer", "peak_rss_bytes_reader") for v in (result.get(key) or []) if v]
    rss += [life["peak_rss_bytes"] for life in result.get("agent_lifetimes") or [] if life]
    out["agent_peak_rss_mib"] = max(rss) / (1 << 20) if rss else None
    checks = [p["verification"] for p in phases.values() if "verification" in p]
    out["verified"] = bool(checks) and all(c["ok"] for c in checks) and not result.get("error")
    # Older results lack "incomplete"; without gaps, duplicates or reordering a
    # failed check means records were never read.
    out["incomplete_reads"] = any(
        c.get("incomplete", not c["ok"] and c["duplicates"] == 0 and c["order_violations"] == 0 and c.get("gaps", 0) == 0)
        for c in checks
    )
    out["produce_errors"] = sum(p.get("produce_errors", 0) for p in phases.values())
    return out
