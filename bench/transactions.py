#!/usr/bin/env python3
"""Transactional produce beside idempotent produce, in one run.

    python3 bench/transactions.py [--mib 256] [--partitions 16]
        [--records-per-txn 10000,1000] [--fjord-bin BIN]
        [--latency-profile s3-standard] [--out bench/results] [--tag T]

One agent over a local-directory bucket behind the agent's latency model
(S3 Standard by default) and a SQLite metadata file. One confluent-kafka
producer process per phase writes --mib MiB of 1 KiB record values over
--partitions partitions, as fast as it is answered:

1. idempotent: `enable.idempotence=true`, acks=all;
2. transactional, for each size in --records-per-txn: transactions of that
   many records, each committed before the next begins (the way a
   stream processor commits), so every transaction waits for its records'
   flush, the commit decision and its markers' flush.

Reported per phase: MB/s and records/s of values, transactions/s, the
commit latency (p50/p99, seconds), and the agent's CPU seconds per GiB.
Writes <out>/<date>-transactions[-tag].{json,md}.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

from fjordbench import cluster as cluster_mod  # noqa: E402

MESSAGE_SIZE = 1024


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=float, default=256.0, help="MiB of record values per phase")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--records-per-txn", default="10000,1000")
    parser.add_argument("--latency-profile", default="s3-standard", choices=["none", "s3-standard", "s3-express"])
    parser.add_argument("--flush-interval-ms", type=int, default=100)
    parser.add_argument("--fjord-bin", help="the fjord binary (default: build the release profile)")
    parser.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    parser.add_argument("--tag", default="")
    return parser.parse_args(argv)


def binary(args):
    if args.fjord_bin:
        return os.path.abspath(args.fjord_bin)
    subprocess.run(["cargo", "build", "--release", "-p", "fjord-agent", "--bin", "fjord"], cwd=REPO_ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO_ROOT, "target"))
    return os.path.join(target, "release", "fjord")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


PRODUCER = r"""
import json, random, string, sys, time
from confluent_kafka import Producer
bootstrap, topic, total, per_txn, txn_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = random.Random(7)
values = [''.join(rng.choice(string.ascii_letters) for _ in range(MESSAGE_SIZE)).encode() for _ in range(256)]
# Requests of up to 16 MiB (librdkafka caps them at message.max.bytes, 1 MB
# by default, which with five in flight would bound the pipeline, not the
# broker), batches of up to 1 MB per partition (the broker's limit).
config = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
          "linger.ms": 20, "batch.size": 1000000, "message.max.bytes": 16777216,
          "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576}
if per_txn > 0:
    config["transactional.id"] = txn_id
p = Producer(config)
errors = []
def done(error, _m):
    if error is not None:
        errors.append(str(error))
commits = []
start = time.monotonic()
if per_txn > 0:
    p.init_transactions(30)
    sent = 0
    while sent < total:
        p.begin_transaction()
        n = min(per_txn, total - sent)
        for i in range(n):
            p.produce(topic, value=values[(sent + i) % 256], on_delivery=done)
            p.poll(0)
        t = time.monotonic()
        p.commit_transaction(60)
        commits.append(time.monotonic() - t)
        sent += n
else:
    for i in range(total):
        while True:
            try:
                p.produce(topic, value=values[i % 256], on_delivery=done)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(120)
elapsed = time.monotonic() - start
print(json.dumps({"elapsed_s": elapsed, "errors": len(errors), "commits": commits}))
""".replace("MESSAGE_SIZE", str(MESSAGE_SIZE))


def percentile(samples, p):
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p))]


def phase(agent, topic, records, per_txn, label):
    cpu_before = agent.cpu_seconds()
    out = subprocess.run(
        [sys.executable, "-c", PRODUCER, agent.address, topic, str(records), str(per_txn), f"bench-{label}"],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = agent.cpu_seconds() - cpu_before
    gib = records * MESSAGE_SIZE / 2**30
    elapsed = result["elapsed_s"]
    row = {
        "phase": label,
        "records_per_txn": per_txn or None,
        "records": records,
        "elapsed_s": round(elapsed, 2),
        "mb_per_s": round(records * MESSAGE_SIZE / 1e6 / elapsed, 1),
        "records_per_s": round(records / elapsed),
        "txns_per_s": round(len(result["commits"]) / elapsed, 1) if per_txn else None,
        "commit_p50_s": percentile(result["commits"], 0.5),
        "commit_p99_s": percentile(result["commits"], 0.99),
        "agent_cpu_s_per_gib": round(cpu / gib, 2),
        "delivery_errors": result["errors"],
    }
    for key in ("commit_p50_s", "commit_p99_s"):
        if row[key] is not None:
            row[key] = round(row[key], 3)
    log(json.dumps(row))
    return row


def markdown(doc):
    lines = [
        f"# Transactional and idempotent produce ({doc['date']})",
        "",
        f"One agent, {doc['latency_profile']} latency model over a local-directory bucket, SQLite metadata; "
        f"{doc['mib']} MiB of 1 KiB values per phase over {doc['partitions']} partitions, "
        f"one confluent-kafka {doc['librdkafka']} producer, flush interval {doc['flush_interval_ms']} ms. "
        "Transactions are committed one after another.",
        "",
        "| phase | records/txn | MB/s | records/s | txns/s | commit p50 s | commit p99 s | agent CPU s/GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in doc["phases"]:
        lines.append(
            f"| {row['phase']} | {row['records_per_txn'] or '-'} | {row['mb_per_s']} | {row['records_per_s']} | "
            f"{row['txns_per_s'] or '-'} | {row['commit_p50_s'] if row['commit_p50_s'] is not None else '-'} | "
            f"{row['commit_p99_s'] if row['commit_p99_s'] is not None else '-'} | {row['agent_cpu_s_per_gib']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv):
    args = parse_args(argv)
    fjord = binary(args)
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    run_dir = tempfile.mkdtemp(prefix="fjord-bench-txn-")
    options = {
        "flush_interval_ms": args.flush_interval_ms,
        "partitions": args.partitions,
        "latency_profile": args.latency_profile,
        "extra_args": [],
    }
    agent = cluster_mod.Agent(
        fjord,
        run_dir,
        1,
        "sqlite://" + os.path.join(run_dir, "metadata.db"),
        "file://" + os.path.join(run_dir, "bucket"),
        {},
        options,
    )
    agent.start()
    records = int(args.mib * 2**20 / MESSAGE_SIZE)
    sizes = [int(s) for s in args.records_per_txn.split(",") if s]
    admin = AdminClient({"bootstrap.servers": agent.address})
    phases = [("idempotent", 0)] + [(f"transactional-{n}", n) for n in sizes]
    for label, _ in phases:
        for f in admin.create_topics([NewTopic(f"bench-{label}", num_partitions=args.partitions)]).values():
            f.result(30)
    rows = []
    try:
        for label, per_txn in phases:
            rows.append(phase(agent, f"bench-{label}", records, per_txn, label))
    finally:
        agent.stop()
    doc = {
        "date": datetime.date.today().isoformat(),
        "mib": args.mib,
        "partitions": args.partitions,
        "latency_profile": args.latency_profile,
        "flush_interval_ms": args.flush_interval_ms,
        "librdkafka": confluent_kafka.libversion()[0],
        "phases": rows,
    }
    name = f"{doc['date']}-transactions" + (f"-{args.tag}" if args.tag else "")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main(sys.argv[1:])
