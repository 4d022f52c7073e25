#!/usr/bin/env python3
"""Gateway benchmark: what producing and tailing over HTTP, and producing over
gRPC, cost next to the Kafka protocol, on one agent over a local-directory
bucket.

    python3 bench/gateway.py [--binary PATH] [--duration S] [--warmup S] [--tag T]
        [--idle-streams N] [--consume-mb MB] [--phases 1,2,...] [--out DIR] [--keep]

One agent (``fjord agent`` with ``--http-listen``), SQLite metadata and a
local-directory bucket; 8-partition topics created over HTTP; 1 KiB records of
random uppercase letters (the ``letters`` payload of the other benchmarks).
Every throughput and latency phase runs ``--warmup`` seconds unmeasured, then
``--duration`` seconds measured:

1. **Kafka path**: one confluent-kafka producer process (acks=all, idempotence
   on, linger.ms 5; fjordbench's producer worker) as fast as it is answered:
   MB/s of acknowledged record values, agent CPU-seconds per GiB.
2. **HTTP record batches**: ``--http-processes`` processes, each with one
   keep-alive connection, POSTing pre-built Kafka v2 record batches
   (``--batch-records`` records, under 1 MB) to the partitions round-robin,
   acks=all: MB/s and agent CPU s/GiB.
3. **HTTP JSON**: the same with pre-built JSON bodies of ``--json-records``
   records (utf8 text values).
4. **Produce latency at a light fixed rate** (``--latency-mb-per-s``, requests
   of 10 records to one partition, on a fixed schedule): HTTP JSON request
   round trip over ``--latency-http-connections`` keep-alive connections, each
   sequential (slot n on connection n % N, so the schedule holds while a round
   trip is shorter than N intervals), then over one sequential connection
   (which holds the rate only while a round trip is under one interval), then
   the Kafka path's ack latency (delivery report time minus produce() time,
   linger.ms 0) at the same rate and records per send.
5. **SSE end to end**: one ``text/event-stream`` tail per partition, a JSON
   producer at ``--sse-rate`` records/s stamping each record's ``timestamp``
   with the wall clock (ms) and a ``sent_ns`` header (ns); latency = receipt
   (wall clock) - send time.
6. **Idle SSE streams**: on a freshly restarted agent (so memory freed by the
   earlier phases cannot hide the streams'), ``--idle-streams`` idle tails
   (raw asyncio sockets, heartbeat 15 s): the agent's RSS before and with them
   open, per stream, its CPU while they idle, and whether ``/healthz`` answers.
7. **gRPC stream, record batches**: ``--http-processes`` processes, each with
   one grpcio channel and ONE ``Records/ProduceStream`` (h2c on the HTTP port;
   stubs generated from proto/fjord/v1/gateway.proto with grpc_tools.protoc at
   startup), sending phase 2's record batches (``record_batches``, same
   partition round-robin, ACKS_ALL) lock-step: the request iterator reads a
   queue fed with the next request once the previous answer arrived. Requests
   are serialized before the clock starts and handed to grpcio as bytes. MB/s,
   request latency (put on the queue → answer read) and agent CPU s/GiB, as
   phase 2.
8. **gRPC stream, protobuf records**: the same with phase 3's values as
   protobuf ``records`` (``--json-records`` per request, each record naming its
   partition as phase 3's JSON does): gRPC's equivalent of phase 3.
9. **Group consume**: an 8-partition topic prefilled, unmeasured, through the
   Kafka path (one confluent-kafka producer with phase 1's settings) with
   ``--consume-mb`` MB of 1 KiB ``letters`` values (letters only, no binary
   header, so they read back as UTF-8 text), then read whole, once by each of
   two fresh groups on the same agent, one after the other (Kafka first):
   (a) one confluent-kafka consumer process, ``group.protocol=consumer``
   (KIP-848), ``subscribe()``, auto commit, ``max.partition.fetch.bytes``
   8 MiB (8× the default) and ``fetch.max.bytes`` 50 MiB (the default; the
   agent caps a fetch at 55 MiB), ``consume(10000)``;
   (b) ``--http-processes`` HTTP members in one group, each a process with
   one keep-alive connection that joins (``POST /v1/groups/{g}/members``) and
   polls (``max_bytes`` ``--consume-max-bytes``, ``max_records`` 10,000, the
   gateway's cap, ``wait_ms`` 100, ``auto_commit``, ``encoding``
   ``--consume-encoding``, utf8 by default). Each read is timed from the
   first call (``subscribe()`` and the first ``consume()``, or the joins) to
   the last record of the prefill, not over a fixed window, so it includes
   the group's joins and rebalances: MB/s of record values, records/s, agent
   CPU-seconds per GiB (the agent's CPU from the first call until the driver
   saw the last record), load-generator CPU, and for HTTP the poll round trip
   p50/p99 and how many polls. Every record must arrive exactly once per group
   (the offset ranges read, per partition, tile the prefill with no overlap and
   no gap), else the phase fails.

Agent CPU per GiB is the agent's CPU (``/proc/<pid>/stat``) over the measured
window divided by the GiB of record values acknowledged in that window, for
every path alike; the table gives each path's MB/s and CPU per GiB as a ratio
to the Kafka path's (phase 1 of the same run). MB is 10^6 bytes, GiB 2^30
bytes.

Writes ``<out>/<date>-gateway[-tag].{json,md}`` (default out: bench/results)
and prints the Markdown. A phase that errors is recorded as such and the next
one runs.
"""

import argparse
import array
import asyncio
import http.client
import json
import multiprocessing
import os
import queue
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

from fjordbench import cluster as cluster_mod  # noqa: E402
from fjordbench import report, workers, workload  # noqa: E402

GIB = float(1 << 30)
MB = 1e6
MIB = float(1 << 20)
RECORD_BATCH = "application/vnd.kafka.record-batch"
# Kafka's message.max.bytes (1,048,588) bounds a batch the agent accepts.
MAX_BATCH_BYTES = 1_000_000
POOL_STRIDE = 7919  # as fjordbench's producer: consecutive records never overlap in the pool

ALL_PHASES = ("1", "2", "3", "4", "5", "6", "7", "8", "9")
PHASE_NAMES = {
    "1": "kafka_saturation",
    "2": "http_record_batch",
    "3": "http_json",
    "4": "produce_latency",
    "5": "sse_end_to_end",
    "6": "idle_sse_streams",
    "7": "grpc_stream_record_batch",
    "8": "grpc_stream_records",
    "9": "group_consume",
}
# Phase 9's Kafka consumer: larger per-partition fetches than librdkafka's
# 1 MiB default; fetch.max.bytes stays at its default (50 MiB), under the
# agent's cap (fetch_max_bytes, 55 MiB).
GROUP_CONSUMER_FETCH = {"max.partition.fetch.bytes": 8 << 20, "fetch.max.bytes": 50 << 20}
# Phase 9's HTTP polls: the gateway's cap on max_records, and how long a poll
# waits when the member's partitions have nothing (or it has none yet).
GROUP_POLL_MAX_RECORDS = 10_000
GROUP_POLL_WAIT_MS = 100
GROUP_SESSION_TIMEOUT_MS = 30_000


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--binary", help="the fjord binary (default: cargo build --profile release)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds of each phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each phase's window")
    parser.add_argument("--tag", default="", help="appended to the result file names")
    parser.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--phases", default=",".join(ALL_PHASES), help="which phases to run, e.g. 1,2")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--message-size", type=int, default=1024, help="record value bytes")
    parser.add_argument(
        "--http-processes", type=int, default=4, help="client processes of phases 2, 3, 7 and 8; HTTP members of phase 9"
    )
    parser.add_argument("--batch-records", type=int, default=900, help="records per record-batch request")
    parser.add_argument("--json-records", type=int, default=500, help="records per JSON request")
    parser.add_argument("--latency-mb-per-s", type=float, default=2.0, help="phase 4 rate (MB/s of values)")
    parser.add_argument("--latency-records", type=int, default=10, help="phase 4 records per request")
    parser.add_argument(
        "--latency-http-connections",
        type=int,
        default=4,
        help="phase 4: HTTP connections sharing the schedule (each sequential); 1 connection is also run",
    )
    parser.add_argument("--sse-rate", type=float, default=500.0, help="phase 5 records/s")
    parser.add_argument("--idle-streams", type=int, default=10_000, help="phase 6 idle SSE connections")
    parser.add_argument("--idle-hold", type=float, default=10.0, help="phase 6 seconds the streams stay open, measured")
    parser.add_argument("--flush-interval-ms", type=int, default=100)
    parser.add_argument("--consume-mb", type=float, default=1024.0, help="phase 9: MB of records prefilled and read")
    parser.add_argument(
        "--consume-max-bytes", type=int, default=4 << 20, help="phase 9: max_bytes of each HTTP member poll"
    )
    parser.add_argument(
        "--consume-encoding", choices=("utf8", "base64"), default="utf8", help="phase 9: encoding of the HTTP polls"
    )
    parser.add_argument(
        "--consume-idle-timeout", type=float, default=60.0, help="phase 9: seconds without progress before a read gives up"
    )
    return parser.parse_args(argv)


def agent_binary(args):
    if args.binary:
        return os.path.abspath(args.binary)
    # The same build as bench/run.py's default (release profile).
    command = ["cargo", "build", "--profile", "release", "-p", "fjord-agent", "--bin", "fjord"]
    print(f"building the agent: {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=REPO_ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO_ROOT, "target"))
    return os.path.join(target, "release", "fjord")


# ----- small helpers -----


def _log_factory():
    started = time.monotonic()

    def log(message):
        print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)

    return log


def http_call(port, method, path, body=None, headers=None, timeout=30):
    """One request on a fresh connection: (status, parsed JSON or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


def wait_http(agent, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if agent.process.poll() is not None:
            raise RuntimeError(f"the agent exited ({agent.process.returncode}):\n{agent.log_tail()}")
        try:
            status, _ = http_call(agent.http_port, "GET", "/readyz", timeout=2)
            if status == 200:
                return
            last = status
        except OSError as error:
            last = error
        time.sleep(0.1)
    raise RuntimeError(f"the gateway was not ready within {timeout_s} s (last: {last})")


def create_topic(port, name, partitions):
    status, body = http_call(port, "POST", "/v1/topics", {"name": name, "partitions": partitions})
    if status != 201:
        raise RuntimeError(f"creating topic {name}: HTTP {status} {body}")
    got = len(body.get("partitions", [])) if isinstance(body, dict) else None
    if got not in (None, partitions):
        raise RuntimeError(f"topic {name} has {got} partitions, asked {partitions}")


def letters_values(seed, size, count, start=0):
    """``count`` values of ``size`` random uppercase letters, cut from a pool as
    fjordbench's producer cuts them."""
    pool = workers.make_pool("letters", seed=seed)
    span = len(pool) - size
    out = []
    for n in range(count):
        offset = ((start + n) * POOL_STRIDE) % span
        out.append(pool[offset : offset + size])
    return out


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


def _sleep_until(monotonic_ns):
    while True:
        remaining = monotonic_ns - time.monotonic_ns()
        if remaining <= 0:
            return
        time.sleep(min(remaining / 1e9, 0.05))


def _pcts(samples):
    return workload.percentiles(list(samples))


class _Spans:
    """The offset ranges a reader got, per partition: consecutive offsets
    extend the open range, anything else starts a new one. Merged over a
    group's readers, they show every duplicate and every gap (`_verify_spans`)."""

    def __init__(self):
        self.start = {}
        self.next = {}
        self.closed = []

    def add(self, partition, offset):
        expected = self.next.get(partition)
        if expected != offset:
            if expected is not None:
                self.closed.append((partition, self.start[partition], expected))
            self.start[partition] = offset
        self.next[partition] = offset + 1

    def result(self):
        """[(partition, first offset, end offset)] (end exclusive)."""
        return self.closed + [(p, self.start[p], n) for p, n in self.next.items()]


def _verify_spans(span_lists, expected):
    """Checks that the readers' ranges tile ``expected`` ({partition: record
    count}, offsets 0..count) exactly: duplicates (offsets read more than
    once), missing (never read) and unexpected (outside the prefill) counts."""
    by_partition = {}
    for spans in span_lists:
        for p, first, end in spans:
            by_partition.setdefault(p, []).append((first, end))
    out = {"duplicates": 0, "missing": 0, "unexpected": 0, "per_partition": {}}
    for p in sorted(set(expected) | set(by_partition)):
        want = expected.get(p, 0)
        ranges = sorted(by_partition.get(p, []))
        read = sum(end - first for first, end in ranges)
        union = inside = 0
        reach = None
        for first, end in ranges:
            low = first if reach is None else max(first, reach)
            if end > low:
                union += end - low
                inside += max(0, min(end, want) - max(low, 0))
                reach = end
        out["duplicates"] += read - union
        out["missing"] += want - inside
        out["unexpected"] += union - inside
        out["per_partition"][str(p)] = {"expected": want, "read": read, "ranges": len(ranges)}
    out["ok"] = out["duplicates"] == 0 and out["missing"] == 0 and out["unexpected"] == 0
    return out


def _agent_sample(agent):
    busy, total = cluster_mod.machine_cpu()
    driver = os.times()
    return {
        "at": time.monotonic(),
        "agent_cpu": agent.cpu_seconds(),
        "machine_busy": busy,
        "driver_cpu": driver.user + driver.system,
    }


def _accounting(before, after, loadgen_cpu):
    """Agent, load-generator and everyone else's cores between two samples."""
    wall = after["at"] - before["at"]
    agent = after["agent_cpu"] - before["agent_cpu"]
    driver = after["driver_cpu"] - before["driver_cpu"]
    machine = after["machine_busy"] - before["machine_busy"]
    loadgen = loadgen_cpu + driver
    return {
        "wall_seconds": wall,
        "agent_cpu_seconds": agent,
        "agent_cores": agent / wall if wall > 0 else None,
        "loadgen_cpu_seconds": loadgen,
        "loadgen_cores": loadgen / wall if wall > 0 else None,
        "machine_busy_cores": machine / wall if wall > 0 else None,
        "other_cores": max(0.0, machine - agent - loadgen) / wall if wall > 0 else None,
    }


# ----- phase 2 and 3: HTTP throughput workers (spawned processes) -----


def http_worker_main(spec, control, results):
    try:
        results.put(_http_worker(spec, control))
    except BaseException as error:  # report, never hang the driver
        results.put({"index": spec["index"], "fatal": repr(error) + "\n" + traceback.format_exc()})
        raise


def _build_bodies(spec):
    """Pre-built request bodies: (path suffix or partition, body bytes, value bytes) rows."""
    index = spec["index"]
    size = spec["message_size"]
    per = spec["records_per_request"]
    partitions = spec["partitions"]
    variants = spec["variants"]
    bodies = []
    if spec["kind"] == "batch":
        from kafka.record.default_records import DefaultRecordBatchBuilder

        values = letters_values(seed=100 + index, size=size, count=per * variants)
        now_ms = int(time.time() * 1000)
        for v in range(variants):
            builder = DefaultRecordBatchBuilder(
                magic=2,
                compression_type=0,
                is_transactional=False,
                producer_id=-1,
                producer_epoch=-1,
                base_sequence=-1,
                batch_size=1 << 21,
            )
            for i in range(per):
                if builder.append(i, timestamp=now_ms, key=None, value=values[v * per + i], headers=[]) is None:
                    raise RuntimeError(f"record {i} does not fit the batch")
            body = bytes(builder.build())
            if len(body) > MAX_BATCH_BYTES:
                raise RuntimeError(f"a batch of {per} records is {len(body):,} bytes, over {MAX_BATCH_BYTES:,}")
            bodies.append((None, body, per * size))
    else:
        # JSON to the topic, every record naming its partition: one body per
        # (partition, variant), so each request carries different text.
        values = letters_values(seed=200 + index, size=size, count=per * variants)
        texts = [v.decode("ascii") for v in values]
        for v in range(variants):
            chunk = texts[v * per : (v + 1) * per]
            for p in partitions:
                doc = {"records": [{"value": t, "partition": p} for t in chunk], "encoding": "utf8"}
                bodies.append((p, json.dumps(doc, separators=(",", ":")).encode(), per * size))
    return bodies


def _http_worker(spec, control):
    index = spec["index"]
    port = spec["port"]
    topic = spec["topic"]
    partitions = spec["partitions"]
    kind = spec["kind"]
    bodies = _build_bodies(spec)
    if kind == "batch":
        headers = {"Content-Type": RECORD_BATCH}
        # Request n goes to partition (index + n) % P, with a batch that
        # shifts by one each round, so every partition sees every batch.
        count = len(partitions)
        plan = [
            (
                f"/v1/topics/{topic}/partitions/{partitions[(index + n) % count]}/records?acks=all",
                bodies[(n + n // count) % len(bodies)],
            )
            for n in range(count * len(bodies))
        ]
    else:
        headers = {"Content-Type": "application/json"}
        # Round-robin over the partitions, and over the variants of each.
        by_partition = {}
        for p, body, value_bytes in bodies:
            by_partition.setdefault(p, []).append((p, body, value_bytes))
        variants = spec["variants"]
        plan = []
        for v in range(variants):
            for k in range(len(partitions)):
                p = partitions[(index + k) % len(partitions)]
                plan.append((f"/v1/topics/{topic}/records?acks=all", by_partition[p][v]))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.connect()
    control["ready"].set()
    start, (window_start, window_end) = control["start"].get()
    _sleep_until(start)
    latencies = array.array("d")
    statuses = {}
    first_errors = []
    exceptions = 0
    requests_ok = 0
    window_requests = 0
    window_bytes = 0
    acked_bytes = 0
    reconnects = 0
    cpu_window_start = cpu_window_end = None
    n = 0
    while True:
        now = time.monotonic_ns()
        if cpu_window_start is None and now >= window_start:
            cpu_window_start = _cpu_seconds()
        if now >= window_end:
            break
        path, (_, body, value_bytes) = plan[n % len(plan)]
        n += 1
        sent = time.monotonic_ns()
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            exceptions += 1
            if len(first_errors) < 5:
                first_errors.append(f"{type(error).__name__}: {error}")
            connection.close()
            reconnects += 1
            time.sleep(0.05)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        done = time.monotonic_ns()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status != 200 or (kind == "json" and b'"error"' in data):
            if len(first_errors) < 5:
                first_errors.append(f"HTTP {response.status}: {data[:300].decode(errors='replace')}")
            if response.status >= 500:
                time.sleep(0.05)
        else:
            requests_ok += 1
            acked_bytes += value_bytes
            if window_start <= done < window_end:
                window_requests += 1
                window_bytes += value_bytes
            if window_start <= sent < window_end:
                latencies.append((done - sent) / 1e6)
        if response.will_close:
            connection.close()
            reconnects += 1
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    cpu_window_end = _cpu_seconds()
    connection.close()
    return {
        "index": index,
        "requests_ok": requests_ok,
        "acked_bytes": acked_bytes,
        "window_requests": window_requests,
        "window_bytes": window_bytes,
        "statuses": {str(k): v for k, v in statuses.items()},
        "exceptions": exceptions,
        "reconnects": reconnects,
        "first_errors": first_errors,
        "latencies_ms": latencies.tobytes(),
        "body_bytes": [len(b) for _, b, _ in bodies],
        "window_cpu_seconds": (cpu_window_end - cpu_window_start) if cpu_window_start is not None else 0.0,
    }


# ----- phase 7 and 8: gRPC ProduceStream workers (spawned processes) -----

PRODUCE_STREAM = "/fjord.v1.Records/ProduceStream"


def generate_grpc_stubs(out):
    """``python -m grpc_tools.protoc`` of gateway.proto into ``out`` (as
    tests/clients/grpc_gateway.py does); the workers import them from there."""
    os.makedirs(out, exist_ok=True)
    proto = os.path.join(REPO_ROOT, "proto")
    command = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"--python_out={out}", f"--grpc_python_out={out}",
        os.path.join(proto, "fjord", "v1", "gateway.proto"),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({done.returncode}): {done.stdout}{done.stderr}")
    return out


def _import_stubs(stubs_dir):
    if stubs_dir not in sys.path:
        sys.path.insert(0, stubs_dir)
    from fjord.v1 import gateway_pb2  # noqa: E402 - generated at run time

    return gateway_pb2


def grpc_worker_main(spec, control, results):
    try:
        results.put(_grpc_worker(spec, control))
    except BaseException as error:  # report, never hang the driver
        results.put({"index": spec["index"], "fatal": repr(error) + "\n" + traceback.format_exc()})
        raise


def _grpc_plan(spec, pb):
    """The stream's requests, serialized before the clock starts, in the order
    phase 2 (record batches) or phase 3 (records) sends its bodies:
    (request bytes, value bytes, partition or None, answers expected) rows."""
    index = spec["index"]
    topic = spec["topic"]
    partitions = spec["partitions"]
    count = len(partitions)
    per = spec["records_per_request"]
    size = spec["message_size"]
    if spec["kind"] == "batch":
        # Phase 2's bodies (same seeds, same batches) and its plan: request n
        # to partition (index + n) % P with batch (n + n // P) % variants.
        bodies = _build_bodies({**spec, "kind": "batch"})
        plan = []
        for n in range(count * len(bodies)):
            p = partitions[(index + n) % count]
            _, body, value_bytes = bodies[(n + n // count) % len(bodies)]
            request = pb.ProduceRequest(topic=topic, partition=p, record_batches=body, acks=pb.ACKS_ALL)
            plan.append((request.SerializeToString(), value_bytes, p, 1))
        return plan
    # Phase 3's values (same seeds) as protobuf records, every record naming
    # its partition (as phase 3's JSON does), the request none; round-robin
    # over the partitions and over the variants of each.
    variants = spec["variants"]
    values = letters_values(seed=200 + index, size=size, count=per * variants)
    messages = {}
    for v in range(variants):
        chunk = values[v * per : (v + 1) * per]
        for p in partitions:
            request = pb.ProduceRequest(
                topic=topic, records=[pb.Record(value=value, partition=p) for value in chunk], acks=pb.ACKS_ALL
            )
            messages[(p, v)] = request.SerializeToString()
    plan = []
    for v in range(variants):
        for k in range(count):
            p = partitions[(index + k) % count]
            plan.append((messages[(p, v)], per * size, p, per))
    return plan


def _grpc_worker(spec, control):
    import grpc

    pb = _import_stubs(spec["stubs_dir"])
    index = spec["index"]
    plan = _grpc_plan(spec, pb)
    channel = grpc.insecure_channel(f"127.0.0.1:{spec['port']}")
    grpc.channel_ready_future(channel).result(timeout=30)
    # The requests are bytes already: no serializer, so grpcio sends them as
    # they are (its own framing is all that happens in the loop).
    method = channel.stream_stream(
        PRODUCE_STREAM, request_serializer=None, response_deserializer=pb.ProduceResponse.FromString
    )
    control["ready"].set()
    start, (window_start, window_end) = control["start"].get()
    deadline_s = (window_end - time.monotonic_ns()) / 1e9 + 120

    def open_stream():
        # Lock-step: the request iterator takes the next request from this
        # queue, which is fed once the previous answer arrived. None ends it.
        requests = queue.SimpleQueue()
        timeout = max(5.0, deadline_s - (time.monotonic_ns() - start) / 1e9)
        return requests, method(iter(requests.get, None), timeout=timeout)

    latencies = array.array("d")
    codes = {}
    first_errors = []
    stream_errors = 0
    bad_answers = 0
    streams_opened = 1
    requests_ok = 0
    window_requests = 0
    window_bytes = 0
    acked_bytes = 0
    cpu_window_start = None
    _sleep_until(start)
    requests, responses = open_stream()
    n = 0
    while True:
        now = time.monotonic_ns()
        if cpu_window_start is None and now >= window_start:
            cpu_window_start = _cpu_seconds()
        if now >= window_end:
            break
        body, value_bytes, partition, answers = plan[n % len(plan)]
        n += 1
        sent = time.monotonic_ns()
        try:
            requests.put(body)
            answer = next(responses)
        except (grpc.RpcError, StopIteration) as error:
            stream_errors += 1
            if isinstance(error, grpc.RpcError):
                code = error.code().name if error.code() else "?"
                message = f"{code}: {error.details()}"
            else:
                code, message = "ENDED", "the stream ended without a status error"
            codes[code] = codes.get(code, 0) + 1
            if len(first_errors) < 5:
                first_errors.append(message[:300])
            time.sleep(0.05)
            requests, responses = open_stream()
            streams_opened += 1
            continue
        done = time.monotonic_ns()
        if len(answer.records) != answers or any(m.partition != partition or m.offset < 0 for m in answer.records):
            bad_answers += 1
            if len(first_errors) < 5:
                first_errors.append(f"answer of {len(answer.records)} records, expected {answers} in {partition}: {str(answer)[:200]}")
            continue
        requests_ok += 1
        acked_bytes += value_bytes
        if window_start <= done < window_end:
            window_requests += 1
            window_bytes += value_bytes
        if window_start <= sent < window_end:
            latencies.append((done - sent) / 1e6)
    cpu_window_end = _cpu_seconds()
    # Half-close and read the status: OK, or the failure that ended it.
    requests.put(None)
    end_status = "OK"
    try:
        for _ in responses:
            bad_answers += 1  # an answer to no request
    except grpc.RpcError as error:
        end_status = f"{error.code().name}: {error.details()}"
    channel.close()
    return {
        "index": index,
        "requests_ok": requests_ok,
        "acked_bytes": acked_bytes,
        "window_requests": window_requests,
        "window_bytes": window_bytes,
        "codes": codes,
        "stream_errors": stream_errors,
        "bad_answers": bad_answers,
        "streams_opened": streams_opened,
        "end_status": end_status,
        "first_errors": first_errors,
        "latencies_ms": latencies.tobytes(),
        "body_bytes": sorted({len(b) for b, _, _, _ in plan}),
        "window_cpu_seconds": (cpu_window_end - cpu_window_start) if cpu_window_start is not None else 0.0,
        "grpcio": grpc.__version__,
    }


# ----- phase 5: SSE tails (one spawned process, a thread per partition) -----


def sse_reader_main(spec, control, results):
    try:
        results.put(_sse_reader(spec, control))
    except BaseException as error:
        results.put({"index": 0, "fatal": repr(error) + "\n" + traceback.format_exc()})
        raise


def _sse_reader(spec, control):
    import requests

    port = spec["port"]
    topic = spec["topic"]
    state = {
        p: {
            "ts_latency": array.array("d"),
            "ns_latency": array.array("d"),
            "sent_ns": array.array("q"),
            "offsets": array.array("q"),
            "error_events": [],
            "heartbeats": 0,
            "status": None,
            "ended": None,
            "exception": None,
        }
        for p in spec["partitions"]
    }
    opened = threading.Semaphore(0)

    def tail(partition):
        s = state[partition]
        try:
            session = requests.Session()
            response = session.get(
                f"http://127.0.0.1:{port}/v1/topics/{topic}/partitions/{partition}/records",
                params={"offset": "latest", "heartbeat_ms": 15000},
                headers={"Accept": "text/event-stream"},
                stream=True,
                timeout=(10, None),
            )
            s["status"] = response.status_code
            s["content_type"] = response.headers.get("content-type")
            opened.release()
            if response.status_code != 200:
                s["exception"] = f"HTTP {response.status_code}: {response.text[:300]}"
                return
            event = None
            for line in response.iter_lines(chunk_size=None):
                now_ns = time.time_ns()
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if event == "error":
                        s["error_events"].append(payload[:300].decode(errors="replace"))
                        continue
                    record = json.loads(payload)
                    s["offsets"].append(record["offset"])
                    s["ts_latency"].append(now_ns / 1e6 - record["timestamp"])
                    sent = None
                    for header in record.get("headers") or []:
                        if header.get("key") == "sent_ns":
                            sent = int(header["value"])
                    if sent is not None:
                        s["sent_ns"].append(sent)
                        s["ns_latency"].append((now_ns - sent) / 1e6)
                    else:
                        s["sent_ns"].append(-1)
                        s["ns_latency"].append(-1.0)
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b":"):
                    s["heartbeats"] += 1
                elif not line:
                    event = None
            s["ended"] = "the agent ended the stream"
        except BaseException as error:  # noqa: BLE001 - recorded
            s["exception"] = f"{type(error).__name__}: {error}"
            opened.release()

    threads = [threading.Thread(target=tail, args=(p,), daemon=True) for p in spec["partitions"]]
    for t in threads:
        t.start()
    for _ in threads:
        opened.acquire(timeout=30)
    control["ready"].set()
    control["stop"].wait()
    out = {"index": 0, "partitions": {}}
    for p, s in state.items():
        n = len(s["offsets"])
        out["partitions"][str(p)] = {
            "status": s["status"],
            "content_type": s.get("content_type"),
            "ended": s["ended"],
            "exception": s["exception"],
            "heartbeats": s["heartbeats"],
            "error_events": s["error_events"][:5],
            "offsets": s["offsets"][:n].tobytes(),
            "ts_latency": s["ts_latency"][:n].tobytes(),
            "ns_latency": s["ns_latency"][:n].tobytes(),
            "sent_ns": s["sent_ns"][:n].tobytes(),
        }
    return out


# ----- phase 6: idle SSE connections (one spawned asyncio process) -----


def idle_client_main(spec, control, results):
    try:
        asyncio.run(_idle_client(spec, control, results))
    except BaseException as error:
        results.put({"index": 0, "fatal": repr(error) + "\n" + traceback.format_exc()})
        raise


async def _idle_client(spec, control, results):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = spec["streams"]
    # Keep some descriptors for the interpreter, the queue pipes and the loop.
    target = min(wanted, soft - 100) if soft != resource.RLIM_INFINITY else wanted
    port = spec["port"]
    topic = spec["topic"]
    partitions = spec["partitions"]
    gate = asyncio.Semaphore(spec.get("concurrency", 200))
    connections = []
    errors = {}
    first_errors = []

    async def open_one(i):
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            except (OSError, asyncio.TimeoutError) as error:
                return _fail(f"connect: {type(error).__name__}: {error}")
            try:
                p = partitions[i % len(partitions)]
                writer.write(
                    (
                        f"GET /v1/topics/{topic}/partitions/{p}/records?offset=latest&heartbeat_ms=15000 HTTP/1.1\r\n"
                        f"Host: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
                    ).encode()
                )
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                writer.close()
                return _fail(f"request: {type(error).__name__}: {error}")
            status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            if b" 200 " not in head.split(b"\r\n", 1)[0] + b" " or b"text/event-stream" not in head.lower():
                writer.close()
                return _fail(f"answer: {status_line}")
            connections.append((reader, writer))

    def _fail(message):
        key = message.split(":")[0] + ": " + message.split(":")[1].strip() if ":" in message else message
        errors[key] = errors.get(key, 0) + 1
        if len(first_errors) < 5:
            first_errors.append(message)

    started = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(target)))
    open_seconds = time.monotonic() - started
    results.put(
        {
            "index": 0,
            "stage": "opened",
            "wanted": wanted,
            "attempted": target,
            "opened": len(connections),
            "failed": sum(errors.values()),
            "errors": errors,
            "first_errors": first_errors,
            "open_seconds": open_seconds,
            "nofile_soft": soft,
            "nofile_hard": hard,
        }
    )
    # Hold them: count what arrives (heartbeats, records) and streams the agent ends.
    closed_by_agent = 0
    bytes_received = 0

    async def watch(reader):
        nonlocal closed_by_agent, bytes_received
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    closed_by_agent += 1
                    return
                bytes_received += len(data)
        except (OSError, asyncio.CancelledError):
            return

    watchers = [asyncio.ensure_future(watch(r)) for r, _ in connections]
    while not control["stop"].is_set():
        await asyncio.sleep(0.2)
    for w in watchers:
        w.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    for _, writer in connections:
        writer.close()
    results.put(
        {
            "index": 0,
            "stage": "closed",
            "closed_by_agent_while_held": closed_by_agent,
            "bytes_received_while_held": bytes_received,
        }
    )


# ----- phase 9: group consume (spawned processes) -----


def prefill_main(spec, control, results):
    try:
        results.put(_prefill(spec))
    except BaseException as error:  # report, never hang the driver
        results.put({"index": 0, "fatal": repr(error) + "\n" + traceback.format_exc()})
        raise


def _prefill(spec):
    """``spec['records']`` letters values to the partitions round-robin through
    one confluent-kafka producer (phase 1's settings), as fast as it is
    answered; the offsets each partition got."""
    from confluent_kafka import Producer

    size = spec["message_size"]
    partitions = spec["partitions"]
    count = len(partitions)
    topic = spec["topic"]
    pool = workers.make_pool("letters", seed=spec["seed"])
    span = len(pool) - size
    producer = Producer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": spec["batch_size"],
            "message.max.bytes": spec["message_max_bytes"],
            "client.id": "fjord-bench-gateway-prefill",
            "delivery.timeout.ms": 120_000,
        }
    )
    delivered = {p: 0 for p in partitions}
    next_offset = {p: 0 for p in partitions}
    state = {"errors": 0, "first_errors": []}

    def on_delivery(error, message):
        if error is not None:
            state["errors"] += 1
            if len(state["first_errors"]) < 5:
                state["first_errors"].append(str(error))
            return
        p = message.partition()
        delivered[p] += 1
        next_offset[p] = max(next_offset[p], message.offset() + 1)

    producer.list_topics(topic, timeout=30)
    started = time.monotonic_ns()
    cpu_start = _cpu_seconds()
    produce, poll = producer.produce, producer.poll
    for n in range(spec["records"]):
        offset = (n * POOL_STRIDE) % span
        value = pool[offset : offset + size]
        while True:
            try:
                produce(topic, value, partition=partitions[n % count], on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.01)
        if n & 255 == 0:
            poll(0)
    remaining = producer.flush(300)
    return {
        "index": 0,
        "records": spec["records"],
        "delivered": {str(p): v for p, v in delivered.items()},
        "next_offset": {str(p): v for p, v in next_offset.items()},
        "errors": state["errors"],
        "first_errors": state["first_errors"],
        "unflushed": remaining,
        "seconds": (time.monotonic_ns() - started) / 1e9,
        "cpu_seconds": _cpu_seconds() - cpu_start,
    }


def kafka_group_consumer_main(spec, control, results):
    try:
        results.put(_kafka_group_consumer(spec, control))
    except BaseException as error:  # report, never hang the driver
        results.put({"index": spec["index"], "fatal": repr(error) + "\n" + traceback.format_exc()})
        raise


def _kafka_group_consumer(spec, control):
    """One consumer of a fresh group (``group.protocol=consumer``): connects
    before the clock, subscribes when it starts, and reads until the group's
    counter holds every record."""
    from confluent_kafka import Consumer

    topic = spec["topic"]
    config = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": spec["group"],
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "client.id": f"fjord-bench-gateway-group-{spec['index']}",
        **spec["fetch"],
    }
    consumer = Consumer(config)
    consumer.list_topics(topic, timeout=30)
    counter, stop, expected = control["counter"], control["stop"], spec["expected"]
    control["ready"].set()
    start = control["start"].get()
    _sleep_until(start)
    cpu_start = _cpu_seconds()
    consumer.subscribe([topic])
    spans = _Spans()
    add = spans.add
    consume = consumer.consume
    received = received_bytes = consume_calls = 0
    errors = []
    first_record_ns = last_record_ns = None
    cpu_last = cpu_start
    while not stop.is_set():
        messages = consume(num_messages=10_000, timeout=0.1)
        consume_calls += 1
        got = size = 0
        for message in messages:
            if message.error() is not None:
                if len(errors) < 5:
                    errors.append(str(message.error()))
                continue
            size += len(message.value())
            add(message.partition(), message.offset())
            got += 1
        if got:
            now = time.monotonic_ns()
            cpu_last = _cpu_seconds()
            first_record_ns = first_record_ns or now
            last_record_ns = now
            received += got
            received_bytes += size
            with counter.get_lock():
                counter.value += got
                total = counter.value
        else:
            total = counter.value
        if total >= expected:
            break
    cpu_end = _cpu_seconds()
    consumer.close()
    return {
        "index": spec["index"],
        "received": received,
        "received_bytes": received_bytes,
        "consume_calls": consume_calls,
        "errors": errors,
        "spans": spans.result(),
        "first_record_ns": first_record_ns,
        "last_record_ns": last_record_ns,
        "cpu_to_last_record": cpu_last - cpu_start,
        "cpu_seconds": cpu_end - cpu_start,
    }


def http_group_member_main(spec, control, results):
    try:
        results.put(_http_group_member(spec, control))
    except BaseException as error:  # report, never hang the driver
        results.put({"index": spec["index"], "fatal": repr(error) + "\n" + traceback.format_exc()})
        raise


def _http_group_member(spec, control):
    """One HTTP member on one keep-alive connection: joins when the clock
    starts, then polls (auto_commit) until the group's counter holds every
    record; leaves."""
    import binascii
    from urllib.parse import quote

    index = spec["index"]
    port = spec["port"]
    group = spec["group"]
    asked = spec["encoding"]
    counter, stop, expected = control["counter"], control["stop"], spec["expected"]
    headers = {"Content-Type": "application/json"}
    join_body = json.dumps({"topics": [spec["topic"]], "session_timeout_ms": spec["session_timeout_ms"]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.connect()

    def call(method, path, body=None):
        connection.request(method, path, body=body, headers=headers if body is not None else {})
        response = connection.getresponse()
        return response.status, response.read()

    def join(member_id=None):
        body = join_body
        if member_id is not None:
            body = json.dumps(
                {"topics": [spec["topic"]], "session_timeout_ms": spec["session_timeout_ms"], "member_id": member_id}
            ).encode()
        sent = time.monotonic_ns()
        status, data = call("POST", f"/v1/groups/{group}/members", body)
        join_ms.append((time.monotonic_ns() - sent) / 1e6)
        if status != 201:
            raise RuntimeError(f"join: HTTP {status}: {data[:300].decode(errors='replace')}")
        answer = json.loads(data)
        return answer["member_id"], answer["member_epoch"], answer["cursor"], len(answer["assignment"])

    control["ready"].set()
    start = control["start"].get()
    _sleep_until(start)
    cpu_start = _cpu_seconds()
    join_ms = []
    member_id, epoch, cursor, owned = join()
    poll_path = f"/v1/groups/{group}/members/{quote(member_id, safe='')}/poll"
    spans = _Spans()
    add = spans.add
    poll_sent = array.array("q")
    poll_ms = array.array("d")
    poll_records = array.array("l")
    response_bytes = 0
    statuses = {}
    first_errors = []
    exceptions = rejoins = assigned_events = revoked_events = 0
    received = received_bytes = 0
    first_record_ns = last_record_ns = None
    cpu_last = cpu_start
    while not stop.is_set() and counter.value < expected:
        body = json.dumps(
            {
                "member_epoch": epoch,
                "cursor": cursor,
                "max_records": spec["max_records"],
                "max_bytes": spec["max_bytes"],
                "wait_ms": spec["wait_ms"],
                "auto_commit": True,
                "encoding": spec["encoding"],
            },
            separators=(",", ":"),
        ).encode()
        sent = time.monotonic_ns()
        try:
            status, data = call("POST", poll_path, body)
        except (OSError, http.client.HTTPException) as error:
            exceptions += 1
            if len(first_errors) < 5:
                first_errors.append(f"{type(error).__name__}: {error}")
            connection.close()
            time.sleep(0.05)
            continue  # http.client connects again on the next request
        done = time.monotonic_ns()
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200:
            if len(first_errors) < 5:
                first_errors.append(f"HTTP {status}: {data[:300].decode(errors='replace')}")
            if status in (404, 409):
                # 404: the session lapsed (join afresh); 409: fenced (join
                # again as the same member). Either starts from the group's
                # committed offsets: what was read since is read again.
                rejoins += 1
                member_id, epoch, cursor, owned = join(member_id if status == 409 else None)
                poll_path = f"/v1/groups/{group}/members/{quote(member_id, safe='')}/poll"
            else:
                time.sleep(0.05)
            continue
        response_bytes += len(data)
        answer = json.loads(data)
        epoch = answer["member_epoch"]
        cursor = answer["cursor"]
        assigned_events += len(answer["assigned"])
        revoked_events += len(answer["revoked"])
        records = answer["records"]
        size = 0
        for record in records:
            add(record["partition"], record["offset"])
            value = record["value"]
            # Each record says how its bytes are written (base64 when asked,
            # or when they are not UTF-8).
            if record.get("encoding", asked) == "base64":
                size += len(binascii.a2b_base64(value))
            else:
                size += len(value)  # letters: one byte per character
        poll_sent.append(sent)
        poll_ms.append((done - sent) / 1e6)
        poll_records.append(len(records))
        if records:
            now = time.monotonic_ns()
            cpu_last = _cpu_seconds()
            first_record_ns = first_record_ns or now
            last_record_ns = now
            received += len(records)
            received_bytes += size
            with counter.get_lock():
                counter.value += len(records)
    cpu_end = _cpu_seconds()
    try:
        call("DELETE", f"/v1/groups/{group}/members/{quote(member_id, safe='')}")
    except (OSError, http.client.HTTPException):
        pass
    connection.close()
    return {
        "index": index,
        "member_id": member_id,
        "received": received,
        "received_bytes": received_bytes,
        "spans": spans.result(),
        "first_record_ns": first_record_ns,
        "last_record_ns": last_record_ns,
        "join_ms": join_ms,
        "poll_sent_ns": poll_sent.tobytes(),
        "poll_ms": poll_ms.tobytes(),
        "poll_records": poll_records.tobytes(),
        "polls": len(poll_ms),
        "response_bytes": response_bytes,
        "statuses": {str(k): v for k, v in statuses.items()},
        "exceptions": exceptions,
        "rejoins": rejoins,
        "assigned_events": assigned_events,
        "revoked_events": revoked_events,
        "first_errors": first_errors,
        "cpu_to_last_record": cpu_last - cpu_start,
        "cpu_seconds": cpu_end - cpu_start,
    }


# ----- the benchmark -----


class Bench:
    def __init__(self, args, binary, run_dir, log):
        self.args = args
        self.binary = binary
        self.run_dir = run_dir
        self.log = log
        self.context = multiprocessing.get_context("spawn")
        options = dict(workload.DEFAULTS)
        options.update({"partitions": args.partitions, "flush_interval_ms": args.flush_interval_ms})
        self.cluster = cluster_mod.Cluster(binary, run_dir, 1, "dir", options)
        self.lifetimes = []

    @property
    def agent(self):
        return self.cluster.agents[0]

    def start(self):
        self.cluster.start()
        wait_http(self.agent)

    def restart(self):
        self.agent.stop()
        self.lifetimes.append(self.agent.exit_rusage)
        self.cluster.start()
        wait_http(self.agent)

    def ensure_alive(self, notes):
        if self.agent.process is None or self.agent.process.poll() is not None:
            code = self.agent.process.returncode if self.agent.process else None
            notes.append(f"the agent had exited ({code}); restarted it. Log tail:\n{self.agent.log_tail()}")
            self.log(f"!! the agent had exited ({code}); restarting it")
            self.agent.stop()
            self.lifetimes.append(self.agent.exit_rusage)
            self.start()

    def topic(self, name):
        create_topic(self.agent.http_port, name, self.args.partitions)
        return name

    def _timing(self):
        start_at = time.monotonic_ns() + 300_000_000
        w0 = start_at + int(self.args.warmup * 1e9)
        return start_at, (w0, w0 + int(self.args.duration * 1e9))

    # 1. Kafka path
    def kafka_saturation(self):
        a = self.args
        topic = self.topic("kafka-saturation")
        spec = {
            "index": 0,
            "bootstrap": self.agent.address,
            "topic": topic,
            "partitions": list(range(a.partitions)),
            "message_size": a.message_size,
            "payload": "letters",
            "acks": "all",
            "idempotence": True,
            "compression": "none",
            "linger_ms": 5,
            "batch_size": workload.DEFAULTS["batch_size"],
            "message_max_bytes": workload.DEFAULTS["message_max_bytes"],
            "rate": None,
            "messages": None,
            "duration_s": a.warmup + a.duration,
        }
        results = self.context.Queue()
        control = {"ready": self.context.Event(), "start": self.context.Queue()}
        process = self.context.Process(target=workers.producer_main, args=(spec, control, results), daemon=True)
        process.start()
        if not control["ready"].wait(60):
            raise RuntimeError("the producer did not connect within 60 s")
        start_at, window = self._timing()
        control["start"].put((start_at, window))
        self.log(f"-- 1 Kafka path: one confluent-kafka producer, {a.warmup:g} s warm-up + {a.duration:g} s")
        _sleep_until(window[0])
        before = _agent_sample(self.agent)
        _sleep_until(window[1])
        after = _agent_sample(self.agent)
        (r,) = workload._collect(results, [process], 1, a.warmup + a.duration + 300, "producer")
        span = (window[1] - window[0]) / 1e9
        # The producer's own CPU is over its whole run; scale it to the window.
        run_s = (r["send_end_ns"] - r["start_ns"]) / 1e9 or 1
        accounting = _accounting(before, after, r["cpu_seconds"] * min(1.0, span / run_s))
        accounting["loadgen_cpu_note"] = "the producer's CPU over its run, scaled to the window"
        gib = r["window_acked_bytes"] / GIB
        phase = {
            "topic": topic,
            "producer": {k: spec[k] for k in ("acks", "idempotence", "linger_ms", "batch_size", "message_max_bytes")},
            "measured_seconds": span,
            "records_acked_in_window": r["window_acked"],
            "bytes_acked_in_window": r["window_acked_bytes"],
            "records_acked_total": r["acked"],
            "produce_errors": r["errors"],
            "first_produce_errors": r["first_errors"],
            "unflushed": r["unflushed"],
            "mb_per_second": r["window_acked_bytes"] / MB / span,
            "records_per_second": r["window_acked"] / span,
            "agent_cpu_seconds_per_gib": accounting["agent_cpu_seconds"] / gib if gib else None,
            "ack_latency_ms": workload.percentiles(array.array("d", r["latencies_ms"]).tolist()),
            "accounting": accounting,
        }
        self.log(
            f"   {phase['mb_per_second']:.1f} MB/s, agent {accounting['agent_cores']:.2f} cores, "
            f"{_fmt(phase['agent_cpu_seconds_per_gib'], 2)} CPU s/GiB, errors {r['errors']}, "
            f"loadgen {accounting['loadgen_cores']:.2f}, others {accounting['other_cores']:.2f}"
        )
        return phase

    # 2 and 3 (HTTP), 7 and 8 (gRPC): closed-loop client processes
    def _run_clients(self, target, specs, label):
        """Starts a client process per spec, starts them together, samples the
        agent over the measured window: (results, measured seconds,
        accounting), or an error dict when a client did not start."""
        a = self.args
        results = self.context.Queue()
        processes, controls = [], []
        for spec in specs:
            control = {"ready": self.context.Event(), "start": self.context.Queue()}
            process = self.context.Process(target=target, args=(spec, control, results), daemon=True)
            process.start()
            processes.append(process)
            controls.append(control)
        deadline = time.monotonic() + 120
        for control, process in zip(controls, processes):
            while not control["ready"].wait(0.5):
                if process.exitcode is not None or time.monotonic() > deadline:
                    # Its result (or fatal) is on the queue.
                    return {"error": f"a client did not start: {workload._collect(results, processes, 1, 5, 'client')}"}
        start_at, window = self._timing()
        for control in controls:
            control["start"].put((start_at, window))
        self.log(f"-- {label}, {a.warmup:g} s warm-up + {a.duration:g} s")
        _sleep_until(window[0])
        before = _agent_sample(self.agent)
        _sleep_until(window[1])
        after = _agent_sample(self.agent)
        out = workload._collect(results, processes, len(processes), 600, "client")
        span = (window[1] - window[0]) / 1e9
        accounting = _accounting(before, after, sum(r["window_cpu_seconds"] for r in out))
        return out, span, accounting

    def http_throughput(self, kind):
        a = self.args
        topic = self.topic("http-batch" if kind == "batch" else "http-json")
        per = a.batch_records if kind == "batch" else a.json_records
        variants = 8 if kind == "batch" else 2
        specs = [
            {
                "index": index,
                "port": self.agent.http_port,
                "topic": topic,
                "partitions": list(range(a.partitions)),
                "kind": kind,
                "message_size": a.message_size,
                "records_per_request": per,
                "variants": variants,
            }
            for index in range(a.http_processes)
        ]
        label = "2 HTTP record batches" if kind == "batch" else "3 HTTP JSON"
        ran = self._run_clients(
            http_worker_main, specs, f"{label}: {a.http_processes} processes, {per} records per request"
        )
        if isinstance(ran, dict):
            return ran
        out, span, accounting = ran
        window_bytes = sum(r["window_bytes"] for r in out)
        gib = window_bytes / GIB
        statuses = {}
        for r in out:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        latencies = array.array("d")
        for r in out:
            latencies.frombytes(r["latencies_ms"])
        body_sizes = [b for r in out for b in r["body_bytes"]]
        phase = {
            "topic": topic,
            "clients": a.http_processes,
            "records_per_request": per,
            "value_bytes_per_request": per * a.message_size,
            "body_bytes_per_request": [min(body_sizes), max(body_sizes)] if body_sizes else None,
            "content_type": RECORD_BATCH if kind == "batch" else "application/json",
            "endpoint": (
                "POST /v1/topics/{topic}/partitions/{p}/records?acks=all"
                if kind == "batch"
                else "POST /v1/topics/{topic}/records?acks=all (every record names its partition)"
            ),
            "measured_seconds": span,
            "requests_in_window": sum(r["window_requests"] for r in out),
            "bytes_acked_in_window": window_bytes,
            "mb_per_second": window_bytes / MB / span,
            "records_per_second": window_bytes / a.message_size / span,
            "requests_per_second": sum(r["window_requests"] for r in out) / span,
            "agent_cpu_seconds_per_gib": accounting["agent_cpu_seconds"] / gib if gib else None,
            "request_latency_ms": _pcts(latencies),
            "statuses": statuses,
            "non_200": sum(v for k, v in statuses.items() if k != "200"),
            "exceptions": sum(r["exceptions"] for r in out),
            "reconnects": sum(r["reconnects"] for r in out),
            "first_errors": [e for r in out for e in r["first_errors"]][:5],
            "accounting": accounting,
        }
        self.log(
            f"   {phase['mb_per_second']:.1f} MB/s, {phase['requests_per_second']:.1f} req/s, agent "
            f"{accounting['agent_cores']:.2f} cores, {_fmt(phase['agent_cpu_seconds_per_gib'], 2)} CPU s/GiB, "
            f"statuses {statuses}, exceptions {phase['exceptions']}, loadgen {accounting['loadgen_cores']:.2f}, "
            f"others {accounting['other_cores']:.2f}"
        )
        return phase

    def grpc_stubs(self):
        """gateway.proto's Python stubs, generated once per run into the run dir."""
        if getattr(self, "_stubs_dir", None) is None:
            self._stubs_dir = generate_grpc_stubs(os.path.join(self.run_dir, "grpc-stubs"))
        return self._stubs_dir

    def grpc_throughput(self, kind):
        """Phase 7 (``batch``: phase 2's record batches) or 8 (``records``:
        phase 3's values as protobuf records), each client process one
        ProduceStream, lock-step."""
        a = self.args
        topic = self.topic("grpc-batch" if kind == "batch" else "grpc-records")
        per = a.batch_records if kind == "batch" else a.json_records
        variants = 8 if kind == "batch" else 2
        stubs = self.grpc_stubs()
        specs = [
            {
                "index": index,
                "port": self.agent.http_port,
                "topic": topic,
                "partitions": list(range(a.partitions)),
                "kind": kind,
                "message_size": a.message_size,
                "records_per_request": per,
                "variants": variants,
                "stubs_dir": stubs,
            }
            for index in range(a.http_processes)
        ]
        label = "7 gRPC ProduceStream, record batches" if kind == "batch" else "8 gRPC ProduceStream, protobuf records"
        ran = self._run_clients(
            grpc_worker_main,
            specs,
            f"{label}: {a.http_processes} processes, one stream each, {per} records per request",
        )
        if isinstance(ran, dict):
            return ran
        out, span, accounting = ran
        window_bytes = sum(r["window_bytes"] for r in out)
        gib = window_bytes / GIB
        codes = {}
        for r in out:
            for k, v in r["codes"].items():
                codes[k] = codes.get(k, 0) + v
        latencies = array.array("d")
        for r in out:
            latencies.frombytes(r["latencies_ms"])
        body_sizes = [b for r in out for b in r["body_bytes"]]
        phase = {
            "topic": topic,
            "clients": a.http_processes,
            "client": (
                f"grpcio {out[0]['grpcio']}, one channel and one Records/ProduceStream per process, lock-step (the "
                "request iterator reads a queue fed once the previous answer arrived); requests serialized before "
                "the clock starts and sent as bytes (no serializer in the loop)"
            ),
            "records_per_request": per,
            "value_bytes_per_request": per * a.message_size,
            "body_bytes_per_request": [min(body_sizes), max(body_sizes)] if body_sizes else None,
            "request": (
                "ProduceRequest{topic, partition, record_batches: one Kafka v2 batch, acks: ACKS_ALL}; "
                "partitions round-robin as phase 2"
                if kind == "batch"
                else "ProduceRequest{topic, records: [Record{value, partition}], acks: ACKS_ALL}, every record "
                "naming its partition (as phase 3's JSON); partitions round-robin as phase 3"
            ),
            "measured_seconds": span,
            "requests_in_window": sum(r["window_requests"] for r in out),
            "bytes_acked_in_window": window_bytes,
            "mb_per_second": window_bytes / MB / span,
            "records_per_second": window_bytes / a.message_size / span,
            "requests_per_second": sum(r["window_requests"] for r in out) / span,
            "agent_cpu_seconds_per_gib": accounting["agent_cpu_seconds"] / gib if gib else None,
            "request_latency_ms": _pcts(latencies),
            "requests_ok": sum(r["requests_ok"] for r in out),
            "stream_errors": sum(r["stream_errors"] for r in out),
            "error_codes": codes,
            "bad_answers": sum(r["bad_answers"] for r in out),
            "streams_opened": sum(r["streams_opened"] for r in out),
            "end_statuses": [r["end_status"] for r in out],
            "first_errors": [e for r in out for e in r["first_errors"]][:5],
            "accounting": accounting,
        }
        self.log(
            f"   {phase['mb_per_second']:.1f} MB/s, {phase['requests_per_second']:.1f} req/s, agent "
            f"{accounting['agent_cores']:.2f} cores, {_fmt(phase['agent_cpu_seconds_per_gib'], 2)} CPU s/GiB, "
            f"stream errors {phase['stream_errors']} {codes}, bad answers {phase['bad_answers']}, end statuses "
            f"{sorted(set(phase['end_statuses']))}, loadgen {accounting['loadgen_cores']:.2f}, "
            f"others {accounting['other_cores']:.2f}"
        )
        return phase

    # 4. Latency at a light fixed rate
    def produce_latency(self):
        out = {}
        steps = [("http", lambda: self._latency_http(self.args.latency_http_connections))]
        if self.args.latency_http_connections != 1:
            # As the brief of this benchmark asked: one client, strictly
            # sequential (it holds the rate only while a round trip is under
            # the schedule's interval).
            steps.append(("http_one_connection", lambda: self._latency_http(1)))
        steps.append(("kafka", self._latency_kafka))
        for name, fn in steps:
            try:
                out[name] = fn()
            except Exception as error:  # noqa: BLE001 - recorded, the other half still runs
                out[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
                self.log(f"!! phase 4 {name} failed: {out[name]['error']}")
        return out

    def _latency_schedule(self):
        a = self.args
        per = a.latency_records
        records_per_s = a.latency_mb_per_s * MB / a.message_size
        return per, records_per_s / per  # records per request, requests per second

    def _latency_http(self, connections):
        """JSON requests of ``per`` records to partition 0 on a fixed schedule;
        slot n goes to connection n % connections, each connection sequential
        (a request waits for the previous one on its connection)."""
        a = self.args
        topic = self.topic(f"latency-http-{connections}")
        per, rps = self._latency_schedule()
        values = [v.decode("ascii") for v in letters_values(seed=300, size=a.message_size, count=per * 64)]
        bodies = [
            json.dumps({"records": [{"value": t} for t in values[i * per : (i + 1) * per]], "encoding": "utf8"}).encode()
            for i in range(64)
        ]
        path = f"/v1/topics/{topic}/partitions/0/records?acks=all"
        headers = {"Content-Type": "application/json"}
        port = self.agent.http_port
        self.log(
            f"-- 4a HTTP produce latency: {per} records of {a.message_size} B per request, "
            f"{rps:.1f} requests/s ({a.latency_mb_per_s:g} MB/s) on a fixed schedule, "
            f"{connections} keep-alive connection(s), each sequential, partition 0"
        )
        interval = 1e9 / rps
        start, (w0, w1) = self._timing()
        lock = threading.Lock()
        latencies = array.array("d")
        from_schedule = array.array("d")
        statuses = {}
        errors = []
        totals = {"window_bytes": 0, "late_sends": 0, "behind_max": 0}

        def client(c):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.connect()
            n = c
            while True:
                slot = start + int(n * interval)
                if slot >= w1:
                    break
                now = time.monotonic_ns()
                if now < slot:
                    _sleep_until(slot)
                elif now >= w1:
                    break  # behind the schedule: what was sent by the window's end is the rate held
                body = bodies[n % len(bodies)]
                n += connections
                sent = time.monotonic_ns()
                try:
                    connection.request("POST", path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as error:
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    continue
                done = time.monotonic_ns()
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status != 200:
                        if len(errors) < 5:
                            errors.append(f"HTTP {response.status}: {data[:300].decode(errors='replace')}")
                        continue
                    if w0 <= slot < w1:
                        if sent - slot > interval:
                            totals["late_sends"] += 1
                        totals["behind_max"] = max(totals["behind_max"], sent - slot)
                        latencies.append((done - sent) / 1e6)
                        from_schedule.append((done - slot) / 1e6)
                        totals["window_bytes"] += per * a.message_size
            connection.close()

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(connections)]
        for t in threads:
            t.start()
        _sleep_until(w0)
        before = _agent_sample(self.agent)
        for t in threads:
            t.join()
        after = _agent_sample(self.agent)
        span = (w1 - w0) / 1e9
        phase = {
            "topic": topic,
            "client": f"http.client, {connections} keep-alive connection(s) in threads, each sequential; "
            "slot n of the fixed schedule on connection n % connections",
            "connections": connections,
            "records_per_request": per,
            "target_requests_per_second": rps,
            "target_mb_per_second": a.latency_mb_per_s,
            "achieved_mb_per_second": totals["window_bytes"] / MB / span,
            "requests_measured": len(latencies),
            "late_sends": totals["late_sends"],
            "late_sends_note": "requests sent more than one interval after their slot (their connection was busy)",
            "behind_max_ms": totals["behind_max"] / 1e6,
            "round_trip_ms": _pcts(latencies),
            "from_schedule_ms": _pcts(from_schedule),
            "statuses": {str(k): v for k, v in statuses.items()},
            "errors": errors[:5],
            "accounting": _accounting(before, after, 0.0),
        }
        rt = phase["round_trip_ms"]
        self.log(
            f"   HTTP round trip p50/p99/p99.9 {_fmt(rt['p50'], 2)}/{_fmt(rt['p99'], 2)}/{_fmt(rt['p999'], 2)} ms over "
            f"{rt['count']} requests, {phase['achieved_mb_per_second']:.2f} MB/s, late sends {phase['late_sends']}, "
            f"statuses {statuses}"
        )
        return phase

    def _latency_kafka(self):
        from confluent_kafka import Producer

        a = self.args
        topic = self.topic("latency-kafka")
        per, rps = self._latency_schedule()
        values = letters_values(seed=301, size=a.message_size, count=per * 64)
        producer = Producer(
            {
                "bootstrap.servers": self.agent.address,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 0,
                "client.id": "fjord-bench-gateway-latency",
                "delivery.timeout.ms": 60_000,
            }
        )
        producer.list_topics(topic, timeout=30)
        self.log(
            f"-- 4b Kafka ack latency: {per} records per send, {rps:.1f} sends/s, linger.ms 0, acks=all, "
            f"idempotence on, partition 0"
        )
        interval = 1e9 / rps
        start, (w0, w1) = self._timing()
        record_latencies = array.array("d")
        group_latencies = array.array("d")
        groups = {}
        errors = []
        window_bytes = [0]

        def make_callback(group, sent):
            def on_delivery(error, message):
                now = time.monotonic_ns()
                if error is not None:
                    if len(errors) < 5:
                        errors.append(str(error))
                    return
                if w0 <= sent < w1:
                    record_latencies.append((now - sent) / 1e6)
                    window_bytes[0] += len(message.value())
                g = groups.get(group)
                if g is not None:
                    g[1] -= 1
                    if g[1] == 0:
                        del groups[group]
                        if w0 <= g[0] < w1:
                            group_latencies.append((now - g[0]) / 1e6)

            return on_delivery

        n = 0
        before = None
        late_sends = 0
        while True:
            slot = start + int(n * interval)
            if slot >= w1:
                break
            while True:
                now = time.monotonic_ns()
                if now >= slot:
                    break
                producer.poll(min((slot - now) / 1e9, 0.001))
            if now - slot > interval:
                late_sends += 1
            if before is None and slot >= w0:
                before = _agent_sample(self.agent)
            first = time.monotonic_ns()
            groups[n] = [first, per]
            for i in range(per):
                sent = time.monotonic_ns()
                producer.produce(
                    topic, values[(n * per + i) % len(values)], partition=0, on_delivery=make_callback(n, sent)
                )
            producer.poll(0)
            n += 1
        remaining = producer.flush(60)
        after = _agent_sample(self.agent)
        span = (w1 - w0) / 1e9
        phase = {
            "topic": topic,
            "client": "confluent-kafka Producer, acks=all, idempotence on, linger.ms 0, produce() of each group back to back",
            "records_per_send": per,
            "target_sends_per_second": rps,
            "achieved_mb_per_second": window_bytes[0] / MB / span,
            "late_sends": late_sends,
            "unflushed": remaining,
            "ack_latency_ms": _pcts(record_latencies),
            "group_ack_latency_ms": _pcts(group_latencies),
            "errors": errors,
            "accounting": _accounting(before, after, 0.0) if before else None,
        }
        r, g = phase["ack_latency_ms"], phase["group_ack_latency_ms"]
        self.log(
            f"   Kafka ack p50/p99/p99.9 {_fmt(r['p50'], 2)}/{_fmt(r['p99'], 2)}/{_fmt(r['p999'], 2)} ms per record "
            f"({r['count']}); last of each {per}: {_fmt(g['p50'], 2)}/{_fmt(g['p99'], 2)} ms; "
            f"{phase['achieved_mb_per_second']:.2f} MB/s, errors {len(errors)}"
        )
        return phase

    # 5. SSE end to end
    def sse_end_to_end(self):
        a = self.args
        topic = self.topic("sse")
        partitions = list(range(a.partitions))
        results = self.context.Queue()
        control = {"ready": self.context.Event(), "stop": self.context.Event()}
        spec = {"port": self.agent.http_port, "topic": topic, "partitions": partitions}
        reader = self.context.Process(target=sse_reader_main, args=(spec, control, results), daemon=True)
        reader.start()
        if not control["ready"].wait(60):
            raise RuntimeError("the SSE tails did not open within 60 s")
        time.sleep(0.5)
        value = letters_values(seed=400, size=a.message_size, count=1)[0].decode("ascii")
        port = self.agent.http_port
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        tick_ns = 10_000_000  # a request every 10 ms (of the records due)
        self.log(
            f"-- 5 SSE end to end: {len(partitions)} tails (requests, stream=True), JSON producer at "
            f"{a.sse_rate:g} records/s, a request every {tick_ns / 1e6:g} ms round-robin over the partitions"
        )
        start, (w0, w1) = self._timing()
        w0_wall_ns = time.time_ns() + (w0 - time.monotonic_ns())
        produced = {p: [] for p in partitions}  # offsets acked, with their send time (wall ns)
        statuses = {}
        errors = []
        sent_records = 0
        k = 0
        _sleep_until(start)
        while True:
            now = time.monotonic_ns()
            if now >= w1:
                break
            due = int((now - start) / 1e9 * a.sse_rate) - sent_records
            if due <= 0:
                time.sleep(min(tick_ns, (start + (sent_records + 1) / a.sse_rate * 1e9) - now) / 1e9)
                continue
            due = min(due, 200)
            p = partitions[k % len(partitions)]
            k += 1
            sent_ns = time.time_ns()
            ts = sent_ns // 1_000_000
            body = json.dumps(
                {
                    "records": [
                        {"value": value, "timestamp": ts, "headers": [{"key": "sent_ns", "value": str(sent_ns)}]}
                        for _ in range(due)
                    ],
                    "encoding": "utf8",
                }
            ).encode()
            sent_records += due
            try:
                connection.request("POST", f"/v1/topics/{topic}/partitions/{p}/records?acks=all", body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status != 200:
                if len(errors) < 5:
                    errors.append(f"HTTP {response.status}: {data[:300].decode(errors='replace')}")
                continue
            for outcome in json.loads(data)["offsets"]:
                produced[outcome["partition"]].append((outcome["offset"], sent_ns))
            # Next request after the tick (records due meanwhile go together).
            time.sleep(max(0.0, (tick_ns - (time.monotonic_ns() - now)) / 1e9))
        connection.close()
        # Let the tails catch up, then stop them.
        drain_deadline = time.monotonic() + 5
        time.sleep(min(2.0, max(0.0, drain_deadline - time.monotonic())))
        control["stop"].set()
        (r,) = workload._collect(results, [reader], 1, 60, "SSE reader")
        ts_lat, ns_lat = array.array("d"), array.array("d")
        received = missing = duplicates = unexpected = out_of_order = 0
        per_partition = {}
        exceptions, ended, error_events, bad_status = [], [], [], []
        for p in partitions:
            s = r["partitions"][str(p)]
            offsets = array.array("q", s["offsets"])
            tsl = array.array("d", s["ts_latency"])
            nsl = array.array("d", s["ns_latency"])
            sent = array.array("q", s["sent_ns"])
            if s["status"] != 200:
                bad_status.append(f"partition {p}: {s['status']}")
            if s["exception"]:
                exceptions.append(f"partition {p}: {s['exception']}")
            if s["ended"]:
                ended.append(f"partition {p}: {s['ended']}")
            error_events += [f"partition {p}: {e}" for e in s["error_events"]]
            want = {o for o, _ in produced[p]}
            seen = set()
            last = -1
            for i, o in enumerate(offsets):
                if o in seen:
                    duplicates += 1
                    continue
                seen.add(o)
                if o <= last:
                    out_of_order += 1
                last = o
                if o not in want:
                    unexpected += 1
                if sent[i] >= w0_wall_ns:
                    ts_lat.append(tsl[i])
                    ns_lat.append(nsl[i])
            received += len(seen)
            missing += len(want - seen)
            per_partition[str(p)] = {"produced": len(want), "received": len(seen & want), "heartbeats": s["heartbeats"]}
        phase = {
            "topic": topic,
            "tails": len(partitions),
            "client": "requests, stream=True, iter_lines(chunk_size=None), one thread per partition in one process",
            "target_records_per_second": a.sse_rate,
            "records_produced": sum(len(v) for v in produced.values()),
            "records_received": received,
            "records_missing": missing,
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "unexpected_offsets": unexpected,
            "e2e_latency_ms_from_timestamp": _pcts(ts_lat),
            "e2e_latency_ms_from_sent_ns": _pcts(ns_lat),
            "latency_note": (
                "receipt (time.time_ns() when the data line was read) minus the record's timestamp (ms, "
                "truncated: reads up to 1 ms high) and minus its sent_ns header (ns, taken just before the POST); "
                f"records sent in the last {a.duration:g} s"
            ),
            "producer_statuses": {str(k): v for k, v in statuses.items()},
            "producer_errors": errors[:5],
            "stream_statuses_not_200": bad_status,
            "stream_exceptions": exceptions,
            "streams_ended_by_agent": ended,
            "error_events": error_events[:5],
            "per_partition": per_partition,
        }
        t, n = phase["e2e_latency_ms_from_timestamp"], phase["e2e_latency_ms_from_sent_ns"]
        self.log(
            f"   e2e p50/p99 {_fmt(t['p50'], 1)}/{_fmt(t['p99'], 1)} ms (timestamp), "
            f"{_fmt(n['p50'], 2)}/{_fmt(n['p99'], 2)} ms (sent_ns); received {received} of "
            f"{phase['records_produced']} produced, missing {missing}, duplicates {duplicates}, "
            f"exceptions {len(exceptions)}, producer statuses {statuses}"
        )
        return phase

    # 6. Idle SSE streams
    def idle_streams(self):
        a = self.args
        self.log("-- 6 idle SSE streams: restarting the agent (fresh memory)")
        topic = self.topic("idle")
        self.restart()
        agent = self.agent
        pid = agent.process.pid
        limits = _nofile_limit(pid)
        time.sleep(2)
        rss_before, hwm_before = agent.memory()
        fds_before = _fd_count(pid)
        health_before = _healthz(agent.http_port)
        self.log(f"   opening {a.idle_streams:,} idle streams (agent RSS {rss_before / MIB:.1f} MiB)")
        client, control, results, opened = self._open_idle(topic, a.idle_streams)
        self.log(
            f"   opened {opened['opened']:,} of {opened['attempted']:,} attempted ({opened['wanted']:,} wanted) in "
            f"{opened['open_seconds']:.1f} s; failed {opened['failed']} {opened['errors']}"
        )
        time.sleep(3)
        rss_open, _ = agent.memory()
        fds_open = _fd_count(pid)
        before = _agent_sample(agent)
        time.sleep(a.idle_hold)
        after = _agent_sample(agent)
        rss_held, hwm_held = agent.memory()
        health_during = _healthz(agent.http_port)
        alive = agent.process.poll() is None
        control["stop"].set()
        closed = self._idle_result(results, client, 120)
        client.join(30)
        time.sleep(3)
        rss_after_close, hwm_end = agent.memory() if agent.process.poll() is None else (None, None)
        fds_after_close = _fd_count(pid)
        # Open as many again: RSS that grows by as much again would be a leak,
        # RSS that stays is memory the allocator kept for reuse.
        self.log("   closed them; opening as many again")
        client2, control2, results2, reopened = self._open_idle(topic, a.idle_streams)
        time.sleep(3)
        rss_reopened, _ = agent.memory()
        control2["stop"].set()
        self._idle_result(results2, client2, 120)
        client2.join(30)
        time.sleep(2)
        rss_after_second_close, hwm_end = agent.memory() if agent.process.poll() is None else (None, hwm_end)
        fds_after_second_close = _fd_count(pid)
        n = opened["opened"]
        delta = (rss_held - rss_before) if rss_held is not None and rss_before is not None else None
        phase = {
            "topic": topic,
            "client": "asyncio raw sockets in one process (GET ...?offset=latest&heartbeat_ms=15000, Accept: text/event-stream)",
            "streams_wanted": opened["wanted"],
            "streams_attempted": opened["attempted"],
            "streams_opened": n,
            "streams_failed": opened["failed"],
            "open_errors": opened["errors"],
            "first_open_errors": opened["first_errors"],
            "open_seconds": opened["open_seconds"],
            "client_nofile_limit": [opened["nofile_soft"], opened["nofile_hard"]],
            "agent_nofile_limit": limits,
            "agent_fds_before": fds_before,
            "agent_fds_with_streams": fds_open,
            "rss_bytes_before": rss_before,
            "rss_bytes_with_streams_settled": rss_open,
            "rss_bytes_with_streams_end_of_hold": rss_held,
            "rss_bytes_after_close": rss_after_close,
            "agent_fds_after_close": fds_after_close,
            "streams_reopened": reopened["opened"],
            "rss_bytes_reopened": rss_reopened,
            "rss_bytes_after_second_close": rss_after_second_close,
            "agent_fds_after_second_close": fds_after_second_close,
            "peak_rss_bytes": hwm_end or hwm_held,
            "peak_rss_bytes_before": hwm_before,
            "rss_bytes_per_stream": delta / n if delta is not None and n else None,
            "hold_seconds": a.idle_hold,
            "agent_cores_while_idle_streams_held": before and after and _accounting(before, after, 0.0)["agent_cores"],
            "hold_accounting": _accounting(before, after, 0.0),
            "healthz_before": health_before,
            "healthz_with_streams": health_during,
            "agent_alive_with_streams": alive,
            "closed_by_agent_while_held": closed.get("closed_by_agent_while_held"),
            "bytes_received_while_held": closed.get("bytes_received_while_held"),
        }
        self.log(
            f"   agent RSS {rss_before / MIB:.1f} MiB before, {rss_held / MIB:.1f} MiB with {n:,} streams "
            f"({_fmt(phase['rss_bytes_per_stream'] / 1024 if phase['rss_bytes_per_stream'] else None, 1)} KiB per stream), "
            f"{_fmt(rss_after_close / MIB if rss_after_close else None, 1)} MiB after closing; agent "
            f"{phase['agent_cores_while_idle_streams_held']:.3f} cores while idle; healthz {health_during}; "
            f"closed by agent {phase['closed_by_agent_while_held']}"
        )
        return phase

    def _open_idle(self, topic, streams):
        """A client process holding ``streams`` idle tails: (process, control,
        results queue, its report once they are open)."""
        results = self.context.Queue()
        control = {"stop": self.context.Event()}
        spec = {
            "port": self.agent.http_port,
            "topic": topic,
            "partitions": list(range(self.args.partitions)),
            "streams": streams,
            "concurrency": 200,
        }
        client = self.context.Process(target=idle_client_main, args=(spec, control, results), daemon=True)
        client.start()
        opened = self._idle_result(results, client, 300)
        return client, control, results, opened

    @staticmethod
    def _idle_result(results, process, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                r = results.get(timeout=1)
            except queue.Empty:
                if process.exitcode not in (None, 0):
                    raise RuntimeError(f"the idle-stream client died (exit {process.exitcode})")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the idle-stream client gave no answer within {timeout_s} s")
                continue
            if "fatal" in r:
                raise RuntimeError(f"the idle-stream client failed: {r['fatal']}")
            return r

    # 9. Group consume
    def group_consume(self):
        a = self.args
        topic = self.topic("group-consume")
        records = int(a.consume_mb * MB / a.message_size)
        prefill = self._prefill(topic, records)
        expected = {int(p): n for p, n in prefill["next_offset"].items()}
        out = {"topic": topic, "prefill": prefill}
        time.sleep(1)
        failures = []
        for name, fn in (("kafka", self._group_kafka), ("http", self._group_http)):
            try:
                out[name] = fn(topic, expected)
            except Exception as error:  # noqa: BLE001 - recorded, the other half still runs
                out[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
                self.log(f"!! phase 9 {name} failed: {out[name]['error']}")
            if out[name].get("error"):
                failures.append(f"{name}: {out[name]['error']}")
            time.sleep(1)
        if failures:
            # The numbers stay; the phase (and the run) fails.
            out["error"] = "; ".join(failures)
        return out

    def _prefill(self, topic, records):
        a = self.args
        spec = {
            "bootstrap": self.agent.address,
            "topic": topic,
            "partitions": list(range(a.partitions)),
            "message_size": a.message_size,
            "records": records,
            "seed": 900,
            "batch_size": workload.DEFAULTS["batch_size"],
            "message_max_bytes": workload.DEFAULTS["message_max_bytes"],
        }
        self.log(
            f"-- 9 group consume: prefilling {topic} with {records:,} records of {a.message_size} B "
            f"({records * a.message_size / MB:,.0f} MB) through the Kafka path (unmeasured)"
        )
        results = self.context.Queue()
        process = self.context.Process(target=prefill_main, args=(spec, None, results), daemon=True)
        process.start()
        (r,) = workload._collect(results, [process], 1, 3600, "prefill producer")
        delivered = sum(r["delivered"].values())
        r["mb_per_second"] = delivered * a.message_size / MB / r["seconds"] if r["seconds"] else None
        self.log(
            f"   prefilled {delivered:,} records in {r['seconds']:.1f} s ({_fmt(r['mb_per_second'])} MB/s), "
            f"errors {r['errors']}, unflushed {r['unflushed']}"
        )
        if r["errors"] or r["unflushed"] or delivered != records:
            raise RuntimeError(
                f"the prefill delivered {delivered:,} of {records:,} records ({r['errors']} errors, "
                f"{r['unflushed']} unflushed): {r['first_errors'][:2]}"
            )
        if r["delivered"] != r["next_offset"]:
            raise RuntimeError(f"the prefill's offsets are not 0..count per partition: {r['delivered']} vs {r['next_offset']}")
        return r

    def _group_readers(self, target, specs, expected_total, label):
        """Starts the readers of one fresh group together and samples the
        agent from the start until their shared counter holds every record
        (or nothing arrives for ``--consume-idle-timeout`` s): (results,
        start ns, the driver's sample when done, before sample, timed out)."""
        a = self.args
        results = self.context.Queue()
        counter = self.context.Value("q", 0)
        stop = self.context.Event()
        processes, controls = [], []
        for spec in specs:
            control = {"ready": self.context.Event(), "start": self.context.Queue(), "stop": stop, "counter": counter}
            process = self.context.Process(target=target, args=(spec, control, results), daemon=True)
            process.start()
            processes.append(process)
            controls.append(control)
        deadline = time.monotonic() + 120
        for control, process in zip(controls, processes):
            while not control["ready"].wait(0.5):
                if process.exitcode is not None or time.monotonic() > deadline:
                    stop.set()
                    raise RuntimeError(f"a reader did not start: {workload._collect(results, processes, 1, 5, 'reader')}")
        start_at = time.monotonic_ns() + 300_000_000
        for control in controls:
            control["start"].put(start_at)
        self.log(f"-- {label}")
        _sleep_until(start_at)
        before = _agent_sample(self.agent)
        progress, progress_at = 0, time.monotonic()
        timed_out = False
        while True:
            time.sleep(0.01)
            done = counter.value
            if done >= expected_total:
                break
            if done != progress:
                progress, progress_at = done, time.monotonic()
            elif time.monotonic() - progress_at > a.consume_idle_timeout:
                timed_out = True
                break
            if any(p.exitcode not in (None, 0) for p in processes):
                break
        after = _agent_sample(self.agent)
        stop.set()
        out = workload._collect(results, processes, len(processes), 300, "reader")
        return out, start_at, before, after, timed_out

    def _group_result(self, out, start_at, before, after, timed_out, expected):
        """What both paths report: counts and verification, MB/s and CPU."""
        a = self.args
        expected_total = sum(expected.values())
        received = sum(r["received"] for r in out)
        received_bytes = sum(r["received_bytes"] for r in out)
        check = _verify_spans([r["spans"] for r in out], expected)
        lasts = [r["last_record_ns"] for r in out if r["last_record_ns"]]
        firsts = [r["first_record_ns"] for r in out if r["first_record_ns"]]
        seconds = (max(lasts) - start_at) / 1e9 if lasts else None
        accounting = _accounting(before, after, sum(r["cpu_to_last_record"] for r in out))
        accounting["loadgen_cpu_note"] = "the readers' CPU from their first call to their last record, plus the driver's"
        gib = received_bytes / GIB
        phase = {
            "records_expected": expected_total,
            "records_consumed": received,
            "bytes_consumed": received_bytes,
            "verification": check,
            "bytes_expected": expected_total * a.message_size,
            "verified": (
                check["ok"] and received == expected_total and received_bytes == expected_total * a.message_size
                and not timed_out
            ),
            "timed_out": timed_out,
            "timing": "from the first call (join or subscribe) to the last record of the prefill, read once",
            "measured_seconds": seconds,
            "first_record_after_seconds": (min(firsts) - start_at) / 1e9 if firsts else None,
            "mb_per_second": received_bytes / MB / seconds if seconds else None,
            "records_per_second": received / seconds if seconds else None,
            "agent_cpu_seconds_per_gib": accounting["agent_cpu_seconds"] / gib if gib else None,
            "loadgen_cpu_seconds_per_gib": accounting["loadgen_cpu_seconds"] / gib if gib else None,
            "accounting": accounting,
        }
        if not phase["verified"]:
            phase["error"] = (
                f"read {received:,} of {expected_total:,} records ({received_bytes:,} of "
                f"{expected_total * a.message_size:,} value bytes): {check['duplicates']:,} duplicates, "
                f"{check['missing']:,} missing, {check['unexpected']:,} unexpected"
                + (f"; nothing new for {a.consume_idle_timeout:g} s" if timed_out else "")
            )
        return phase

    def _group_kafka(self, topic, expected):
        group = f"bench-kafka-{os.getpid()}-{time.monotonic_ns()}"
        spec = {
            "index": 0,
            "bootstrap": self.agent.address,
            "topic": topic,
            "group": group,
            "fetch": dict(GROUP_CONSUMER_FETCH),
            "expected": sum(expected.values()),
        }
        ran = self._group_readers(
            kafka_group_consumer_main,
            [spec],
            spec["expected"],
            "9a Kafka group consumer: one confluent-kafka process, group.protocol=consumer, fresh group, "
            f"max.partition.fetch.bytes {GROUP_CONSUMER_FETCH['max.partition.fetch.bytes']:,}",
        )
        out, start_at, before, after, timed_out = ran
        phase = {
            "group": group,
            "client": (
                "confluent-kafka Consumer, group.protocol=consumer, subscribe() when the clock starts, "
                "auto.offset.reset earliest, enable.auto.commit, consume(num_messages=10000, timeout=0.1)"
            ),
            "consumer_config": {
                "group.protocol": "consumer",
                "enable.auto.commit": True,
                "auto.offset.reset": "earliest",
                **GROUP_CONSUMER_FETCH,
            },
            "processes": 1,
            **self._group_result(out, start_at, before, after, timed_out, expected),
            "consume_calls": out[0]["consume_calls"],
            "errors": out[0]["errors"],
        }
        self._log_group(phase)
        return phase

    def _group_http(self, topic, expected):
        a = self.args
        group = f"bench-http-{os.getpid()}-{time.monotonic_ns()}"
        total = sum(expected.values())
        specs = [
            {
                "index": index,
                "port": self.agent.http_port,
                "topic": topic,
                "group": group,
                "max_records": GROUP_POLL_MAX_RECORDS,
                "max_bytes": a.consume_max_bytes,
                "wait_ms": GROUP_POLL_WAIT_MS,
                "encoding": a.consume_encoding,
                "session_timeout_ms": GROUP_SESSION_TIMEOUT_MS,
                "expected": total,
            }
            for index in range(a.http_processes)
        ]
        out, start_at, before, after, timed_out = self._group_readers(
            http_group_member_main,
            specs,
            total,
            f"9b HTTP group members: {a.http_processes} processes, one keep-alive connection each, fresh group, "
            f"max_bytes {a.consume_max_bytes:,}, max_records {GROUP_POLL_MAX_RECORDS:,}, wait_ms {GROUP_POLL_WAIT_MS}, "
            f"auto_commit, encoding {a.consume_encoding}",
        )
        result = self._group_result(out, start_at, before, after, timed_out, expected)
        # Polls sent before the group's last record: the read. The polls of
        # members already done, waiting for the others, come after.
        end_ns = start_at + int((result["measured_seconds"] or 0) * 1e9)
        all_ms, with_records_ms = array.array("d"), array.array("d")
        polls = polls_with_records = 0
        for r in out:
            sent = array.array("q", r["poll_sent_ns"])
            ms = array.array("d", r["poll_ms"])
            got = array.array("l", r["poll_records"])
            for t, latency, n in zip(sent, ms, got):
                if t > end_ns:
                    continue
                polls += 1
                all_ms.append(latency)
                if n:
                    polls_with_records += 1
                    with_records_ms.append(latency)
        statuses = {}
        for r in out:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        phase = {
            "group": group,
            "client": (
                "http.client, one keep-alive connection per process; each joins when the clock starts, then polls "
                "with the cursor and epoch of the previous answer"
            ),
            "poll": {
                "max_records": GROUP_POLL_MAX_RECORDS,
                "max_bytes": a.consume_max_bytes,
                "wait_ms": GROUP_POLL_WAIT_MS,
                "auto_commit": True,
                "encoding": a.consume_encoding,
                "session_timeout_ms": GROUP_SESSION_TIMEOUT_MS,
            },
            "processes": a.http_processes,
            **result,
            "polls": polls,
            "polls_with_records": polls_with_records,
            "polls_note": "polls sent before the group's last record (later ones are members waiting for the others)",
            "poll_latency_ms": _pcts(all_ms),
            "poll_latency_ms_with_records": _pcts(with_records_ms),
            "records_per_poll_with_records": result["records_consumed"] / polls_with_records if polls_with_records else None,
            "response_bytes_per_poll": sum(r["response_bytes"] for r in out) / max(1, sum(r["polls"] for r in out)),
            "join_ms": [round(x, 2) for r in out for x in r["join_ms"]],
            "assigned_events": sum(r["assigned_events"] for r in out),
            "revoked_events": sum(r["revoked_events"] for r in out),
            "records_per_member": [r["received"] for r in out],
            "statuses": statuses,
            "exceptions": sum(r["exceptions"] for r in out),
            "rejoins": sum(r["rejoins"] for r in out),
            "first_errors": [e for r in out for e in r["first_errors"]][:5],
        }
        self._log_group(phase)
        return phase

    def _log_group(self, phase):
        acc = phase["accounting"]
        latency = ""
        if "poll_latency_ms" in phase:
            lat = phase["poll_latency_ms_with_records"]
            latency = (
                f", poll p50/p99 {_fmt(lat['p50'], 1)}/{_fmt(lat['p99'], 1)} ms over {phase['polls']} polls "
                f"({phase['polls_with_records']} with records), statuses {phase['statuses']}, rejoins {phase['rejoins']}"
            )
        check = phase["verification"]
        self.log(
            f"   {phase['records_consumed']:,} of {phase['records_expected']:,} records in "
            f"{_fmt(phase['measured_seconds'], 2)} s (first after {_fmt(phase['first_record_after_seconds'], 2)} s): "
            f"{_fmt(phase['mb_per_second'])} MB/s, agent {_fmt(acc['agent_cores'], 2)} cores, "
            f"{_fmt(phase['agent_cpu_seconds_per_gib'], 2)} CPU s/GiB, loadgen {_fmt(acc['loadgen_cores'], 2)}, "
            f"others {_fmt(acc['other_cores'], 2)}; duplicates {check['duplicates']}, missing {check['missing']}"
            f"{latency}"
        )


def _nofile_limit(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    parts = line.split()
                    return [parts[3], parts[4]]
    except OSError:
        pass
    return None


def _fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _healthz(port, tries=5):
    out = {"ok": 0, "tries": tries, "latency_ms": [], "errors": []}
    for _ in range(tries):
        started = time.monotonic_ns()
        try:
            status, body = http_call(port, "GET", "/healthz", timeout=10)
            if status == 200:
                out["ok"] += 1
            else:
                out["errors"].append(f"HTTP {status}: {body}")
        except OSError as error:
            out["errors"].append(f"{type(error).__name__}: {error}")
        out["latency_ms"].append(round((time.monotonic_ns() - started) / 1e6, 2))
        time.sleep(0.1)
    return out


def _fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float) and value != value:
        return "–"
    if abs(value) >= 1000 and digits <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


# ----- targets and report -----


def targets(doc):
    p = doc["phases"]
    out = []
    kafka = p.get("kafka_saturation") or {}
    # The issue's target: "RecordBatch and gRPC ≥ 80% of the Kafka path's MB/s
    # at ≤ 1.25× its CPU per GiB", checked for each of these paths.
    for label, key in (
        ("RecordBatch", "http_record_batch"),
        ("gRPC stream (record batches)", "grpc_stream_record_batch"),
        ("gRPC stream (protobuf records)", "grpc_stream_records"),
    ):
        ph = p.get(key) or {}
        t = f"{label} throughput ≥ 80% of the Kafka path's MB/s"
        if kafka.get("mb_per_second") and ph.get("mb_per_second") is not None:
            ratio = ph["mb_per_second"] / kafka["mb_per_second"]
            out.append(
                {
                    "target": t,
                    "measured": f"{ph['mb_per_second']:.1f} vs {kafka['mb_per_second']:.1f} MB/s ({ratio:.0%})",
                    "status": "met" if ratio >= 0.8 else "not met",
                }
            )
        else:
            out.append({"target": t, "measured": "not measured", "status": "–"})
        t = f"{label} agent CPU per GiB ≤ 1.25× the Kafka path's"
        if kafka.get("agent_cpu_seconds_per_gib") and ph.get("agent_cpu_seconds_per_gib") is not None:
            ratio = ph["agent_cpu_seconds_per_gib"] / kafka["agent_cpu_seconds_per_gib"]
            out.append(
                {
                    "target": t,
                    "measured": f"{ph['agent_cpu_seconds_per_gib']:.2f} vs {kafka['agent_cpu_seconds_per_gib']:.2f} s/GiB ({ratio:.2f}×)",
                    "status": "met" if ratio <= 1.25 else "not met",
                }
            )
        else:
            out.append({"target": t, "measured": "not measured", "status": "–"})
    lat = p.get("produce_latency") or {}
    h = (lat.get("http") or {}).get("round_trip_ms") or {}
    k = (lat.get("kafka") or {}).get("ack_latency_ms") or {}
    if h.get("p99") is not None and k.get("p99") is not None:
        out.append(
            {
                "target": "HTTP produce p99 ≤ Kafka p99 + 5 ms (same light rate)",
                "measured": f"HTTP {h['p99']:.2f} ms ({lat['http']['connections']} connection(s), "
                f"{lat['http']['achieved_mb_per_second']:.2f} MB/s) vs Kafka {k['p99']:.2f} ms "
                f"({lat['kafka']['achieved_mb_per_second']:.2f} MB/s; +5 = {k['p99'] + 5:.2f})",
                "status": "met" if h["p99"] <= k["p99"] + 5 else "not met",
            }
        )
    else:
        out.append({"target": "HTTP produce p99 ≤ Kafka p99 + 5 ms (same light rate)", "measured": "not measured", "status": "–"})
    idle = p.get("idle_sse_streams") or {}
    t = "10,000 idle SSE streams: agent RSS < 1 GiB"
    if idle.get("rss_bytes_with_streams_end_of_hold") is not None:
        n = idle["streams_opened"]
        rss = idle["rss_bytes_with_streams_end_of_hold"]
        measured = (
            f"{rss / MIB:,.1f} MiB with {n:,} open (+{(rss - idle['rss_bytes_before']) / MIB:,.1f} MiB, "
            f"{(idle['rss_bytes_per_stream'] or 0) / 1024:.1f} KiB per stream)"
        )
        if n >= 10_000 and idle.get("agent_alive_with_streams"):
            status = "met" if rss < GIB else "not met"
        else:
            status = f"not measured at 10,000 (opened {n:,})"
        out.append({"target": t, "measured": measured, "status": status})
    else:
        out.append({"target": t, "measured": "not measured", "status": "–"})
    return out


def _pct_cell(stats, keys=("p50", "p99", "p999"), digits=2):
    if not stats or not stats.get("count"):
        return "–"
    return " / ".join(_fmt(stats.get(k), digits) for k in keys)


def markdown(doc):
    m = doc["machine"]
    c = doc["config"]
    p = doc["phases"]
    lines = [
        "# Fjord benchmark: `gateway` (HTTP and gRPC gateway vs the Kafka path)",
        "",
        f"One agent over a local-directory bucket (SQLite metadata, flush interval {c['flush_interval_ms']} ms), "
        f"{c['partitions']}-partition topics created over HTTP, {c['message_size']} B records of random uppercase letters. "
        f"Each throughput and latency phase: {c['warmup_s']:g} s warm-up, then {c['duration_s']:g} s measured.",
        "",
        f"Command: `{doc['command']}`",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}",
        f"- client: {m['client']} (Python {m['python']})",
        f"- agent: `{m['agent_binary']}` ({m['agent_profile']} profile), Fjord commit `{m['fjord_commit']}`"
        f"{' (uncommitted changes in the worktree)' if m['fjord_worktree_dirty'] else ''}",
        f"- started {m['started_at']}; load average then {m['load_average_at_start']}; busiest commands then: "
        + (", ".join(f"{b['command']} {b['cores']}" for b in m["busy_processes_at_start"]) or "none"),
        "- *others*: cores used by processes outside the benchmark (agent, clients, driver) in the measured window, "
        "from `/proc/stat`; the machine is shared.",
        "",
        "## Produce throughput (closed loop, acks=all)",
        "",
        "| path | clients | records per request | MB/s | MB/s vs Kafka | records/s | requests/s | agent cores | "
        "agent CPU s per GiB | CPU per GiB vs Kafka | request latency p50 / p99 (ms) | errors | load-generator cores | "
        "others (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    rows = [
        ("1. Kafka (confluent-kafka, idempotent, linger 5 ms)", p.get("kafka_saturation")),
        ("2. HTTP record batches", p.get("http_record_batch")),
        ("3. HTTP JSON", p.get("http_json")),
        ("7. gRPC ProduceStream, record batches", p.get("grpc_stream_record_batch")),
        ("8. gRPC ProduceStream, protobuf records", p.get("grpc_stream_records")),
    ]
    kafka = p.get("kafka_saturation") or {}

    def versus(ph, key, form):
        base = kafka.get(key)
        if not base or ph is kafka or ph.get(key) is None:
            return "–"
        return form.format(ph[key] / base)

    errors = []
    for name, ph in rows:
        if ph is None:
            if name.startswith(("7.", "8.")) and not any(n in c.get("phases", ()) for n in ("7", "8")):
                continue  # results from before the gRPC phases existed
            lines.append(f"| {name} | not run | | | | | | | | | | | | |")
            continue
        if ph.get("error"):
            lines.append(f"| {name} | **error** (below) | | | | | | | | | | | | |")
            errors.append((name, ph["error"]))
            continue
        acc = ph["accounting"]
        if "clients" in ph:
            clients, per = ph["clients"], ph["records_per_request"]
            reqs = _fmt(ph["requests_per_second"])
            lat = _pct_cell(ph["request_latency_ms"], ("p50", "p99"), 1)
            if "stream_errors" in ph:
                bad = f"{ph['stream_errors']} failed streams, {ph['bad_answers']} bad answers"
            else:
                bad = f"{ph['non_200']} non-200, {ph['exceptions']} exceptions"
        else:
            clients, per, reqs = 1, "librdkafka batches (≤ 1 MB)", "–"
            lat = _pct_cell(ph["ack_latency_ms"], ("p50", "p99"), 1) + " (per record, from produce())"
            bad = f"{ph['produce_errors']} delivery errors"
        lines.append(
            f"| {name} | {clients} | {per} | {_fmt(ph['mb_per_second'])} | "
            f"{versus(ph, 'mb_per_second', '{:.0%}')} | {_fmt(ph['records_per_second'], 0)} | {reqs} | "
            f"{_fmt(acc['agent_cores'], 2)} | {_fmt(ph['agent_cpu_seconds_per_gib'], 2)} | "
            f"{versus(ph, 'agent_cpu_seconds_per_gib', '{:.2f}×')} | {lat} | {bad} | "
            f"{_fmt(acc['loadgen_cores'], 2)} | {_fmt(acc['other_cores'], 2)} |"
        )
    lat = p.get("produce_latency")
    lines += [
        "",
        f"## Produce latency at a light fixed rate ({c['latency_mb_per_s']:g} MB/s, {c['latency_records']} records per request, one partition)",
        "",
        "| path | what is timed | achieved MB/s | p50 / p99 / p99.9 (ms) | max (ms) | samples | late sends | errors |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    if lat is None:
        lines.append("| not run | | | | | | | |")
    elif lat.get("error"):
        lines.append("| **error** (below) | | | | | | | |")
        errors.append(("4. latency", lat["error"]))
    else:
        for key in ("http", "http_one_connection"):
            h = lat.get(key)
            if h is None:
                continue
            if h.get("error"):
                lines.append(f"| HTTP JSON ({key}) | **error** (below) | | | | | | |")
                errors.append((f"4. HTTP latency ({key})", h["error"]))
                continue
            rt, fs = h["round_trip_ms"], h["from_schedule_ms"]
            bad = sum(v for k, v in h["statuses"].items() if k != "200")
            label = (
                f"HTTP JSON, {h['connections']} connections, each sequential"
                if h["connections"] > 1
                else "HTTP JSON, 1 connection, sequential"
            )
            lines.append(
                f"| {label} | request round trip (send → answer read) | {_fmt(h['achieved_mb_per_second'], 2)} | "
                f"{_pct_cell(rt)} | {_fmt(rt.get('max'), 2)} | {rt['count']} | {h['late_sends']} | "
                f"{bad} non-200, {len(h['errors'])} noted |"
            )
            lines.append(
                f"| {label} | scheduled slot → answer read | | {_pct_cell(fs)} | {_fmt(fs.get('max'), 2)} | {fs['count']} | | |"
            )
        k = lat.get("kafka") or {}
        if k.get("error"):
            lines.append("| Kafka | **error** (below) | | | | | | |")
            errors.append(("4. Kafka latency", k["error"]))
        else:
            r, g = k["ack_latency_ms"], k["group_ack_latency_ms"]
            lines.append(
                f"| Kafka, linger.ms 0 | each record: delivery report − produce() | {_fmt(k['achieved_mb_per_second'], 2)} | "
                f"{_pct_cell(r)} | {_fmt(r.get('max'), 2)} | {r['count']} | {k['late_sends']} | {len(k['errors'])} |"
            )
            lines.append(
                f"| Kafka, linger.ms 0 | each group of {k['records_per_send']}: last report − first produce() | | "
                f"{_pct_cell(g)} | {_fmt(g.get('max'), 2)} | {g['count']} | | |"
            )
    sse = p.get("sse_end_to_end")
    lines += [
        "",
        f"## SSE end to end ({c['sse_rate']:g} records/s, one tail per partition)",
        "",
        "| measured from | p50 / p99 / p99.9 (ms) | max (ms) | samples | produced / received / missing / duplicates | stream problems |",
        "|---|---:|---:|---:|---|---|",
    ]
    if sse is None:
        lines.append("| not run | | | | | |")
    elif sse.get("error"):
        lines.append("| **error** (below) | | | | | |")
        errors.append(("5. SSE", sse["error"]))
    else:
        problems = (
            len(sse["stream_exceptions"]) + len(sse["streams_ended_by_agent"]) + len(sse["error_events"])
            + len(sse["stream_statuses_not_200"]) + sum(v for k, v in sse["producer_statuses"].items() if k != "200")
        )
        counts = f"{sse['records_produced']:,} / {sse['records_received']:,} / {sse['records_missing']:,} / {sse['duplicates']:,}"
        for label, key in (("record timestamp (ms)", "e2e_latency_ms_from_timestamp"), ("sent_ns header (ns)", "e2e_latency_ms_from_sent_ns")):
            s = sse[key]
            lines.append(
                f"| {label} | {_pct_cell(s)} | {_fmt(s.get('max'), 2)} | {s['count']:,} | {counts} | "
                f"{problems or 'none'} |"
            )
    idle = p.get("idle_sse_streams")
    lines += ["", "## Idle SSE streams (agent restarted first)", ""]
    if idle is None:
        lines.append("not run")
    elif idle.get("error"):
        lines.append("**error** (below)")
        errors.append(("6. idle streams", idle["error"]))
    else:
        def mib(v):
            return _fmt(v / MIB if v is not None else None, 1)

        hz = idle["healthz_with_streams"]
        lines += [
            "| | |",
            "|---|---|",
            f"| streams opened / wanted (failed) | {idle['streams_opened']:,} / {idle['streams_wanted']:,} ({idle['streams_failed']}) |",
            f"| time to open them | {idle['open_seconds']:.1f} s |",
            f"| agent RSS before | {mib(idle['rss_bytes_before'])} MiB |",
            f"| agent RSS with the streams open (settled / after {idle['hold_seconds']:g} s) | "
            f"{mib(idle['rss_bytes_with_streams_settled'])} / {mib(idle['rss_bytes_with_streams_end_of_hold'])} MiB |",
            f"| RSS per stream | {_fmt(idle['rss_bytes_per_stream'] / 1024 if idle['rss_bytes_per_stream'] else None, 1)} KiB |",
            f"| agent RSS after closing them / peak | {mib(idle['rss_bytes_after_close'])} / {mib(idle['peak_rss_bytes'])} MiB |",
            f"| agent RSS with as many opened again / after closing those | {mib(idle['rss_bytes_reopened'])} / "
            f"{mib(idle['rss_bytes_after_second_close'])} MiB ({idle['streams_reopened']:,} reopened) |",
            f"| agent file descriptors before / with streams / after closing / after the second round | "
            f"{idle['agent_fds_before']} / {idle['agent_fds_with_streams']} / {idle['agent_fds_after_close']} / "
            f"{idle['agent_fds_after_second_close']} |",
            f"| agent cores while the streams idle | {_fmt(idle['agent_cores_while_idle_streams_held'], 3)} |",
            f"| /healthz with the streams open | {hz['ok']} of {hz['tries']} answered 200, {hz['latency_ms']} ms |",
            f"| streams the agent closed while held | {idle['closed_by_agent_while_held']} |",
            f"| open-file limits: agent / client (soft, hard) | {idle['agent_nofile_limit']} / {idle['client_nofile_limit']} |",
        ]
        if idle["open_errors"]:
            lines.append(f"| open errors | {idle['open_errors']} |")
    lines += _group_markdown(doc, errors)
    lines += ["", "## Targets", "", "| target | measured | status |", "|---|---|---|"]
    for t in doc.get("targets", []):
        lines.append(f"| {t['target']} | {t['measured']} | {t['status']} |")
    issues = doc.get("issues") or []
    if errors or issues or doc.get("notes"):
        lines += ["", "## Errors and notes", ""]
        for name, e in errors:
            lines.append(f"- {name}: `{e}`")
        for i in issues:
            lines.append(f"- {i}")
        for n in doc.get("notes") or []:
            lines.append(f"- note: {n}")
    lines += [
        "",
        "Agent CPU per GiB: the agent's CPU over the measured window / GiB of record values acknowledged in it. "
        "MB = 10^6 bytes, GiB = 2^30 bytes; bytes are record values, not request bodies. "
        f"HTTP clients: {c['http_processes']} processes with one keep-alive `http.client` connection each, "
        f"record batches of {c['batch_records']} records{_body_sizes(p.get('http_record_batch'))}, "
        f"JSON bodies of {c['json_records']} records{_body_sizes(p.get('http_json'))}; bodies built before the clock starts. "
        + (
            f"gRPC clients: {c['http_processes']} processes with one grpcio channel and one `Records/ProduceStream` "
            "each (h2c on the HTTP port), lock-step (the next request once the previous answer arrived), requests "
            f"serialized before the clock starts: record batches as phase 2's{_body_sizes(p.get('grpc_stream_record_batch'), 'message')}, "
            f"protobuf records as phase 3's values, each record naming its partition{_body_sizes(p.get('grpc_stream_records'), 'message')}; "
            "ratios are against row 1 of the same run. "
            if p.get("grpc_stream_record_batch") or p.get("grpc_stream_records")
            else ""
        )
        + "*Others* also holds kernel time no process is charged for (loopback TCP softirq work).",
    ]
    return "\n".join(lines) + "\n"


def _group_markdown(doc, errors):
    """Phase 9's section (nothing for results from before it existed)."""
    c = doc["config"]
    gc = doc["phases"].get("group_consume")
    if gc is None and "9" not in c.get("phases", ()):
        return []
    lines = ["", "## Group consume (a prefilled topic read whole, once per fresh group)", ""]
    if gc is None:
        return lines + ["not run"]
    prefill = gc.get("prefill")
    if not prefill:
        errors.append(("9. group consume", gc.get("error")))
        return lines + ["**error** (below)"]
    lines += [
        f"Prefill (unmeasured): {sum(prefill['delivered'].values()):,} records of {c['message_size']} B letters "
        f"({sum(prefill['delivered'].values()) * c['message_size'] / MB:,.0f} MB) over {len(prefill['delivered'])} "
        f"partitions through the Kafka path, {_fmt(prefill['mb_per_second'])} MB/s. Each read is timed from its "
        "first call (the joins, or `subscribe()` and the first `consume()`) to the last record, so it includes "
        "the group's joins and rebalances; agent CPU is over the same span (until the driver saw the last record).",
        "",
        "| path | processes | records read / expected | duplicates / missing | seconds (first record after) | MB/s | "
        "records/s | agent cores | agent CPU s per GiB | poll round trip p50 / p99 (ms) | polls (with records) | "
        "load-generator cores (CPU s per GiB) | others (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (
        ("a. Kafka consumer (confluent-kafka, group.protocol=consumer)", "kafka"),
        (f"b. HTTP members (poll, {c.get('consume_encoding', 'utf8')}, auto_commit)", "http"),
    ):
        ph = gc.get(key)
        if ph is None:
            lines.append(f"| {label} | not run | | | | | | | | | | | |")
            continue
        if "accounting" not in ph:
            lines.append(f"| {label} | **error** (below) | | | | | | | | | | | |")
            errors.append((f"9. group consume ({key})", ph.get("error")))
            continue
        if ph.get("error"):
            errors.append((f"9. group consume ({key})", ph["error"]))
        acc, check = ph["accounting"], ph["verification"]
        if "poll_latency_ms" in ph:
            lat = _pct_cell(ph["poll_latency_ms_with_records"], ("p50", "p99"), 1)
            polls = f"{ph['polls']:,} ({ph['polls_with_records']:,})"
        else:
            lat, polls = "–", f"{ph['consume_calls']:,} consume() calls"
        verdict = "" if ph["verified"] else " **(failed)**"
        lines.append(
            f"| {label} | {ph['processes']} | {ph['records_consumed']:,} / {ph['records_expected']:,}{verdict} | "
            f"{check['duplicates']:,} / {check['missing']:,} | {_fmt(ph['measured_seconds'], 2)} "
            f"({_fmt(ph['first_record_after_seconds'], 2)}) | {_fmt(ph['mb_per_second'])} | "
            f"{_fmt(ph['records_per_second'], 0)} | {_fmt(acc['agent_cores'], 2)} | "
            f"{_fmt(ph['agent_cpu_seconds_per_gib'], 2)} | {lat} | {polls} | {_fmt(acc['loadgen_cores'], 2)} "
            f"({_fmt(ph['loadgen_cpu_seconds_per_gib'], 2)}) | {_fmt(acc['other_cores'], 2)} |"
        )
    kafka, http_ = gc.get("kafka") or {}, gc.get("http") or {}
    notes = []
    if kafka.get("consumer_config"):
        config = kafka["consumer_config"]
        notes.append(
            f"Kafka consumer: `max.partition.fetch.bytes` {config['max.partition.fetch.bytes']:,} (librdkafka's "
            f"default 1,048,576), `fetch.max.bytes` {config['fetch.max.bytes']:,} (its default; the agent caps a "
            "fetch at 55 MiB), auto commit, `consume(num_messages=10000)`."
        )
    if http_.get("poll"):
        poll = http_["poll"]
        lat = http_["poll_latency_ms"]
        notes.append(
            f"HTTP members: `max_bytes` {poll['max_bytes']:,}, `max_records` {poll['max_records']:,}, "
            f"`wait_ms` {poll['wait_ms']}, `auto_commit`, `encoding` {poll['encoding']}; "
            f"{_fmt(http_['records_per_poll_with_records'], 0)} records and "
            f"{_fmt(http_['response_bytes_per_poll'] / MB if http_.get('response_bytes_per_poll') else None, 2)} MB "
            "of JSON per poll on average; the latencies are of polls that returned records, all polls of the read: "
            f"{_pct_cell(lat, ('p50', 'p99'), 1)} ms; records per member {http_['records_per_member']}; "
            f"{http_['assigned_events']} partitions assigned and {http_['revoked_events']} revoked over the read; "
            f"statuses {http_['statuses']}, {http_['rejoins']} rejoins, {http_['exceptions']} exceptions."
        )
    if notes:
        lines += [""] + notes
    return lines


def _body_sizes(phase, what="body"):
    sizes = (phase or {}).get("body_bytes_per_request")
    if not sizes:
        return ""
    low, high = sizes
    return f" ({low:,} bytes per {what})" if low == high else f" ({low:,}–{high:,} bytes per {what})"


def render(path):
    """Rewrites a result's .md (and its targets) from its JSON."""
    with open(path) as f:
        doc = json.load(f)
    doc["targets"] = targets(doc)
    doc["issues"] = issues_of(doc)
    report.write_json(path, doc)
    with open(path[: -len(".json")] + ".md", "w") as f:
        f.write(markdown(doc))
    print(markdown(doc))


def issues_of(doc):
    """Gateway behaviour worth a look: non-200 answers, exceptions, stalls."""
    out = []
    p = doc["phases"]
    for key in ("http_record_batch", "http_json"):
        ph = p.get(key) or {}
        if ph.get("non_200") or ph.get("exceptions"):
            out.append(f"{key}: statuses {ph['statuses']}, {ph['exceptions']} exceptions; first: {ph['first_errors'][:2]}")
    for key in ("grpc_stream_record_batch", "grpc_stream_records"):
        ph = p.get(key) or {}
        ended_badly = [e for e in ph.get("end_statuses") or [] if e != "OK"]
        if ph.get("stream_errors") or ph.get("bad_answers") or ended_badly:
            out.append(
                f"{key}: {ph.get('stream_errors')} failed streams {ph.get('error_codes')}, {ph.get('bad_answers')} bad "
                f"answers, end statuses {ended_badly or 'OK'}; first: {ph.get('first_errors', [])[:2]}"
            )
    lat = p.get("produce_latency") or {}
    for key in ("http", "http_one_connection"):
        h = lat.get(key) or {}
        if h.get("errors"):
            out.append(f"HTTP latency ({key}): {h['errors'][:2]} (statuses {h.get('statuses')})")
    sse = p.get("sse_end_to_end") or {}
    for key in ("stream_exceptions", "streams_ended_by_agent", "error_events", "stream_statuses_not_200", "producer_errors"):
        if sse.get(key):
            out.append(f"SSE {key}: {sse[key][:3]}")
    if sse.get("records_missing"):
        out.append(f"SSE: {sse['records_missing']} acknowledged records never arrived on their tail (stall or loss)")
    if sse.get("duplicates") or sse.get("out_of_order"):
        out.append(f"SSE: {sse.get('duplicates')} duplicates, {sse.get('out_of_order')} out of order")
    gc = p.get("group_consume") or {}
    for key in ("kafka", "http"):
        ph = gc.get(key) or {}
        if ph.get("error"):
            out.append(f"group consume ({key}): {ph['error']}")
        if ph.get("rejoins") or ph.get("exceptions") or any(k != "200" for k in (ph.get("statuses") or {})):
            out.append(
                f"group consume ({key}): statuses {ph.get('statuses')}, {ph.get('rejoins')} rejoins, "
                f"{ph.get('exceptions')} exceptions; first: {ph.get('first_errors', [])[:2]}"
            )
    idle = p.get("idle_sse_streams") or {}
    if idle.get("streams_failed"):
        out.append(f"idle streams: {idle['streams_failed']} failed to open: {idle['open_errors']}")
    if idle.get("closed_by_agent_while_held"):
        out.append(f"idle streams: the agent closed {idle['closed_by_agent_while_held']} while held")
    hz = idle.get("healthz_with_streams")
    if hz and hz["ok"] < hz["tries"]:
        out.append(f"idle streams: /healthz answered {hz['ok']} of {hz['tries']}: {hz['errors'][:2]}")
    return out


def main(argv):
    if argv[:1] == ["render"]:
        # python3 bench/gateway.py render RESULT.json: redraw the .md
        render(argv[1])
        return 0
    args = parse_args(argv)
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = [x for x in phases if x not in ALL_PHASES]
    if unknown:
        raise SystemExit(f"unknown phase(s) {unknown}; phases are {', '.join(ALL_PHASES)}")
    # The agent inherits the limit: lift it before starting it (phase 6).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    log = _log_factory()
    binary = agent_binary(args)
    # Reading git (commit, dirty) must not take the index lock another process may hold.
    os.environ.setdefault("GIT_OPTIONAL_LOCKS", "0")
    stem = os.path.join(args.out, f"{time.strftime('%Y-%m-%d')}-gateway{'-' + args.tag if args.tag else ''}")
    doc = {
        "scenario": "gateway",
        "command": "python3 bench/gateway.py " + " ".join(shlex.quote(a) for a in argv),
        # A --binary is taken to be a release build (as the default one is).
        "machine": report.machine_description(REPO_ROOT, binary, "release"),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "partitions": args.partitions,
            "message_size": args.message_size,
            "payload": "letters",
            "flush_interval_ms": args.flush_interval_ms,
            "bucket": "dir",
            "http_processes": args.http_processes,
            "batch_records": args.batch_records,
            "json_records": args.json_records,
            "latency_mb_per_s": args.latency_mb_per_s,
            "latency_records": args.latency_records,
            "latency_http_connections": args.latency_http_connections,
            "sse_rate": args.sse_rate,
            "idle_streams": args.idle_streams,
            "idle_hold_s": args.idle_hold,
            "consume_mb": args.consume_mb,
            "consume_max_bytes": args.consume_max_bytes,
            "consume_encoding": args.consume_encoding,
            "phases": phases,
        },
        "phases": {},
        "notes": [],
    }
    if args.binary:
        doc["notes"].append(
            f"agent binary given with --binary ({binary}); taken to be a release build. The commit above is the "
            "checkout's HEAD when the run started, not necessarily what that binary was built from"
        )
    run_dir = tempfile.mkdtemp(prefix="fjord-bench-gateway-")
    log(f"== gateway benchmark, agent {binary}, run dir {run_dir}")
    bench = Bench(args, binary, run_dir, log)
    steps = {
        "1": bench.kafka_saturation,
        "2": lambda: bench.http_throughput("batch"),
        "3": lambda: bench.http_throughput("json"),
        "4": bench.produce_latency,
        "5": bench.sse_end_to_end,
        "6": bench.idle_streams,
        "7": lambda: bench.grpc_throughput("batch"),
        "8": lambda: bench.grpc_throughput("records"),
        "9": bench.group_consume,
    }

    def write():
        doc["targets"] = targets(doc)
        doc["issues"] = issues_of(doc)
        doc["machine"]["load_average_at_end"] = cluster_mod.load_average()
        os.makedirs(args.out, exist_ok=True)
        report.write_json(stem + ".json", doc)
        with open(stem + ".md", "w") as f:
            f.write(markdown(doc))

    try:
        bench.start()
        for number in ALL_PHASES:
            if number not in phases:
                continue
            name = PHASE_NAMES[number]
            try:
                bench.ensure_alive(doc["notes"])
                doc["phases"][name] = steps[number]()
            except Exception as error:  # noqa: BLE001 - recorded; the next phase runs
                doc["phases"][name] = {
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc(),
                    "agent_log_tail": bench.agent.log_tail() if bench.agent.process else None,
                }
                log(f"!! phase {number} ({name}) failed: {type(error).__name__}: {error}")
            finally:
                for child in multiprocessing.active_children():
                    child.terminate()
                    child.join(10)
            if bench.agent.process is not None:
                current, peak = bench.agent.memory()
                doc["phases"][name]["agent_rss_bytes_after_phase"] = [current, peak]
            write()
            time.sleep(1)
    except Exception as error:  # noqa: BLE001
        doc["error"] = f"{type(error).__name__}: {error}"
        log(f"!! {doc['error']}")
    finally:
        bench.cluster.stop()
        bench.lifetimes.append(bench.agent.exit_rusage)
        doc["agent_lifetimes"] = bench.lifetimes
        if args.keep:
            log(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        write()
    log(f"wrote {stem}.json and .md")
    print()
    print(markdown(doc))
    return 1 if doc.get("error") or any(isinstance(v, dict) and v.get("error") for v in doc["phases"].values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
