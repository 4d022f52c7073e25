"""Checks Fjord's gRPC gateway with clients nobody here wrote: Python `grpcio`
(stubs generated at run time by grpcio-tools from proto/fjord/v1/gateway.proto),
grpcio-status (the `google.rpc.Status` in a failed call's details),
grpcio-health-checking, grpcio-reflection, `requests` for gRPC-web and the
HTTP API, `h2` for hand-made HTTP/2 frames, confluent-kafka (librdkafka) for
the Kafka side, and kafka-python's murmur2 partitioner and record-batch
builder.

    python3 grpc_gateway.py roundtrip <bootstrap> <host:port> [<host:port> ...]
    python3 grpc_gateway.py bad-input <bootstrap> <host:port> [...]
    python3 grpc_gateway.py tail-kill <bootstrap> <pid of the first agent> <its node id> <records> <host:port> [...]
    python3 grpc_gateway.py expected-offset <bootstrap> <node ids, comma-separated, in agent order> <host:port> [...]
    python3 grpc_gateway.py groups <bootstrap> <host:port> [...]

Each `host:port` is an agent's HTTP port, where it serves gRPC (h2c, HTTP/2
with prior knowledge), gRPC-web and the HTTP API.

`tail-kill` tails a topic from the first agent while an idempotent producer
writes `<records>` records through the others, kills the first agent (`kill
-9` of the pid given, as `http_gateway.py sse-kill` does) once a third of them
arrived, resumes the tail with the last cursor on another agent and checks
that every acknowledged record arrived once, in order, per partition.

`groups` puts four members of four kinds in one consumer group (the
server-side protocol): a gRPC `Subscribe` stream with credits, a gRPC `Poll`
loop, an HTTP poll loop (`requests`) and a confluent-kafka consumer with
`group.protocol=consumer`; each record is consumed exactly once; then the
`Poll` member commits and leaves, and its partitions move to the others,
which consume what follows exactly once too.

Every call goes to the next agent in turn, so no call is served by the agent
that served the one before. Any failed check raises (exit status 1) with what
differed. Prints `OK <scenario> <counts>` at the end.
"""

import atexit
import base64
import itertools
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from google.protobuf import descriptor_pool
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status
from kafka.partitioner.default import murmur2
from kafka.record.default_records import DefaultRecordBatchBuilder

TIMEOUT = 60
REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "proto"


def generate_stubs():
    """`python -m grpc_tools.protoc` of gateway.proto into a temporary
    directory put on sys.path; returns (messages, services)."""
    out = tempfile.mkdtemp(prefix="fjord-grpc-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"--python_out={out}",
               f"--grpc_python_out={out}", str(PROTO / "fjord/v1/gateway.proto")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"grpc_tools.protoc failed ({done.returncode}): {done.stdout}{done.stderr}")
    sys.path.insert(0, out)
    from fjord.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: E402 (generated just now)
    return gateway_pb2, gateway_pb2_grpc


pb, rpc = generate_stubs()

C = grpc.StatusCode

# Kafka's error codes, and whether Kafka calls them retriable, of the errors
# checked here. The gateway's own reasons (BAD_REQUEST, OFFSET_MISMATCH, ...)
# have no Kafka code and are not retriable.
KAFKA_ERRORS = {
    "OFFSET_OUT_OF_RANGE": (1, False),
    "CORRUPT_MESSAGE": (2, True),
    "UNKNOWN_TOPIC_OR_PARTITION": (3, True),
    "INVALID_TOPIC_EXCEPTION": (17, False),
    "INVALID_REQUIRED_ACKS": (21, False),
    "INVALID_TIMESTAMP": (32, False),
    "TOPIC_ALREADY_EXISTS": (36, False),
    "INVALID_PARTITIONS": (37, False),
    "INVALID_CONFIG": (40, False),
    "OUT_OF_ORDER_SEQUENCE_NUMBER": (45, False),
    "INVALID_RECORD": (87, False),
}


class Agents:
    """A channel to every agent; each call goes to the next agent in turn."""

    def __init__(self, targets):
        assert targets, "no agent given"
        self.targets = list(targets)
        self.channels = [grpc.insecure_channel(t) for t in self.targets]
        self.turn = itertools.cycle(range(len(self.targets)))
        self.last = None

    def next_index(self):
        self.last = next(self.turn)
        return self.last

    def next_target(self):
        return self.targets[self.next_index()]

    def stub(self, service, index):
        channel = self.channels[index]
        return getattr(rpc, f"{service}Stub")(channel)

    def method(self, service, name, index=None):
        """`service`'s method `name` on agent `index` (the next one if None)."""
        if index is None:
            index = self.next_index()
        return getattr(self.stub(service, index), name)

    def call(self, service, name, request, index=None, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        return self.method(service, name, index)(request, **kwargs)

    def call_retrying(self, service, name, request, index=None, limit=60, **kwargs):
        """Retries what the server calls retriable (or an agent not reached)
        for up to `limit` seconds, each try at the next agent unless `index`
        is given."""
        deadline = time.monotonic() + limit
        while True:
            try:
                return self.call(service, name, request, index=index, **kwargs)
            except grpc.RpcError as error:
                if not retriable(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def close(self):
        for channel in self.channels:
            channel.close()


def trailers_of(call):
    return {k: v for k, v in (call.trailing_metadata() or ())}


def error_info(call):
    """The `google.rpc.ErrorInfo` of a failed call's details, or None; raises
    if the details do not match the call's status."""
    status = rpc_status.from_call(call)
    if status is None:
        return None
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) <= 1, f"several ErrorInfo details: {infos}"
    return infos[0] if infos else None


def retriable(error):
    if error.code() == C.UNAVAILABLE:
        return True
    try:
        info = error_info(error)
    except ValueError:
        return False
    return info is not None and info.metadata.get("retriable") == "true"


def describe_error(error):
    try:
        info = error_info(error)
    except ValueError as mismatch:
        info = f"<details do not match the status: {mismatch}>"
    return f"{error.code().name} {error.details()!r} ErrorInfo={info} trailers={trailers_of(error)}"


def failed(thunk, what):
    """The grpc.RpcError `thunk` raises; fails if it succeeds."""
    try:
        result = thunk()
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{what}: succeeded ({str(result)[:300]}), expected an error")


def check_error(error, codes, reasons, what):
    """`error`'s status is one of `codes`, with an ErrorInfo (domain fjord) of
    one of `reasons`, Kafka's code and retriability, and the same in the
    `fjord-*` trailers. Returns (ErrorInfo, trailers)."""
    codes = {codes} if isinstance(codes, C) else set(codes)
    reasons = {reasons} if isinstance(reasons, str) else set(reasons)
    assert error.code() in codes, f"{what}: {describe_error(error)}; expected {sorted(c.name for c in codes)}"
    assert error.details(), f"{what}: no message: {describe_error(error)}"
    try:
        info = error_info(error)
    except ValueError as mismatch:
        raise AssertionError(f"{what}: grpc-status-details-bin differs from the status: {mismatch}") from None
    assert info is not None, f"{what}: no ErrorInfo in the status details: {describe_error(error)}"
    assert info.reason in reasons, f"{what}: reason {info.reason}, expected {sorted(reasons)}: {describe_error(error)}"
    assert info.domain == "fjord", f"{what}: domain {info.domain!r}: {describe_error(error)}"
    trailers = trailers_of(error)
    known = KAFKA_ERRORS.get(info.reason)
    if known is not None:
        code, is_retriable = known
        assert info.metadata.get("kafka_error_code") == str(code), f"{what}: {describe_error(error)}; expected kafka_error_code {code}"
        assert trailers.get("fjord-kafka-error-code") == str(code), f"{what}: {describe_error(error)}; expected the trailer fjord-kafka-error-code {code}"
        expected_retriable = "true" if is_retriable else "false"
    else:
        assert "kafka_error_code" not in info.metadata, f"{what}: {describe_error(error)}"
        assert "fjord-kafka-error-code" not in trailers, f"{what}: {describe_error(error)}"
        expected_retriable = "false"
    assert info.metadata.get("retriable") == expected_retriable, f"{what}: {describe_error(error)}; expected retriable {expected_retriable}"
    assert trailers.get("fjord-error-code") == info.reason, f"{what}: {describe_error(error)}; the trailer fjord-error-code differs"
    assert trailers.get("fjord-retriable") == expected_retriable, f"{what}: {describe_error(error)}; the trailer fjord-retriable differs"
    return info, trailers


def expect_error(thunk, codes, reasons, what):
    error = failed(thunk, what)
    info, trailers = check_error(error, codes, reasons, what)
    print(f"refused {what}: {error.code().name} {info.reason} {error.details()!r}")
    return info, trailers


def record_tuple(record):
    """(key, value, headers, timestamp) of a ConsumedRecord or a Record, with
    None for what is absent."""
    return (
        record.key if record.HasField("key") else None,
        record.value if record.HasField("value") else None,
        [(h.key, h.value if h.HasField("value") else None) for h in record.headers],
        record.timestamp_ms,
    )


def make_record(key=None, value=None, headers=(), partition=None, timestamp_ms=None):
    record = pb.Record(headers=[pb.Header(key=k) if v is None else pb.Header(key=k, value=v) for k, v in headers])
    if key is not None:
        record.key = key
    if value is not None:
        record.value = value
    if partition is not None:
        record.partition = partition
    if timestamp_ms is not None:
        record.timestamp_ms = timestamp_ms
    return record


def placed(key, partitions):
    """Kafka's default partitioner: murmur2 of the key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def describe(agents, topic, index=None):
    return agents.call_retrying("Topics", "DescribeTopic", pb.DescribeTopicRequest(name=topic), index=index)


def wait_for_leaders(agents, topic, limit=60):
    """DescribeTopic until every partition has a live leader."""
    deadline = time.monotonic() + limit
    while True:
        topic_ = describe(agents, topic)
        if all(p.leader >= 0 for p in topic_.partitions):
            return topic_
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: partitions without a leader after {limit} s: {topic_}")
        time.sleep(0.2)


def wait_for_high_watermark(agents, topic, partition, high_watermark, limit=30):
    deadline = time.monotonic() + limit
    while True:
        found = describe(agents, topic).partitions[partition].high_watermark
        if found == high_watermark:
            return
        assert found < high_watermark, f"{topic}/{partition}: high watermark {found}, expected {high_watermark}"
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}/{partition}: high watermark {found}, not {high_watermark} within {limit} s")
        time.sleep(0.1)


def read_all(agents, topic, partition, start, end, max_records=7):
    """Every record of a partition from `start` to `end` (exclusive), each read
    at another agent, from the returned next_offset on."""
    records = []
    offset = start
    reads = 0
    while offset < end:
        answer = agents.call_retrying("Records", "Read", pb.ReadRequest(
            topic=topic, partition=partition, offset=offset, max_records=max_records, wait_ms=1000))
        reads += 1
        assert len(answer.records) <= max_records, (len(answer.records), max_records)
        for record in answer.records:
            assert record.partition == partition, record
            assert record.offset >= offset, (record.offset, offset)
        if answer.records:
            assert answer.next_offset == answer.records[-1].offset + 1, (answer.next_offset, answer.records[-1].offset)
            assert [r.offset for r in answer.records] == list(range(answer.records[0].offset, answer.next_offset)), \
                [r.offset for r in answer.records]
        elif answer.next_offset == offset:
            raise AssertionError(f"read {topic}/{partition}@{offset}: nothing within 1 s, high watermark {answer.high_watermark}")
        assert answer.high_watermark >= answer.next_offset, answer
        records.extend(answer.records)
        offset = answer.next_offset
    return records, reads


def produce(agents, request, index=None):
    return agents.call_retrying("Records", "Produce", request, index=index)


# ----- roundtrip -----


def scenario_roundtrip(bootstrap, targets):
    agents = Agents(targets)
    assert len(targets) >= 3, "roundtrip wants three agents"
    A, B, Cx = 0, 1, 2
    topic = f"grpc-{uuid.uuid4().hex[:8]}"
    partitions = 3
    counts = {}

    # Topics: created on agent A, seen by every agent.
    created = agents.call("Topics", "CreateTopic", pb.CreateTopicRequest(
        name=topic, partitions=partitions, configs={"retention.ms": "86400000"}), index=A)
    assert created.name == topic and created.partition_count == partitions, created
    assert len(created.partitions) == partitions, created
    assert [p.partition for p in created.partitions] == list(range(partitions)), created
    assert dict(created.configs) == {"retention.ms": "86400000"}, created
    assert len(created.id) == 36 and uuid.UUID(created.id), created.id
    for i in range(len(targets)):
        described = agents.call("Topics", "DescribeTopic", pb.DescribeTopicRequest(name=topic), index=i)
        assert described.id == created.id and described.partition_count == partitions, described
    expect_error(lambda: agents.call("Topics", "CreateTopic", pb.CreateTopicRequest(name=topic, partitions=1)),
                 C.ALREADY_EXISTS, "TOPIC_ALREADY_EXISTS", "create twice")
    wait_for_leaders(agents, topic)

    # Produce through agent B: keyed records placed by murmur2, records with
    # an explicit partition, non-UTF-8 bytes, a header without a value and
    # one with an empty value, a tombstone, explicit timestamps.
    sent = {}  # (partition, offset) -> (key, value, headers, timestamp)
    next_offset = {p: 0 for p in range(partitions)}
    base_ts = 1_700_000_000_000
    records = []
    expected = []
    for n in range(30):
        key = b"\xff\xfe" + bytes([n]) + b"\x00key" if n % 3 else f"key-{n}".encode()
        value = os.urandom(1 + n * 7) if n % 2 else f"value {n} \u00e9\u00e8".encode()
        headers = [("n", str(n).encode()), ("bin", bytes([n, 0, 255, 0x80])), ("novalue", None), ("empty", b"")]
        explicit = n % 5 == 4
        record = make_record(key=key, value=value, headers=headers, timestamp_ms=base_ts + n,
                             partition=(n % partitions) if explicit else None)
        records.append(record)
        expected.append((n % partitions) if explicit else placed(key, partitions))
    # A tombstone with an empty key, at an explicit partition.
    records.append(make_record(key=b"", partition=1, timestamp_ms=base_ts + 30, headers=[("t", b"\x00")]))
    expected.append(1)
    before = int(time.time() * 1000)
    # One without a timestamp: the time it was received.
    records.append(make_record(key=b"no-timestamp", value=b"\x80\x81"))
    expected.append(placed(b"no-timestamp", partitions))
    answer = produce(agents, pb.ProduceRequest(topic=topic, records=records), index=B)
    after = int(time.time() * 1000)
    assert len(answer.records) == len(records), answer
    for record, meta, partition in zip(records, answer.records, expected):
        assert meta.partition == partition, (meta, partition, "murmur2 placement")
        assert meta.offset == next_offset[partition], (meta, next_offset, "offsets not consecutive")
        next_offset[partition] += 1
        if record.HasField("timestamp_ms"):
            assert meta.timestamp_ms == record.timestamp_ms, (meta, record.timestamp_ms)
        else:
            assert before - 5000 <= meta.timestamp_ms <= after + 5000, (meta, before, after)
        key, value, headers, _ = record_tuple(record)
        sent[(meta.partition, meta.offset)] = (key, value, headers, meta.timestamp_ms)
    counts["produced"] = len(records)

    # Keyless records of one request go to one partition; a request's
    # `partition` puts every record there; acks=1.
    answer = produce(agents, pb.ProduceRequest(topic=topic, records=[
        make_record(value=f"keyless {i}".encode(), timestamp_ms=base_ts + 100 + i) for i in range(5)]))
    assert len({m.partition for m in answer.records}) == 1, answer
    for i, meta in enumerate(answer.records):
        assert meta.offset == next_offset[meta.partition], (meta, next_offset)
        next_offset[meta.partition] += 1
        sent[(meta.partition, meta.offset)] = (None, f"keyless {i}".encode(), [], base_ts + 100 + i)
    answer = produce(agents, pb.ProduceRequest(topic=topic, partition=2, acks=pb.ACKS_LEADER, records=[
        make_record(key=f"anywhere-{i}".encode(), value=b"to 2", timestamp_ms=base_ts + 200 + i) for i in range(4)]))
    for i, meta in enumerate(answer.records):
        assert meta.partition == 2 and meta.offset == next_offset[2], (meta, next_offset)
        next_offset[2] += 1
        sent[(2, meta.offset)] = (f"anywhere-{i}".encode(), b"to 2", [], base_ts + 200 + i)
    counts["produced"] += 9
    # acks=0: answered with offset -1; stored all the same.
    answer = produce(agents, pb.ProduceRequest(topic=topic, partition=0, acks=pb.ACKS_NONE, records=[
        make_record(key=b"fire", value=b"and forget", timestamp_ms=base_ts + 300)]))
    assert [(m.partition, m.offset) for m in answer.records] == [(0, -1)], answer
    wait_for_high_watermark(agents, topic, 0, next_offset[0] + 1)
    sent[(0, next_offset[0])] = (b"fire", b"and forget", [], base_ts + 300)
    next_offset[0] += 1
    counts["produced"] += 1

    # ProduceStream: 50 requests sent at once (then the stream half-closed),
    # 50 answers in request order, offsets growing.
    stream_requests = []
    for i in range(50):
        p = i % partitions
        rs = [make_record(key=f"s{i}-{j}".encode(), value=f"streamed {i}.{j}".encode(),
                          timestamp_ms=base_ts + 1000 + i) for j in range(1 + i % 3)]
        stream_requests.append(pb.ProduceRequest(topic=topic, partition=p, records=rs))
    answers = list(agents.method("Records", "ProduceStream")(iter(stream_requests), timeout=TIMEOUT))
    assert len(answers) == 50, f"ProduceStream: {len(answers)} answers to 50 requests"
    for request, answer in zip(stream_requests, answers):
        assert len(answer.records) == len(request.records), (request, answer)
        for record, meta in zip(request.records, answer.records):
            assert meta.partition == request.partition, (meta, request.partition)
            assert meta.offset == next_offset[meta.partition], ("ProduceStream answers out of order", meta, next_offset)
            next_offset[meta.partition] += 1
            sent[(meta.partition, meta.offset)] = (record.key, record.value, [], record.timestamp_ms)
            counts["produced"] += 1
    # ... and 10 more in lock step: each sent only once the one before was
    # answered (so each is answered as it is written, not at the stream's end).
    answered = queue.Queue()

    def lock_step():
        for i in range(10):
            if i:
                answered.get(timeout=30)
            yield pb.ProduceRequest(topic=topic, partition=i % partitions, records=[
                make_record(key=f"l{i}".encode(), value=f"lock step {i}".encode(), timestamp_ms=base_ts + 1100 + i)])

    stepped = 0
    for answer in agents.method("Records", "ProduceStream")(lock_step(), timeout=TIMEOUT):
        meta = answer.records[0]
        assert len(answer.records) == 1 and meta.partition == stepped % partitions, (stepped, answer)
        assert meta.offset == next_offset[meta.partition], ("ProduceStream answers out of order", meta, next_offset)
        next_offset[meta.partition] += 1
        sent[(meta.partition, meta.offset)] = (f"l{stepped}".encode(), f"lock step {stepped}".encode(), [],
                                               base_ts + 1100 + stepped)
        stepped += 1
        counts["produced"] += 1
        answered.put(stepped)
    assert stepped == 10, f"ProduceStream in lock step: {stepped} answers to 10 requests"
    counts["streamed"] = len(answers) + stepped

    # A confluent-kafka producer's records (murmur2_random, as the Java
    # client), read over gRPC below.
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "partitioner": "murmur2_random"})
    kafka_offsets = {}

    def delivered(error, message):
        assert error is None, error
        kafka_offsets[message.key()] = (message.partition(), message.offset(), message.timestamp()[1])

    kafka_sent = {}
    for i in range(20):
        key = b"kafka-" + bytes([i, 0xC3, 0x28])  # not UTF-8
        value = bytes([255 - i]) * (i + 1)
        headers = [("origin", b"librdkafka"), ("null", None), ("raw", b"\xff\x00")]
        kafka_sent[key] = (value, headers, base_ts + 2000 + i)
        producer.produce(topic, key=key, value=value, headers=headers, timestamp=base_ts + 2000 + i,
                         on_delivery=delivered)
    assert producer.flush(TIMEOUT) == 0
    for key, (value, headers, timestamp) in kafka_sent.items():
        partition, offset, ts = kafka_offsets[key]
        assert partition == placed(key, partitions), "librdkafka's murmur2 and kafka-python's disagree"
        assert offset == next_offset[partition], (key, offset, next_offset)
        next_offset[partition] += 1
        sent[(partition, offset)] = (key, value, headers, timestamp)
        counts["produced"] += 1

    # Read back through agent C (and then every agent in turn), byte for byte.
    reads = 0
    for p in range(partitions):
        # Agent C alone, default limits (a read may stop at a batch it did not
        # fetch whole: read on from next_offset).
        at_c = []
        while len(at_c) < next_offset[p]:
            answer = agents.call_retrying("Records", "Read", pb.ReadRequest(
                topic=topic, partition=p, offset=len(at_c)), index=Cx)
            reads += 1
            assert answer.records and answer.records[0].offset == len(at_c), (p, len(at_c), answer)
            assert answer.next_offset == answer.records[-1].offset + 1, answer
            assert answer.high_watermark == next_offset[p] and answer.log_start_offset == 0, answer
            at_c.extend(answer.records)
        assert [r.offset for r in at_c] == list(range(next_offset[p])), (p, [r.offset for r in at_c])
        for r in at_c:
            assert record_tuple(r) == sent[(p, r.offset)], (p, r, sent[(p, r.offset)])
            assert r.timestamp_type == pb.TIMESTAMP_TYPE_CREATE_TIME, r
        paged, n = read_all(agents, topic, p, 0, next_offset[p])
        reads += n
        assert [record_tuple(r) for r in paged] == [record_tuple(r) for r in at_c], p
    counts["read_back"] = sum(next_offset.values())
    assert counts["read_back"] == len(sent) == counts["produced"], (counts, len(sent))

    # By timestamp, earliest, latest.
    for p in range(partitions):
        by_ts = sorted((ts, off) for (q, off), (_, _, _, ts) in sent.items() if q == p)
        # The first record at or after the 3rd smallest timestamp of the
        # partition (timestamps grow with offsets here but for the record
        # stamped on arrival).
        ts, off = by_ts[2]
        want = min(o for (q, o), v in sent.items() if q == p and v[3] >= ts)
        got = agents.call("Records", "Read", pb.ReadRequest(topic=topic, partition=p, timestamp_ms=ts, max_records=1))
        assert [r.offset for r in got.records] == [want], (p, ts, want, got)
        got = agents.call("Records", "Read", pb.ReadRequest(topic=topic, partition=p, timestamp_ms=4_000_000_000_000))
        assert not got.records, got
        earliest = agents.call("Records", "Read", pb.ReadRequest(topic=topic, partition=p,
                                                                 position=pb.POSITION_EARLIEST, max_records=2))
        assert [r.offset for r in earliest.records] == [0, 1] and earliest.next_offset == 2, earliest
        # max_bytes: at least one batch, whatever it says.
        small = agents.call("Records", "Read", pb.ReadRequest(topic=topic, partition=p, offset=0, max_bytes=1))
        assert small.records and small.records[0].offset == 0, small
        latest = agents.call("Records", "Read", pb.ReadRequest(topic=topic, partition=p, position=pb.POSITION_LATEST))
        assert not latest.records and latest.next_offset == next_offset[p] == latest.high_watermark, latest
        reads += 4

    # A read that waits for a record produced meanwhile, on another agent.
    waited = {}

    def wait_for_record():
        try:
            waited["answer"] = agents.call("Records", "Read", pb.ReadRequest(
                topic=topic, partition=1, offset=next_offset[1], wait_ms=20000), index=A)
        except grpc.RpcError as error:
            waited["error"] = error

    reader = threading.Thread(target=wait_for_record)
    reader.start()
    time.sleep(0.5)
    late = produce(agents, pb.ProduceRequest(topic=topic, partition=1, records=[
        make_record(value=b"late", timestamp_ms=base_ts + 3000)]), index=B)
    reader.join()
    assert "error" not in waited, describe_error(waited["error"])
    assert [(r.offset, r.value) for r in waited["answer"].records] == [(late.records[0].offset, b"late")], waited
    sent[(1, next_offset[1])] = (None, b"late", [], base_ts + 3000)
    next_offset[1] += 1
    counts["produced"] += 1

    # An idempotent producer: the same request retried through every other
    # agent is answered with the same offsets and stored once.
    ids = agents.call("Records", "InitProducer", pb.InitProducerRequest())
    assert ids.producer_id >= 0 and ids.producer_epoch >= 0, ids
    idem = [make_record(key=f"idem-{i}".encode(), value=f"once {i}".encode(), timestamp_ms=base_ts + 4000 + i)
            for i in range(4)]

    def idempotent(sequence, records_):
        return pb.ProduceRequest(topic=topic, partition=0, records=records_, producer=pb.ProducerSequence(
            producer_id=ids.producer_id, producer_epoch=ids.producer_epoch, sequence=sequence))

    first = produce(agents, idempotent(0, idem))
    offsets = [(m.partition, m.offset) for m in first.records]
    assert offsets == [(0, next_offset[0] + i) for i in range(4)], (offsets, next_offset)
    for _ in range(len(targets)):
        again = produce(agents, idempotent(0, idem))
        assert [(m.partition, m.offset) for m in again.records] == offsets, (again, offsets)
    for i, record in enumerate(idem):
        sent[(0, next_offset[0] + i)] = record_tuple(record)
    next_offset[0] += 4
    following = produce(agents, idempotent(4, [make_record(value=b"next", timestamp_ms=base_ts + 4100)]))
    assert [(m.partition, m.offset) for m in following.records] == [(0, next_offset[0])], following
    sent[(0, next_offset[0])] = (None, b"next", [], base_ts + 4100)
    next_offset[0] += 1
    expect_error(lambda: agents.call("Records", "Produce", idempotent(9, [make_record(value=b"gap")])),
                 (C.FAILED_PRECONDITION, C.ABORTED, C.ALREADY_EXISTS), "OUT_OF_ORDER_SEQUENCE_NUMBER", "a sequence gap")
    stored, _ = read_all(agents, topic, 0, 0, next_offset[0])
    assert sum(1 for r in stored if r.key.startswith(b"idem-")) == 4, "the idempotent records are not stored once"
    counts["produced"] += 5
    counts["retried"] = len(targets)

    # DescribeTopic on every agent: the high watermarks of what was produced.
    for i in range(len(targets)):
        described = agents.call("Topics", "DescribeTopic", pb.DescribeTopicRequest(name=topic), index=i)
        assert [(p.partition, p.log_start_offset, p.high_watermark) for p in described.partitions] == \
               [(p, 0, next_offset[p]) for p in range(partitions)], (described, next_offset)
        assert all(p.leader >= 0 for p in described.partitions), described
    assert sum(next_offset.values()) == len(sent) == counts["produced"], (next_offset, len(sent), counts)

    # Everything over gRPC, read by a Kafka consumer, byte for byte.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    consumed = {}
    deadline = time.monotonic() + TIMEOUT
    while len(consumed) < len(sent) and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        assert message.error() is None, message.error()
        consumed[(message.partition(), message.offset())] = (
            message.key(), message.value(), [(k, v) for k, v in (message.headers() or [])], message.timestamp()[1])
    consumer.close()
    differ = [(k, consumed.get(k), v) for k, v in sorted(sent.items()) if consumed.get(k) != v]
    assert not differ and len(consumed) == len(sent), \
        f"a Kafka consumer read {len(consumed)} of {len(sent)} records; differing (first 3): {differ[:3]}"
    counts["consumed"] = len(consumed)

    # The topic's Tail: from the earliest, cut after 40 records and resumed
    # on another agent with the last cursor; then one started from a cursor
    # of the HTTP API's topic read; then one resumed from a heartbeat's cursor.
    tailed = []
    cursor = ""
    for round_ in range(3):
        call = agents.method("Records", "Tail")(pb.TailRequest(topic=topic, cursor=cursor, heartbeat_ms=200),
                                                timeout=TIMEOUT)
        first_event = True
        for event in call:
            kind = event.WhichOneof("event")
            if first_event:
                assert kind == "heartbeat", f"the first message of a Tail is not a heartbeat: {event}"
                first_event = False
            if kind == "heartbeat":
                if len(tailed) == len(sent):
                    break
                continue
            tailed.append((event.record.record.partition, event.record.record.offset))
            assert record_tuple(event.record.record) == sent[tailed[-1]], (event, sent[tailed[-1]])
            cursor = event.record.cursor
            if round_ == 0 and len(tailed) == 40:
                break
        call.cancel()
        if len(tailed) == len(sent):
            break
    assert len(tailed) == len(set(tailed)) == len(sent), (len(tailed), len(set(tailed)), len(sent))
    for p in range(partitions):
        mine = [o for q, o in tailed if q == p]
        assert mine == sorted(mine), (p, mine)
    counts["tailed"] = len(tailed)
    # A cursor of the HTTP API, taken after 25 records of a topic read.
    http = f"http://{agents.next_target()}"
    body = requests.get(f"{http}/v1/topics/{topic}/records", params={"max_records": 25}, timeout=TIMEOUT)
    assert body.status_code == 200, body.text
    body = body.json()
    seen_http = {(r["partition"], r["offset"]) for r in body["records"]}
    rest = tail_until(agents, pb.TailRequest(topic=topic, cursor=body["cursor"], heartbeat_ms=200),
                      len(sent) - len(seen_http))
    assert len(rest) == len(set(rest)) and set(rest) | seen_http == set(sent) and not set(rest) & seen_http, \
        (len(rest), len(seen_http), len(sent))
    # A heartbeat's cursor: where the tail stands.
    call = agents.method("Records", "Tail")(pb.TailRequest(topic=topic, start=pb.POSITION_LATEST, heartbeat_ms=200),
                                            timeout=TIMEOUT)
    standing = None
    for event in call:
        assert event.WhichOneof("event") == "heartbeat", f"a tail from the latest got a record: {event}"
        standing = event.heartbeat.cursor
        break
    call.cancel()
    assert standing, "no heartbeat cursor"
    after_heartbeat = produce(agents, pb.ProduceRequest(topic=topic, records=[
        make_record(key=b"after-heartbeat", value=b"hb", timestamp_ms=base_ts + 5000)]))
    meta = after_heartbeat.records[0]
    sent[(meta.partition, meta.offset)] = (b"after-heartbeat", b"hb", [], base_ts + 5000)
    next_offset[meta.partition] += 1
    got = tail_until(agents, pb.TailRequest(topic=topic, cursor=standing, heartbeat_ms=200), 1)
    assert got == [(meta.partition, meta.offset)], (got, meta)
    # start_timestamp_ms: the first record at or after it in each partition.
    # (Kafka's ListOffsets: the first offset whose timestamp is at or after
    # it, then everything after that offset.)
    since = base_ts + 4000
    firsts = {}
    for (q, o), v in sent.items():
        if v[3] >= since:
            firsts[q] = min(o, firsts.get(q, o))
    wanted = {(q, o) for (q, o) in sent if q in firsts and o >= firsts[q]}
    got = tail_until(agents, pb.TailRequest(topic=topic, start_timestamp_ms=since, heartbeat_ms=200), len(wanted))
    assert set(got) == wanted, (sorted(got), sorted(wanted))

    # gRPC-web (HTTP/1.1, `requests`): DescribeTopic, and an error.
    web = grpc_web(f"http://{agents.next_target()}", "/fjord.v1.Topics/DescribeTopic",
                   pb.DescribeTopicRequest(name=topic).SerializeToString())
    assert web["trailers"].get("grpc-status") == "0", web
    assert len(web["messages"]) == 1, web
    assert pb.Topic.FromString(web["messages"][0]).id == created.id, web
    web = grpc_web(f"http://{agents.next_target()}", "/fjord.v1.Topics/DescribeTopic",
                   pb.DescribeTopicRequest(name=f"{topic}-none").SerializeToString())
    assert web["trailers"].get("grpc-status") == str(C.NOT_FOUND.value[0]), web
    assert web["trailers"].get("fjord-error-code") == "UNKNOWN_TOPIC_OR_PARTITION", web

    # Health and reflection on every agent.
    for i, target in enumerate(targets):
        health = health_pb2_grpc.HealthStub(agents.channels[i])
        for service in ("", "fjord.v1.Records", "fjord.v1.Topics"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, (target, service, answer)
        error = failed(lambda: health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT),
                       "health of an unknown service")
        assert error.code() == C.NOT_FOUND, describe_error(error)
        for version in ("v1alpha", "v1"):
            services = reflection_services(agents.channels[i], version)
            for wanted in ("fjord.v1.Records", "fjord.v1.Topics", "grpc.health.v1.Health"):
                assert wanted in services, (target, version, services)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(agents.channels[agents.next_index()]))
    served = pool.FindServiceByName("fjord.v1.Records")
    assert {m.name for m in served.methods} == {"Produce", "ProduceStream", "InitProducer", "Read", "Tail"}, served.methods
    assert {m.name for m in pool.FindServiceByName("fjord.v1.Topics").methods} == \
           {"ListTopics", "CreateTopic", "DescribeTopic", "DeleteTopic"}
    for message in ("ProduceRequest", "ReadRequest", "TailRequest", "ConsumedRecord", "Topic"):
        remote = pool.FindMessageTypeByName(f"fjord.v1.{message}")
        local = pb.DESCRIPTOR.message_types_by_name[message]
        assert [(f.name, f.number, f.type) for f in remote.fields] == [(f.name, f.number, f.type) for f in local.fields], message

    # ListTopics includes it; DeleteTopic removes it everywhere.
    listed = agents.call("Topics", "ListTopics", pb.ListTopicsRequest())
    mine = [t for t in listed.topics if t.name == topic]
    assert len(mine) == 1 and mine[0].partition_count == partitions and mine[0].id == created.id, listed
    agents.call("Topics", "DeleteTopic", pb.DeleteTopicRequest(name=topic))
    for i in range(len(targets)):
        listed = agents.call("Topics", "ListTopics", pb.ListTopicsRequest(), index=i)
        assert topic not in [t.name for t in listed.topics], listed
        expect_error(lambda: agents.call("Topics", "DescribeTopic", pb.DescribeTopicRequest(name=topic), index=i),
                     C.NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION", "describe a deleted topic")
    agents.close()
    print(f"OK roundtrip produced={counts['produced']} read_back={counts['read_back']} reads={reads} "
          f"streamed={counts['streamed']} consumed={counts['consumed']} tailed={counts['tailed']} "
          f"retried={counts['retried']}")


def tail_until(agents, request, count, limit=30):
    """(partition, offset) of the first `count` records of a Tail at the next
    agent; fails if a record arrives past `count` before the next heartbeat."""
    got = []
    call = agents.method("Records", "Tail")(request, timeout=limit)
    try:
        for event in call:
            if event.WhichOneof("event") == "heartbeat":
                if len(got) >= count:
                    break
                continue
            got.append((event.record.record.partition, event.record.record.offset))
            assert len(got) <= count, f"more records than the {count} expected: {got}"
    finally:
        call.cancel()
    assert len(got) == count, (got, count)
    return got


def grpc_web(base, path, message):
    """A unary gRPC-web call over HTTP/1.1: {messages, trailers}."""
    answer = requests.post(base + path, data=b"\x00" + struct.pack(">I", len(message)) + message, timeout=TIMEOUT,
                           headers={"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1",
                                    "Accept": "application/grpc-web+proto"})
    assert answer.status_code == 200, (answer.status_code, answer.headers, answer.content[:200])
    assert answer.headers["Content-Type"].startswith("application/grpc-web"), answer.headers
    messages, trailers = [], {}
    body = answer.content
    while body:
        flags, length = body[0], struct.unpack(">I", body[1:5])[0]
        frame, body = body[5:5 + length], body[5 + length:]
        assert len(frame) == length, "a gRPC-web frame cut short"
        if flags & 0x80:
            for line in frame.decode().split("\r\n"):
                if line:
                    k, _, v = line.partition(":")
                    trailers[k.strip().lower()] = v.strip()
        else:
            messages.append(frame)
    # A trailers-only answer carries the status in the HTTP headers.
    for k, v in answer.headers.items():
        if k.lower().startswith(("grpc-", "fjord-")):
            trailers.setdefault(k.lower(), v)
    return {"messages": messages, "trailers": trailers}


def reflection_services(channel, version):
    """The services `list_services` names, over grpc.reflection.<version>
    (v1's messages are v1alpha's)."""
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    if version == "v1alpha":
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([request]), timeout=TIMEOUT)
    else:
        method = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                       request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                       response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        responses = method(iter([request]), timeout=TIMEOUT)
    answers = list(responses)
    assert len(answers) == 1 and answers[0].WhichOneof("message_response") == "list_services_response", answers
    return {s.name for s in answers[0].list_services_response.service}


# ----- bad input -----


def scenario_bad_input(bootstrap, targets):
    agents = Agents(targets)
    topic = f"bad-{uuid.uuid4().hex[:8]}"
    agents.call("Topics", "CreateTopic", pb.CreateTopicRequest(name=topic, partitions=2))
    wait_for_leaders(agents, topic)
    good = produce(agents, pb.ProduceRequest(topic=topic, partition=0, records=[make_record(key=b"k", value=b"kept")]))
    assert [(m.partition, m.offset) for m in good.records] == [(0, 0)], good
    checks = 0

    def refused(codes, reasons, what, service, method, request):
        nonlocal checks
        expect_error(lambda: agents.call(service, method, request), codes, reasons, what)
        checks += 1

    def produce_refused(codes, reasons, what, **fields):
        refused(codes, reasons, what, "Records", "Produce", pb.ProduceRequest(**fields))

    one = [make_record(value=b"x")]
    unknown = ("UNKNOWN_TOPIC_OR_PARTITION",)
    # Unknown topics and partitions.
    produce_refused(C.NOT_FOUND, unknown, "produce to an unknown topic", topic="no-such-topic", records=one)
    produce_refused(C.NOT_FOUND, unknown, "produce to an unknown topic, partition given", topic="no-such-topic",
                    partition=0, records=one)
    produce_refused(C.NOT_FOUND, unknown, "request partition out of range", topic=topic, partition=2, records=one)
    produce_refused(C.NOT_FOUND, unknown, "record partition out of range", topic=topic,
                    records=[make_record(value=b"x", partition=7)])
    produce_refused((C.INVALID_ARGUMENT, C.NOT_FOUND), ("BAD_REQUEST", "UNKNOWN_TOPIC_OR_PARTITION"),
                    "negative partition", topic=topic, partition=-1, records=one)
    refused(C.NOT_FOUND, unknown, "read an unknown topic", "Records", "Read",
            pb.ReadRequest(topic="no-such-topic", partition=0, offset=0))
    refused(C.NOT_FOUND, unknown, "read a partition out of range", "Records", "Read",
            pb.ReadRequest(topic=topic, partition=2, offset=0))
    refused(C.NOT_FOUND, unknown, "describe an unknown topic", "Topics", "DescribeTopic",
            pb.DescribeTopicRequest(name="no-such-topic"))
    refused(C.NOT_FOUND, unknown, "delete an unknown topic", "Topics", "DeleteTopic",
            pb.DeleteTopicRequest(name="no-such-topic"))
    expect_error(lambda: list(agents.method("Records", "Tail")(pb.TailRequest(topic="no-such-topic"), timeout=TIMEOUT)),
                 C.NOT_FOUND, unknown, "tail an unknown topic")
    checks += 1
    # Malformed produces.
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000, key=b"k", value=b"a batch", headers=[])
    batch = bytes(builder.build())
    bad = C.INVALID_ARGUMENT
    produce_refused(bad, "BAD_REQUEST", "record_batches without a partition", topic=topic, record_batches=batch)
    ids = agents.call("Records", "InitProducer", pb.InitProducerRequest())
    sequence = pb.ProducerSequence(producer_id=ids.producer_id, producer_epoch=ids.producer_epoch, sequence=0)
    produce_refused(bad, "BAD_REQUEST", "producer without a partition", topic=topic, records=one, producer=sequence)
    produce_refused(bad, "BAD_REQUEST", "expected_offset without a partition", topic=topic, records=one,
                    expected_offset=1)
    produce_refused(bad, "BAD_REQUEST", "no records", topic=topic)
    produce_refused(bad, "BAD_REQUEST", "no records, partition given", topic=topic, partition=0)
    produce_refused(bad, "BAD_REQUEST", "records and record_batches", topic=topic, partition=0, records=one,
                    record_batches=batch)
    produce_refused(bad, "BAD_REQUEST", "a record naming another partition", topic=topic, partition=0,
                    records=[make_record(value=b"x", partition=1)])
    produce_refused(bad, ("INVALID_TIMESTAMP", "BAD_REQUEST"), "a negative timestamp", topic=topic,
                    records=[make_record(value=b"x", timestamp_ms=-5)])
    produce_refused(bad, ("INVALID_REQUIRED_ACKS", "BAD_REQUEST"), "acks not in the enum", topic=topic, records=one,
                    acks=7)
    produce_refused((bad, C.NOT_FOUND), ("BAD_REQUEST", "INVALID_TOPIC_EXCEPTION", "UNKNOWN_TOPIC_OR_PARTITION"),
                    "no topic name", records=one)
    # A damaged record batch (bad CRC) and one cut short: refused as the
    # request's fault, nothing stored.
    damaged = bytearray(batch)
    damaged[-1] ^= 0xFF
    for what, body in (("bad CRC", bytes(damaged)), ("cut short", batch[:30]), ("garbage", b"\x00" * 7 + os.urandom(80))):
        error = failed(lambda: agents.call("Records", "Produce", pb.ProduceRequest(
            topic=topic, partition=0, record_batches=body)), f"record_batches {what}")
        assert error.code() not in (C.UNKNOWN, C.INTERNAL, C.UNAVAILABLE), f"record_batches {what}: {describe_error(error)}"
        check_error(error, error.code(), ("CORRUPT_MESSAGE", "INVALID_RECORD", "BAD_REQUEST"), f"record_batches {what}")
        checks += 1
    # Reads and tails.
    read = dict(topic=topic, partition=0)
    refused(C.OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE", "offset past the end", "Records", "Read", pb.ReadRequest(**read, offset=1000))
    refused((C.INVALID_ARGUMENT, C.OUT_OF_RANGE), ("BAD_REQUEST", "OFFSET_OUT_OF_RANGE"), "negative offset",
            "Records", "Read", pb.ReadRequest(**read, offset=-1))
    for what, cursor in (("a garbage cursor", "!!"), ("a forged cursor", "djE6MD0tMQ"), ("another prefix", "eDox"),
                         ("a non-ASCII cursor", "\u00e9t\u00e9")):
        expect_error(lambda: list(agents.method("Records", "Tail")(pb.TailRequest(topic=topic, cursor=cursor), timeout=TIMEOUT)),
                     C.INVALID_ARGUMENT, "BAD_REQUEST", f"Tail from {what}")
        checks += 1
    # A cursor past the end: the stream ends with the status a read there has.
    past = base64.urlsafe_b64encode(b"v1:0=1000,1=0").decode().rstrip("=")
    expect_error(lambda: list(agents.method("Records", "Tail")(pb.TailRequest(topic=topic, cursor=past), timeout=TIMEOUT)),
                 C.OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE", "Tail from a cursor past the end")
    checks += 1
    # Topics.
    refused(bad, "INVALID_PARTITIONS", "zero partitions", "Topics", "CreateTopic", pb.CreateTopicRequest(name="zero", partitions=0))
    refused(bad, "INVALID_CONFIG", "unknown config", "Topics", "CreateTopic",
            pb.CreateTopicRequest(name="cfg", configs={"no.such": "1"}))
    refused(bad, "INVALID_CONFIG", "bad config value", "Topics", "CreateTopic",
            pb.CreateTopicRequest(name="cfg", configs={"retention.ms": "soon"}))
    refused(bad, "INVALID_TOPIC_EXCEPTION", "bad name", "Topics", "CreateTopic", pb.CreateTopicRequest(name="a/b"))
    refused(bad, ("INVALID_TOPIC_EXCEPTION", "BAD_REQUEST"), "empty name", "Topics", "CreateTopic", pb.CreateTopicRequest(name=""))
    # A ProduceStream ends with the first failure, after what came before was
    # written; what came after is not.
    stream = [pb.ProduceRequest(topic=topic, partition=1, records=[make_record(value=f"s{i}".encode())]) for i in range(3)]
    stream.append(pb.ProduceRequest(topic=topic, partition=9, records=one))
    stream.append(pb.ProduceRequest(topic=topic, partition=1, records=[make_record(value=b"never")]))
    answered = []

    def run_stream():
        for answer in agents.method("Records", "ProduceStream")(iter(stream), timeout=TIMEOUT):
            answered.append(answer)

    expect_error(run_stream, C.NOT_FOUND, unknown, "a ProduceStream with a bad request")
    assert [[(m.partition, m.offset) for m in a.records] for a in answered] == [[(1, 0)], [(1, 1)], [(1, 2)]], answered
    checks += 1
    # An unknown method.
    unknown_method = agents.channels[agents.next_index()].unary_unary("/fjord.v1.Records/Nope")
    error = failed(lambda: unknown_method(b"", timeout=TIMEOUT), "an unknown method")
    assert error.code() == C.UNIMPLEMENTED, describe_error(error)
    checks += 1
    # Hand-made HTTP/2: malformed gRPC frames.
    raw_checks = raw_h2_checks(agents, topic)
    checks += raw_checks
    # Nothing refused was stored, what was stored is intact, every agent answers.
    for i, target in enumerate(targets):
        described = agents.call("Topics", "DescribeTopic", pb.DescribeTopicRequest(name=topic), index=i)
        assert [p.high_watermark for p in described.partitions] == [1, 3], (target, described)
        health = health_pb2_grpc.HealthStub(agents.channels[i]).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        assert health.status == health_pb2.HealthCheckResponse.SERVING, (target, health)
        assert requests.get(f"http://{target}/healthz", timeout=TIMEOUT).status_code == 200, target
    kept = agents.call("Records", "Read", pb.ReadRequest(topic=topic, partition=0, offset=0))
    assert [(r.offset, r.key, r.value) for r in kept.records] == [(0, b"k", b"kept")], kept
    streamed = agents.call("Records", "Read", pb.ReadRequest(topic=topic, partition=1, offset=0))
    assert [r.value for r in streamed.records] == [b"s0", b"s1", b"s2"], streamed
    # A request larger than the agent's body limit (--http-max-body-bytes):
    # refused before it is decoded, by tonic's decoder, which answers
    # OUT_OF_RANGE (gRPC's status code table suggests RESOURCE_EXHAUSTED;
    # docs/gateway.md says which one Fjord sends).
    limit = int(os.environ.get("FJORD_TEST_HTTP_MAX_BODY", "1048576"))
    error = failed(lambda: agents.call("Records", "Produce", pb.ProduceRequest(
        topic=topic, partition=0, records=[make_record(value=b"x" * (limit + 10))])), "a request over the body limit")
    print(f"refused a request over the body limit: {describe_error(error)}")
    assert error.code() == C.OUT_OF_RANGE and "too large" in error.details(), \
        f"a request over the body limit: {describe_error(error)}"
    checks += 1
    assert [p.high_watermark for p in agents.call("Topics", "DescribeTopic", pb.DescribeTopicRequest(name=topic)).partitions] \
        == [1, 3], "the request over the limit was written"
    agents.close()
    print(f"OK bad-input checks={checks} raw_h2={raw_checks}")


def raw_h2(target, path, body, extra_headers=()):
    """One gRPC call over a hand-driven HTTP/2 connection (`h2`): (headers,
    trailers, data, reset error code or None)."""
    import h2.config
    import h2.connection
    import h2.events

    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", target), (":path", path),
                                ("content-type", "application/grpc"), ("te", "trailers"), *extra_headers])
        conn.send_data(sid, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        headers, trailers, data, reset = {}, {}, b"", None
        done = False
        while not done:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    done = True
                elif isinstance(event, h2.events.StreamReset):
                    reset, done = event.error_code, True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    reset, done = f"GOAWAY {event.error_code}", True
            sock.sendall(conn.data_to_send())
    return headers, trailers, data, reset


def raw_h2_checks(agents, topic):
    try:
        import h2  # noqa: F401
    except ImportError:
        print("SKIP raw HTTP/2 frames: the h2 package is not installed")
        return 0

    def frame(message, flags=0, length=None):
        return bytes([flags]) + struct.pack(">I", len(message) if length is None else length) + message

    def status_of(answer):
        headers, trailers, _, reset = answer
        return trailers.get("grpc-status", headers.get("grpc-status")), reset

    # The hand-made client itself: a valid call answers grpc-status 0.
    answer = raw_h2(agents.next_target(), "/fjord.v1.Topics/DescribeTopic",
                    frame(pb.DescribeTopicRequest(name=topic).SerializeToString()))
    assert status_of(answer) == ("0", None), answer
    assert pb.Topic.FromString(answer[2][5:]).name == topic, answer
    checks = 0
    produce_path = "/fjord.v1.Records/Produce"
    cases = [
        ("a frame shorter than its length", frame(b"\x0a\x01x", length=100), ()),
        ("a frame not protobuf", frame(b"\xff\xff\xff\xff\xff"), ()),
        ("a compressed frame without grpc-encoding", frame(b"\x0a\x01x", flags=1), ()),
        ("a frame of unknown grpc-encoding", frame(b"\x0a\x01x", flags=1), (("grpc-encoding", "rot13"),)),
        ("a 4 GiB frame length", frame(b"\x0a", length=0xFFFFFFFF), ()),
        ("half a frame header", b"\x00\x00", ()),
    ]
    for what, body, extra in cases:
        answer = raw_h2(agents.next_target(), produce_path, body, extra)
        status, reset = status_of(answer)
        assert (status is not None and status != "0") or reset is not None, f"{what}: answered {answer}"
        if status is not None:
            assert status.isdigit() and 0 < int(status) <= 16, f"{what}: grpc-status {status!r}"
        headers, trailers, _, _ = answer
        message = trailers.get("grpc-message", headers.get("grpc-message", ""))
        print(f"raw HTTP/2, {what}: grpc-status {status} {message!r}" + (f", reset {reset}" if reset is not None else ""))
        checks += 1
    # The agents' listeners took all that: a valid call still answers.
    for i in range(len(agents.targets)):
        answer = raw_h2(agents.targets[i], "/fjord.v1.Topics/DescribeTopic",
                        frame(pb.DescribeTopicRequest(name=topic).SerializeToString()))
        assert status_of(answer) == ("0", None), answer
    return checks


# ----- tail across kill -9 -----


def scenario_tail_kill(bootstrap, victim_pid, victim_node, total, targets):
    assert len(targets) >= 2, "tail-kill wants at least two agents"
    victim = targets[0]
    others = Agents(targets[1:])
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    partitions = 3
    others.call("Topics", "CreateTopic", pb.CreateTopicRequest(name=topic, partitions=partitions))
    # The agent killed leads a partition, so produces fail over as well (the
    # placement settles within seconds of the creation).
    deadline = time.monotonic() + 30
    while True:
        leaders = {p.partition: p.leader for p in wait_for_leaders(others, topic).partitions}
        if victim_node in leaders.values() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ids = others.call("Records", "InitProducer", pb.InitProducerRequest())
    acked = {p: [] for p in range(partitions)}  # partition -> [(offset, value)] in production order
    producing_done = threading.Event()
    failures = []
    retries = {"count": 0}

    def produce_all():
        sequences = {p: 0 for p in range(partitions)}
        for start in range(0, total, 5):
            p = (start // 5) % partitions
            records = [make_record(key=f"k{n}".encode(), value=f"r{n}".encode()) for n in range(start, min(start + 5, total))]
            request = pb.ProduceRequest(topic=topic, partition=p, records=records, producer=pb.ProducerSequence(
                producer_id=ids.producer_id, producer_epoch=ids.producer_epoch, sequence=sequences[p]))
            deadline = time.monotonic() + 120
            while True:
                try:
                    answer = others.call("Records", "Produce", request)
                    break
                except grpc.RpcError as error:
                    if not retriable(error) or time.monotonic() > deadline:
                        raise AssertionError(f"produce to {p} at sequence {sequences[p]}: {describe_error(error)}") from None
                    retries["count"] += 1
                    time.sleep(0.2)
            assert [m.partition for m in answer.records] == [p] * len(records), answer
            for record, meta in zip(records, answer.records):
                acked[p].append((meta.offset, record.value))
            sequences[p] += len(records)
            time.sleep(0.01)

    def produce():
        try:
            produce_all()
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        producing_done.set()

    received = []  # (partition, offset, value)
    heartbeats = 0
    connections = []  # (target, records received, how it ended)
    cursor = ""
    killed_at = None
    target = victim
    deadline = time.monotonic() + 180

    def complete():
        return producing_done.is_set() and len(received) >= sum(len(a) for a in acked.values())

    producer_thread = threading.Thread(target=produce)
    producer_thread.start()
    try:
        while time.monotonic() < deadline and not failures:
            channel = grpc.insecure_channel(target)
            call = rpc.RecordsStub(channel).Tail(
                pb.TailRequest(topic=topic, cursor=cursor, start=pb.POSITION_EARLIEST, heartbeat_ms=200),
                timeout=max(1.0, deadline - time.monotonic()))
            before = len(received)
            ended = "complete"
            first = True
            try:
                for event in call:
                    kind = event.WhichOneof("event")
                    if first:
                        assert kind == "heartbeat", f"the first message of a Tail on {target} is not a heartbeat: {event}"
                        first = False
                    if kind == "heartbeat":
                        heartbeats += 1
                        assert event.heartbeat.cursor, event
                        cursor = event.heartbeat.cursor
                        if complete():
                            break
                        continue
                    record = event.record.record
                    assert event.record.cursor, event
                    received.append((record.partition, record.offset, record.value))
                    cursor = event.record.cursor
                    if killed_at is None and len(received) >= total // 3:
                        os.kill(victim_pid, 9)
                        killed_at = len(received)
                    if failures:
                        break
                else:
                    ended = "ended by the server without a status"
            except grpc.RpcError as error:
                ended = describe_error(error)
                if target != victim and not retriable(error):
                    raise AssertionError(f"the Tail on {target} failed: {ended}") from None
            finally:
                call.cancel()
                channel.close()
            connections.append((target, len(received) - before, ended[:160]))
            if ended == "complete":
                break
            # The stream ended (its agent was killed): resume on another agent.
            target = others.next_target()
    finally:
        producer_thread.join()
    if failures:
        raise failures[0]
    for c in connections:
        print(f"connection to {c[0]}: {c[1]} records, ended: {c[2]}")
    assert killed_at is not None, f"the tail never reached {total // 3} records"
    assert connections[0][0] == victim and connections[0][2] != "complete", connections
    assert complete(), f"received {len(received)} of {sum(len(a) for a in acked.values())} acknowledged within the time"
    gaps = duplicates = 0
    for p in range(partitions):
        mine = [(o, v) for q, o, v in received if q == p]
        offsets = [o for o, _ in mine]
        duplicates += len(offsets) - len(set(offsets))
        gaps += len(set(range(len(acked[p]))) - set(offsets))
        assert offsets == list(range(len(offsets))), f"partition {p}: a gap, a duplicate or a reordering: {offsets}"
        assert mine == acked[p], f"partition {p}: the tail and the producer's acknowledgements disagree"
    assert len(received) == total == sum(len(a) for a in acked.values()), (len(received), total)
    print(f"the killed agent (node {victim_node}) led partitions {[p for p, n in leaders.items() if n == victim_node]} "
          f"of leaders {leaders}; produce retries={retries['count']}")
    print(f"OK tail-kill received={len(received)} gaps={gaps} duplicates={duplicates} killed_at={killed_at} "
          f"connections={len(connections)} heartbeats={heartbeats} "
          f"per_partition={[len(acked[p]) for p in range(partitions)]}")


# ----- expected_offset -----


def scenario_expected_offset(bootstrap, node_ids, targets):
    assert len(node_ids) == len(targets), (node_ids, targets)
    agents = Agents(targets)
    topic = f"cas-{uuid.uuid4().hex[:8]}"
    partitions = 3
    agents.call("Topics", "CreateTopic", pb.CreateTopicRequest(name=topic, partitions=partitions))
    leaders = {p.partition: p.leader for p in wait_for_leaders(agents, topic).partitions}
    next_offset = {p: 0 for p in range(partitions)}
    values = {p: [] for p in range(partitions)}
    through = {"leader": 0, "other": 0}
    refused = 0

    def request(p, expected, records, **fields):
        return pb.ProduceRequest(topic=topic, partition=p, records=records, expected_offset=expected, **fields)

    def mismatch(index, p, expected, actual, what, **fields):
        records = [] if "record_batches" in fields else [make_record(value=b"must not be written")]
        error = failed(lambda: agents.call("Records", "Produce", request(p, expected, records, **fields), index=index), what)
        info, trailers = check_error(error, C.FAILED_PRECONDITION, "OFFSET_MISMATCH", what)
        assert trailers.get("next_offset") == str(actual), f"{what}: next_offset {trailers.get('next_offset')!r}, expected {actual}: {describe_error(error)}"
        assert info.metadata.get("next_offset") == str(actual), f"{what}: ErrorInfo next_offset: {describe_error(error)}"

    for round_ in range(2):
        for p in range(partitions):
            # Every agent, so the partition's leader and two that forward.
            for index in range(len(targets)):
                what = f"partition {p} through agent {index} (node {node_ids[index]}, leader {leaders[p]})"
                for wrong in (next_offset[p] + 1, next_offset[p] + 1000, next_offset[p] - 1):
                    if wrong < 0:
                        continue
                    mismatch(index, p, wrong, next_offset[p], f"{what}: expected_offset {wrong}")
                    refused += 1
                records = [make_record(value=f"p{p} r{round_} a{index} {j}".encode()) for j in range(2)]
                answer = agents.call_retrying("Records", "Produce", request(p, next_offset[p], records), index=index)
                assert [(m.partition, m.offset) for m in answer.records] == \
                       [(p, next_offset[p]), (p, next_offset[p] + 1)], (what, answer)
                values[p].extend(r.value for r in records)
                next_offset[p] += 2
                through["leader" if leaders[p] == node_ids[index] else "other"] += 1
    # With record batches too.
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(3):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=None, value=f"batch {i}".encode(), headers=[])
    batch = bytes(builder.build())
    mismatch(agents.next_index(), 0, next_offset[0] + 3, next_offset[0], "record_batches at a wrong offset",
             record_batches=batch)
    refused += 1
    answer = agents.call_retrying("Records", "Produce", pb.ProduceRequest(
        topic=topic, partition=0, record_batches=batch, expected_offset=next_offset[0]))
    assert [(m.partition, m.offset) for m in answer.records] == [(0, next_offset[0])], answer
    values[0].extend(f"batch {i}".encode() for i in range(3))
    next_offset[0] += 3
    # Racing: one produce per agent at the same expected offset, at once:
    # exactly one is written, the others are told the new next offset.
    races = 0
    for p in range(partitions):
        for race in range(3):
            results = [None] * len(targets)
            barrier = threading.Barrier(len(targets))

            def contend(index, p=p, race=race, results=results, barrier=barrier):
                records = [make_record(value=f"race {p}.{race} by {index} #{j}".encode()) for j in range(3)]
                barrier.wait()
                try:
                    results[index] = ("ok", agents.call("Records", "Produce", request(p, next_offset[p], records), index=index),
                                      records)
                except grpc.RpcError as error:
                    results[index] = ("error", error, records)

            threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(targets))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            winners = [r for r in results if r[0] == "ok"]
            assert len(winners) == 1, (
                f"partition {p}, race {race}: {len(winners)} produces at expected_offset {next_offset[p]} succeeded: "
                + "; ".join(describe_error(r[1]) if r[0] == "error" else str([m.offset for m in r[1].records]) for r in results))
            assert [m.offset for m in winners[0][1].records] == [next_offset[p] + j for j in range(3)], winners[0][1]
            for r in results:
                if r[0] == "error":
                    info, trailers = check_error(r[1], C.FAILED_PRECONDITION, "OFFSET_MISMATCH", f"partition {p}, race {race}")
                    assert trailers.get("next_offset") == info.metadata.get("next_offset") == str(next_offset[p] + 3), \
                        (describe_error(r[1]), next_offset[p] + 3)
            values[p].extend(r.value for r in winners[0][2])
            next_offset[p] += 3
            races += 1
    # Nothing refused was written: each partition holds exactly what succeeded.
    for p in range(partitions):
        stored, _ = read_all(agents, topic, p, 0, next_offset[p])
        assert [r.value for r in stored] == values[p], (p, [r.value for r in stored], values[p])
        described = agents.call("Topics", "DescribeTopic", pb.DescribeTopicRequest(name=topic))
        assert described.partitions[p].high_watermark == next_offset[p], (described, next_offset)
    assert through["other"] >= 2 * partitions, through
    agents.close()
    print(f"OK expected-offset written={sum(next_offset.values())} refused={refused} races={races} "
          f"through_leader={through['leader']} through_non_leader={through['other']}")


class GroupLedger:
    """Every delivery of every member, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = {}  # (partition, offset) -> [member names]
        self.owned = {}  # member -> set of partitions

    def delivered(self, member, partition, offset):
        with self.lock:
            self.deliveries.setdefault((partition, offset), []).append(member)

    def own(self, member, partitions):
        with self.lock:
            self.owned[member] = set(partitions)

    def snapshot(self):
        with self.lock:
            return dict(self.deliveries), {m: set(p) for m, p in self.owned.items()}


def grpc_poll_member(agents, group, topic, ledger, stop, name="poll"):
    """A member polling over gRPC, each call at the next agent; commits on
    every poll (auto_commit); at `stop` it commits its cursor and leaves."""
    joined = agents.call_retrying("Groups", "Join", pb.JoinRequest(group=group, topics=[topic], session_timeout_ms=10_000))
    member, epoch, cursor = joined.member_id, joined.member_epoch, joined.cursor
    ledger.own(name, [tp.partition for tp in joined.assignment])
    while not stop.is_set():
        answer = agents.call_retrying("Groups", "Poll", pb.PollRequest(
            group=group, member_id=member, member_epoch=epoch, cursor=cursor,
            max_records=50, wait_ms=200, auto_commit=True))
        epoch, cursor = answer.member_epoch, answer.cursor
        ledger.own(name, [tp.partition for tp in answer.assignment])
        for r in answer.records:
            assert r.topic == topic, r
            ledger.delivered(name, r.record.partition, r.record.offset)
    agents.call_retrying("Groups", "Commit", pb.CommitRequest(group=group, member_id=member, member_epoch=epoch, cursor=cursor))
    agents.call_retrying("Groups", "Leave", pb.LeaveRequest(group=group, member_id=member))
    ledger.own(name, [])


def http_poll_member(targets, group, topic, ledger, stop, name="http"):
    """A member of the HTTP API, each call at the next agent."""
    turn = itertools.cycle(targets)

    def post(path, body):
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.post(f"http://{next(turn)}{path}", json=body, timeout=30)
                if answer.status_code != 503:
                    return answer
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: no answer")
            time.sleep(0.2)

    joined = post(f"/v1/groups/{group}/members", {"topics": [topic], "session_timeout_ms": 10_000})
    assert joined.status_code == 201, joined.text
    joined = joined.json()
    member, epoch, cursor = joined["member_id"], joined["member_epoch"], joined["cursor"]
    while not stop.is_set():
        answer = post(f"/v1/groups/{group}/members/{member}/poll",
                      {"member_epoch": epoch, "cursor": cursor, "max_records": 50, "wait_ms": 200, "auto_commit": True})
        assert answer.status_code == 200, answer.text
        answer = answer.json()
        epoch, cursor = answer["member_epoch"], answer["cursor"]
        ledger.own(name, [tp["partition"] for tp in answer["assignment"]])
        for r in answer["records"]:
            ledger.delivered(name, r["partition"], r["offset"])


def subscribe_member(target, group, topic, ledger, stop, name="subscribe"):
    """A gRPC `Subscribe` stream at one agent, asking for 20 records at a
    time (auto-commit: records count as processed once more are asked for)."""
    channel = grpc.insecure_channel(target)
    requests_queue = queue.Queue()

    def outgoing():
        yield pb.SubscribeRequest(start=pb.SubscribeStart(
            join=pb.JoinRequest(group=group, topics=[topic], session_timeout_ms=10_000),
            auto_commit=True, credits=20))
        while True:
            item = requests_queue.get()
            if item is None:
                return
            yield item

    stream = rpc.GroupsStub(channel).Subscribe(outgoing())
    credits = 20
    try:
        for event in stream:
            kind = event.WhichOneof("event")
            if kind == "member":
                ledger.own(name, [tp.partition for tp in event.member.assignment])
            elif kind == "record":
                ledger.delivered(name, event.record.record.record.partition, event.record.record.record.offset)
                credits -= 1
                if credits == 0:
                    credits = 20
                    requests_queue.put(pb.SubscribeRequest(credits=20))
            if stop.is_set():
                break
    finally:
        requests_queue.put(None)
        stream.cancel()
        channel.close()


def kafka_member(bootstrap, group, topic, ledger, stop, name="kafka"):
    """confluent-kafka with the server-side protocol; commits what it
    consumed on every revocation and every 20 records."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    positions = {}

    def commit():
        if positions:
            consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)

    def on_assign(c, parts):
        ledger.own(name, {tp.partition for tp in c.assignment()} | {tp.partition for tp in parts})

    def on_revoke(c, parts):
        gone = {tp.partition for tp in parts}
        commit()
        for p in gone:
            positions.pop(p, None)
        ledger.own(name, {tp.partition for tp in c.assignment()} - gone)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    count = 0
    while not stop.is_set():
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        ledger.delivered(name, message.partition(), message.offset())
        positions[message.partition()] = message.offset() + 1
        count += 1
        if count % 20 == 0:
            commit()
    commit()
    consumer.close()


def scenario_groups(bootstrap, targets):
    agents = Agents(targets)
    topic = f"grpc-groups-{uuid.uuid4().hex[:8]}"
    group = f"mixed-{uuid.uuid4().hex[:8]}"
    partitions = 12
    agents.call_retrying("Topics", "CreateTopic", pb.CreateTopicRequest(name=topic, partitions=partitions))
    wait_for_leaders(agents, topic)
    ledger = GroupLedger()
    stop_poll, stop_rest = threading.Event(), threading.Event()
    members = {
        "poll": threading.Thread(target=grpc_poll_member, args=(agents, group, topic, ledger, stop_poll)),
        "http": threading.Thread(target=http_poll_member, args=(targets, group, topic, ledger, stop_rest)),
        "subscribe": threading.Thread(target=subscribe_member, args=(targets[0], group, topic, ledger, stop_rest)),
        "kafka": threading.Thread(target=kafka_member, args=(bootstrap, group, topic, ledger, stop_rest)),
    }
    failures = []

    def guarded(name, thread):
        target = thread._target
        args = thread._args

        def run():
            try:
                target(*args)
            except Exception as error:  # a member failing fails the scenario
                failures.append(f"{name}: {error!r}")
        return threading.Thread(target=run, daemon=True)

    members = {name: guarded(name, t) for name, t in members.items()}
    for thread in members.values():
        thread.start()

    def settled(names):
        _, owned = ledger.snapshot()
        parts = [owned.get(n, set()) for n in names]
        every = set().union(*parts)
        return every == set(range(partitions)) and sum(len(p) for p in parts) == partitions and all(parts)

    started = time.monotonic()
    while not settled(members.keys()):
        assert not failures, failures
        assert time.monotonic() - started < 90, f"the four members never shared the partitions: {ledger.snapshot()[1]}"
        time.sleep(0.2)
    settle_seconds = time.monotonic() - started

    def produce_batch(start, count):
        records = [make_record(key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(start, start + count)]
        for chunk in range(0, count, 100):
            produce(agents, pb.ProduceRequest(topic=topic, records=records[chunk:chunk + 100]))

    def wait_delivered(total, what):
        deadline = time.monotonic() + 90
        while True:
            assert not failures, failures
            deliveries, _ = ledger.snapshot()
            if len(deliveries) >= total:
                return deliveries
            assert time.monotonic() < deadline, f"{what}: {len(deliveries)} of {total} delivered"
            time.sleep(0.2)

    produce_batch(0, 600)
    deliveries = wait_delivered(600, "first 600")
    time.sleep(1)
    deliveries, owned = ledger.snapshot()
    twice = {k: v for k, v in deliveries.items() if len(v) > 1}
    assert not twice, f"delivered more than once: {list(twice.items())[:5]}"
    by_member = {}
    for names in deliveries.values():
        by_member[names[0]] = by_member.get(names[0], 0) + 1
    assert set(by_member) == set(members), by_member

    # The Poll member commits and leaves: its partitions move to the others.
    stop_poll.set()
    members["poll"].join(timeout=60)
    started = time.monotonic()
    while not settled(["http", "subscribe", "kafka"]):
        assert not failures, failures
        assert time.monotonic() - started < 60, f"the poll member's partitions never moved: {ledger.snapshot()[1]}"
        time.sleep(0.2)
    moved_seconds = time.monotonic() - started
    produce_batch(600, 600)
    wait_delivered(1200, "all 1200")
    time.sleep(1)
    stop_rest.set()
    for thread in members.values():
        thread.join(timeout=60)
    assert not failures, failures
    deliveries, _ = ledger.snapshot()
    assert len(deliveries) == 1200, len(deliveries)
    twice = {k: v for k, v in deliveries.items() if len(v) > 1}
    assert not twice, f"delivered more than once: {list(twice.items())[:5]}"
    agents.close()
    print(f"OK groups delivered={len(deliveries)} per_member={by_member} "
          f"settle_seconds={settle_seconds:.2f} leave_moved_seconds={moved_seconds:.2f}")


def main():
    scenario = sys.argv[1]
    if scenario == "roundtrip":
        scenario_roundtrip(sys.argv[2], sys.argv[3:])
    elif scenario == "bad-input":
        scenario_bad_input(sys.argv[2], sys.argv[3:])
    elif scenario == "tail-kill":
        scenario_tail_kill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])
    elif scenario == "expected-offset":
        scenario_expected_offset(sys.argv[2], [int(n) for n in sys.argv[3].split(",")], sys.argv[4:])
    elif scenario == "groups":
        scenario_groups(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
