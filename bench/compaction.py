#!/usr/bin/env python3
"""Object compaction benchmark: what long-term retention costs before and after
small objects are merged.

    python3 bench/compaction.py [--gib 2] [--partitions 64] [--fjord-bin BIN]
        [--latency-profile s3-standard] [--out bench/results] [--tag T]

Phases, all over one local-directory bucket behind the agent's latency model
(S3 Standard by default) and one SQLite metadata file:

1. write: one agent, compaction off, one confluent-kafka producer
   (idempotent, acks=all, 1 KiB records of random letters) writes --gib GiB of
   record values over --partitions partitions, as fast as it is answered.
2. before: objects, bytes, index entries and metadata bytes in the bucket and
   the metadata file; then a cold catch-up read (a fresh agent with no disk
   cache, one consumer reading every partition from the start): MB/s, and
   GETs per GiB from the agent's object-store counters.
3. compaction: an agent with compaction on (every second, no minimum age, no
   grace period) until no two small objects are left and the garbage is
   deleted: its CPU seconds, and the bytes compaction read and wrote (from
   its log).
4. after: the same measurements as 2.

Writes <out>/<date>-compaction[-tag].{json,md}. "GiB" is of record values
produced (logical); the bucket's bytes are zstd-compressed.
"""

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

from fjordbench import cluster as cluster_mod  # noqa: E402
from fjordbench import workers  # noqa: E402

MESSAGE_SIZE = 1024
TOPIC = "retained"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0, help="GiB of record values to write")
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--latency-profile", default="s3-standard", choices=["none", "s3-standard", "s3-express"])
    parser.add_argument("--flush-interval-ms", type=int, default=100)
    parser.add_argument("--fjord-bin", help="the fjord binary (default: build the release profile)")
    parser.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    parser.add_argument("--tag", default="")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    return parser.parse_args(argv)


def binary(args):
    if args.fjord_bin:
        return os.path.abspath(args.fjord_bin)
    subprocess.run(["cargo", "build", "--release", "-p", "fjord-agent", "--bin", "fjord"], cwd=REPO_ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO_ROOT, "target"))
    return os.path.join(target, "release", "fjord")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Run:
    def __init__(self, args, fjord, run_dir):
        self.args = args
        self.fjord = fjord
        self.run_dir = run_dir
        self.bucket = os.path.join(run_dir, "bucket")
        self.metadata = os.path.join(run_dir, "metadata.db")
        self.generation = 0

    def agent(self, extra, env=None):
        self.generation += 1
        options = {
            "flush_interval_ms": self.args.flush_interval_ms,
            "partitions": self.args.partitions,
            "latency_profile": self.args.latency_profile,
            "extra_args": extra,
        }
        agent = cluster_mod.Agent(
            self.fjord,
            self.run_dir,
            self.generation,
            "sqlite://" + self.metadata,
            "file://" + self.bucket,
            env or {},
            options,
        )
        agent.start()
        return agent


def objects_in(bucket):
    count = size = 0
    for root, _, files in os.walk(bucket):
        for name in files:
            if name.endswith(".seg"):
                count += 1
                size += os.path.getsize(os.path.join(root, name))
    return count, size


def metadata_counts(path):
    """Index entries, segment records, and the metadata's bytes (a vacuumed
    copy, so free pages do not count)."""
    copy = path + ".vacuumed"
    if os.path.exists(copy):
        os.remove(copy)
    with sqlite3.connect(path, timeout=30) as db:
        db.execute("VACUUM INTO ?", (copy,))
        index = db.execute("SELECT count(*) FROM kv WHERE instr(key, x'02696e64657800') > 0").fetchone()[0]
        segments = db.execute("SELECT count(*) FROM kv WHERE instr(key, x'027365676d656e7400') > 0").fetchone()[0]
        time_points = db.execute(
            "SELECT count(*) FROM kv WHERE instr(key, x'0274696d655f696e64657800') > 0"
        ).fetchone()[0]
        # What grows with the data: index entries, time-index points and
        # segment records (keys and values).
        scaling_bytes = db.execute(
            "SELECT coalesce(sum(length(key) + length(value)), 0) FROM kv WHERE "
            "instr(key, x'02696e64657800') > 0 OR instr(key, x'0274696d655f696e64657800') > 0 "
            "OR instr(key, x'027365676d656e7400') > 0"
        ).fetchone()[0]
        index_bytes = db.execute(
            "SELECT coalesce(sum(length(key) + length(value)), 0) FROM kv WHERE instr(key, x'02696e64657800') > 0"
        ).fetchone()[0]
    size = os.path.getsize(copy)
    os.remove(copy)
    return {
        "index_entries": index,
        "segment_records": segments,
        "time_index_points": time_points,
        "index_bytes": index_bytes,
        "scaling_bytes": scaling_bytes,
        "metadata_file_bytes": size,
    }


def produce(bootstrap, partitions, total_bytes):
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "message.max.bytes": 8_000_000,
        }
    )
    # Random uppercase letters, as kafka-producer-perf-test sends (zstd
    # keeps about 60 %), cut from a pool larger than zstd's window.
    pool = workers.make_pool("letters", seed=1)
    span = len(pool) - MESSAGE_SIZE
    errors = []

    def on_delivery(error, _message):
        if error is not None:
            errors.append(str(error))

    count = total_bytes // MESSAGE_SIZE
    started = time.monotonic()
    for i in range(count):
        offset = (i * 7919) % span
        value = pool[offset : offset + MESSAGE_SIZE]
        while True:
            try:
                producer.produce(TOPIC, value=value, partition=i % partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(300)
    elapsed = time.monotonic() - started
    if errors:
        raise RuntimeError(f"{len(errors)} deliveries failed, e.g. {errors[:3]}")
    return count, elapsed


def catch_up(bootstrap, partitions, expected):
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"catchup-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 8 << 20,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    received = 0
    received_bytes = 0
    started = time.monotonic()
    last = started
    while received < expected:
        batch = consumer.consume(10_000, 1.0)
        for message in batch:
            if message.error() is None:
                received += 1
                received_bytes += len(message.value())
                last = time.monotonic()
        if time.monotonic() - last > 60:
            raise RuntimeError(f"catch-up stalled at {received} of {expected}")
    consumer.close()
    return received_bytes, last - started


def measure(run, label, produced_bytes, records):
    count, size = objects_in(run.bucket)
    meta = metadata_counts(run.metadata)
    gib = produced_bytes / (1 << 30)
    agent = run.agent(["--disk-cache-bytes", "0", "--object-compaction-interval-ms", "0"])
    try:
        before = agent.fresh_stats()
        got_bytes, seconds = catch_up(agent.address, run.args.partitions, records)
        after = agent.fresh_stats()
    finally:
        agent.stop()
    gets = after["get_requests"] - before["get_requests"]
    out = {
        "objects": count,
        "bucket_bytes": size,
        "objects_per_gib": count / gib,
        "mean_object_bytes": size / count if count else 0,
        "index_entries_per_gib": meta["index_entries"] / gib,
        "metadata_bytes_per_tib": meta["metadata_file_bytes"] / gib * 1024,
        "index_bytes_per_tib": meta["index_bytes"] / gib * 1024,
        "scaling_metadata_bytes_per_tib": meta["scaling_bytes"] / gib * 1024,
        **meta,
        "catchup_mb_per_s": got_bytes / 1e6 / seconds,
        "catchup_gets": gets,
        "catchup_gets_per_gib": gets / (got_bytes / (1 << 30)),
        "catchup_mib_per_get": (got_bytes / (1 << 20)) / gets if gets else None,
    }
    log(f"{label}: {json.dumps(out)}")
    return out


def compact(run):
    agent = run.agent(
        [
            "--object-compaction-interval-ms",
            "1000",
            "--object-compaction-min-age-ms",
            "0",
            "--object-grace-ms",
            "0",
            "--log-retention-check-interval-ms",
            "1000",
        ],
        env={"RUST_LOG": "warn,fjord_agent::maintenance=info"},
    )
    started = time.monotonic()
    cpu_start = agent.cpu_seconds()
    quiet_since = None
    try:
        while True:
            time.sleep(1)
            with open(agent.log_path, errors="replace") as f:
                text = f.read()
            reports = re.findall(r"object compaction pass.*", text)
            deleted = re.findall(r"objects_deleted: (\d+)", text)
            with sqlite3.connect(run.metadata, timeout=30) as db:
                garbage = db.execute("SELECT count(*) FROM kv WHERE instr(key, x'026761726261676500') > 0").fetchone()[0]
            done = reports and garbage == 0 and deleted
            if done:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 3:
                    break
            else:
                quiet_since = None
            if time.monotonic() - started > 1800:
                raise RuntimeError("compaction did not finish within 30 minutes")
        cpu = agent.cpu_seconds() - cpu_start
    finally:
        agent.stop()
    numbers = lambda name: sum(int(v) for v in re.findall(name + r": (\d+)", text))  # noqa: E731
    out = {
        "seconds": time.monotonic() - started,
        "agent_cpu_seconds": cpu,
        "objects_read": numbers("objects_read"),
        "bytes_read": numbers("bytes_read"),
        "objects_written": numbers("objects_written"),
        "bytes_written": numbers("bytes_written"),
        "entries_removed": numbers("entries_removed"),
        "entries_written": numbers("entries_written"),
        "ranges_skipped": numbers("ranges_skipped"),
        "objects_deleted": numbers("objects_deleted"),
    }
    log(f"compaction: {json.dumps(out)}")
    return out


def markdown(doc):
    b, a, c = doc["before"], doc["after"], doc["compaction"]
    gib = doc["produced_gib"]
    rows = [
        ("objects per GiB", "objects_per_gib", "{:.1f}"),
        ("mean object size (MiB)", "mean_object_bytes", lambda v: f"{v / (1 << 20):.2f}"),
        ("index entries per GiB", "index_entries_per_gib", "{:.0f}"),
        ("time-index points", "time_index_points", "{}"),
        ("metadata file per TiB retained (MB)", "metadata_bytes_per_tib", lambda v: f"{v / 1e6:.1f}"),
        ("index keys+values per TiB retained (MB)", "index_bytes_per_tib", lambda v: f"{v / 1e6:.1f}"),
        (
            "index + time index + segment records per TiB (MB)",
            "scaling_metadata_bytes_per_tib",
            lambda v: f"{v / 1e6:.1f}",
        ),
        ("catch-up MB/s", "catchup_mb_per_s", "{:.0f}"),
        ("catch-up GETs per GiB", "catchup_gets_per_gib", "{:.0f}"),
        ("catch-up MiB per GET", "catchup_mib_per_get", lambda v: f"{v:.2f}" if v else "-"),
    ]
    fmt = lambda f, v: f(v) if callable(f) else f.format(v)  # noqa: E731
    lines = [
        f"# Object compaction: {gib:.2f} GiB over {doc['partitions']} partitions ({doc['latency_profile']})",
        "",
        f"`{doc['command']}` on {doc['machine']}.",
        "",
        f"Written in {doc['write_seconds']:.0f} s ({doc['produced_bytes'] / 1e6 / doc['write_seconds']:.0f} MB/s) "
        f"by one idempotent acks=all producer, 1 KiB records of random letters, flush interval {doc['flush_interval_ms']} ms.",
        "",
        "| | before | after |",
        "|---|---|---|",
    ]
    for name, key, f in rows:
        lines.append(f"| {name} | {fmt(f, b[key])} | {fmt(f, a[key])} |")
    amplification = (b["bucket_bytes"] + c["bytes_written"]) / b["bucket_bytes"]
    lines += [
        "",
        "| compaction | |",
        "|---|---|",
        f"| wall time | {c['seconds']:.0f} s |",
        f"| objects read / written / deleted | {c['objects_read']} / {c['objects_written']} / {c['objects_deleted']} |",
        f"| bytes read / written | {c['bytes_read'] / 1e6:.0f} MB / {c['bytes_written'] / 1e6:.0f} MB |",
        f"| index entries replaced / written | {c['entries_removed']} / {c['entries_written']} |",
        f"| ranges skipped | {c['ranges_skipped']} |",
        f"| write amplification (flush + compaction bytes) / flush bytes | {amplification:.2f}x |",
        f"| agent CPU seconds per GiB (logical) | {c['agent_cpu_seconds'] / gib:.2f} |",
        f"| agent CPU seconds per GiB compacted (bucket bytes read) | {c['agent_cpu_seconds'] / (c['bytes_read'] / (1 << 30)) if c['bytes_read'] else 0:.2f} |",
        "",
    ]
    return "\n".join(lines)


def main(argv):
    args = parse_args(argv)
    fjord = binary(args)
    run_dir = tempfile.mkdtemp(prefix="fjord-compaction-")
    produced = int(args.gib * (1 << 30))
    try:
        run = Run(args, fjord, run_dir)
        agent = run.agent(["--object-compaction-interval-ms", "0"])
        try:
            log(f"writing {args.gib} GiB over {args.partitions} partitions")
            records, write_seconds = produce(agent.address, args.partitions, produced)
        finally:
            agent.stop()
        produced_bytes = records * MESSAGE_SIZE
        log(f"wrote {records} records in {write_seconds:.1f} s")
        before = measure(run, "before", produced_bytes, records)
        compaction = compact(run)
        after = measure(run, "after", produced_bytes, records)
        doc = {
            "command": "python3 bench/compaction.py " + " ".join(argv),
            "machine": f"{os.cpu_count()} cores",
            "partitions": args.partitions,
            "latency_profile": args.latency_profile,
            "flush_interval_ms": args.flush_interval_ms,
            "produced_bytes": produced_bytes,
            "produced_gib": produced_bytes / (1 << 30),
            "write_seconds": write_seconds,
            "before": before,
            "compaction": compaction,
            "after": after,
        }
        os.makedirs(args.out, exist_ok=True)
        stem = os.path.join(args.out, f"{time.strftime('%Y-%m-%d')}-compaction{'-' + args.tag if args.tag else ''}")
        with open(stem + ".json", "w") as f:
            json.dump(doc, f, indent=2)
        with open(stem + ".md", "w") as f:
            f.write(markdown(doc))
        log(f"wrote {stem}.json and .md")
        print(markdown(doc))
    finally:
        if args.keep:
            log(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
