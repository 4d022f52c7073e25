"""Checks Fjord's HTTP gateway with clients nobody here wrote: Python `requests`
for HTTP, confluent-kafka (librdkafka) for Kafka, and kafka-python's record
batch builder and murmur2 partitioner.

    python3 http_gateway.py roundtrip <bootstrap> <http base URL> [<http base URL> ...]
    python3 http_gateway.py bad-input <bootstrap> <http base URL> [...]
    python3 http_gateway.py seed <bootstrap> <topic> <partitions> <records> <http base URL> [...]
    python3 http_gateway.py after-kill <bootstrap> <topic> <expected records> <idempotent JSON> <http base URL> [...]

    python3 http_gateway.py sse-kill <bootstrap> <pid of the first agent> <http base URL> [...]

`sse-kill` tails a partition as Server-Sent Events from the first agent while
an idempotent producer writes through the others, kills the first agent
(`kill -9` of the pid given) mid-stream, resumes with `Last-Event-ID` on
another agent, and checks the events cover every acknowledged record once, in
order.

    python3 http_gateway.py sse-term <bootstrap> <pid of the first agent> <http base URL> [...]

`sse-term` tails a partition from the first agent, sends that agent SIGTERM,
checks the stream ends (the agent ends its streams as it starts shutting
down) and resumes on another agent with `Last-Event-ID`: no gap, no
duplicate.

`seed` also produces 5 records to each partition as an idempotent producer and
prints `IDEMPOTENT <JSON>` (producer and offsets); `after-kill` sends those
requests again (a client's retry) and checks they are answered with the same
offsets and stored once.

Every HTTP request goes to the next agent in turn, so no request is served by
the agent that served the one before. Any failed check raises (exit status 1)
with what differed. Prints `OK <scenario> <counts>` at the end.
"""

import base64
import itertools
import json
import os
import sys
import threading
import time
import uuid

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from kafka.partitioner.default import murmur2
from kafka.record.default_records import DefaultRecordBatchBuilder

TIMEOUT = 60


class Agents:
    """Sends each request to the next agent's gateway."""

    def __init__(self, urls):
        self.urls = urls
        self.turn = itertools.cycle(range(len(urls)))
        self.session = requests.Session()

    def next_url(self):
        return self.urls[next(self.turn)]

    def call(self, method, path, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.next_url() + path, **kwargs)

    def call_retrying(self, method, path, **kwargs):
        """Retries 503 answers (leadership moving) for up to a minute."""
        deadline = time.monotonic() + 60
        while True:
            answer = self.call(method, path, **kwargs)
            if answer.status_code != 503 or time.monotonic() > deadline:
                return answer
            assert "Retry-After" in answer.headers, answer.headers
            time.sleep(0.2)


def expect(answer, status, what):
    if answer.status_code != status:
        raise AssertionError(f"{what}: HTTP {answer.status_code}, expected {status}: {answer.text}")
    return answer.json() if answer.content else None


def expect_error(answer, status, code, what):
    body = expect(answer, status, what)
    error = body.get("error")
    assert isinstance(error, dict), f"{what}: no error object in {body}"
    assert error["code"] == code, f"{what}: code {error['code']}, expected {code}: {body}"
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["retriable"], bool), body
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
    return error


def read_all(agents, topic, partition, start, end, **params):
    """Every record of a partition from `start` to `end` (exclusive), reading
    from the returned `next_offset` on, each read at another agent."""
    records = []
    offset = start
    reads = 0
    while offset < end:
        query = {"offset": offset, "max_records": 7, **params}
        body = expect(
            agents.call("GET", f"/v1/topics/{topic}/partitions/{partition}/records", params=query),
            200,
            f"read {topic}/{partition}@{offset}",
        )
        reads += 1
        assert body["next_offset"] > offset or not body["records"], body
        for record in body["records"]:
            assert record["offset"] >= offset, (record, offset)
        records.extend(body["records"])
        if not body["records"]:
            if body["next_offset"] == offset:
                raise AssertionError(f"read {topic}/{partition}@{offset}: nothing, high watermark {body['high_watermark']}")
        offset = body["next_offset"]
    return records, reads


def as_bytes(text, encoding):
    if text is None:
        return None
    return base64.b64decode(text) if encoding == "base64" else text.encode()


def scenario_roundtrip(bootstrap, urls):
    agents = Agents(urls)
    topic = f"http-{uuid.uuid4().hex[:8]}"
    partitions = 6

    # Topics: created on one agent, seen by every other.
    created = expect(
        agents.call("POST", "/v1/topics", json={"name": topic, "partitions": partitions, "configs": {"retention.ms": 86400000}}),
        201,
        "create topic",
    )
    assert created["name"] == topic and len(created["partitions"]) == partitions, created
    assert created["configs"] == {"retention.ms": "86400000"}, created
    for _ in urls:
        described = expect(agents.call("GET", f"/v1/topics/{topic}"), 200, "describe topic")
        assert described["id"] == created["id"], described
        listed = expect(agents.call("GET", "/v1/topics"), 200, "list topics")
        assert any(t["name"] == topic and t["partitions"] == partitions for t in listed["topics"]), listed
    expect_error(agents.call("POST", "/v1/topics", json={"name": topic, "partitions": 1}), 409, "TOPIC_ALREADY_EXISTS", "create twice")

    # Produce over HTTP: keyed records land where Kafka's default partitioner
    # puts them; binary bytes travel as base64; every request at another agent.
    sent = {}  # (partition, offset) -> (key bytes, value bytes, headers, timestamp)
    produced = 0
    for round_ in range(12):
        records = []
        expected_partitions = []
        for i in range(25):
            n = round_ * 25 + i
            key = f"key-{n % 40}".encode()
            value = os.urandom(1 + n % 300) if n % 3 == 0 else f"value {n} é".encode()
            headers = [{"key": "n", "value": base64.b64encode(str(n).encode()).decode()},
                       {"key": "bin", "value": base64.b64encode(bytes([n % 256, 0, 255])).decode()}]
            record = {
                "key": base64.b64encode(key).decode(),
                "value": base64.b64encode(value).decode(),
                "headers": headers,
                "timestamp": 1_700_000_000_000 + n,
            }
            records.append(record)
            expected_partitions.append((murmur2(key) & 0x7FFFFFFF) % partitions)
        answer = expect(
            agents.call_retrying("POST", f"/v1/topics/{topic}/records", json={"records": records, "encoding": "base64"}),
            200,
            "produce JSON",
        )
        assert len(answer["offsets"]) == len(records), answer
        for record, outcome, partition in zip(records, answer["offsets"], expected_partitions):
            assert outcome["partition"] == partition, (outcome, partition, "murmur2 placement")
            assert outcome["timestamp"] == record["timestamp"], outcome
            key = (outcome["partition"], outcome["offset"])
            assert key not in sent, f"offset {key} given twice"
            sent[key] = (
                base64.b64decode(record["key"]),
                base64.b64decode(record["value"]),
                [(h["key"], base64.b64decode(h["value"])) for h in record["headers"]],
                record["timestamp"],
            )
            produced += 1

    # UTF-8 records with no key and no timestamp: one partition per request.
    before = int(time.time() * 1000)
    answer = expect(
        agents.call_retrying("POST", f"/v1/topics/{topic}/records", json={"records": [{"value": f"text {i}"} for i in range(5)]}),
        200,
        "produce keyless",
    )
    after = int(time.time() * 1000)
    keyless_partitions = {o["partition"] for o in answer["offsets"]}
    assert len(keyless_partitions) == 1, answer
    for i, outcome in enumerate(answer["offsets"]):
        assert before - 5000 <= outcome["timestamp"] <= after + 5000, outcome
        sent[(outcome["partition"], outcome["offset"])] = (None, f"text {i}".encode(), [], outcome["timestamp"])
        produced += 1

    # A body of record batches, built by kafka-python, stored as given.
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(10):
        builder.append(i, timestamp=1_800_000_000_000 + i, key=b"batch-key", value=f"batch {i}".encode(),
                       headers=[("via", b"record-batch")])
    batch = bytes(builder.build())
    answer = expect(
        agents.call_retrying("POST", f"/v1/topics/{topic}/partitions/4/records", data=batch,
                             headers={"Content-Type": "application/vnd.kafka.record-batch"}),
        200,
        "produce record batch",
    )
    base = answer["base_offset"]
    for i in range(10):
        sent[(4, base + i)] = (b"batch-key", f"batch {i}".encode(), [("via", b"record-batch")], 1_800_000_000_000 + i)
        produced += 1

    # Kafka clients' records, read over HTTP.
    # murmur2_random: the Java client's partitioner (librdkafka's default is CRC32).
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "partitioner": "murmur2_random"})
    kafka_offsets = {}

    def delivered(error, message):
        assert error is None, error
        kafka_offsets[message.key()] = (message.partition(), message.offset(), message.timestamp()[1])

    for i in range(30):
        producer.produce(topic, key=f"kafka-{i}".encode(), value=f"from kafka {i}".encode(),
                         headers=[("origin", b"librdkafka")], timestamp=1_650_000_000_000 + i,
                         on_delivery=delivered)
    assert producer.flush(TIMEOUT) == 0
    for i in range(30):
        key = f"kafka-{i}".encode()
        partition, offset, timestamp = kafka_offsets[key]
        assert partition == (murmur2(key) & 0x7FFFFFFF) % partitions, "librdkafka and the gateway disagree"
        sent[(partition, offset)] = (key, f"from kafka {i}".encode(), [("origin", b"librdkafka")], timestamp)
        produced += 1

    # Everything reads back byte for byte over HTTP, from every agent in turn.
    reads = 0
    read_back = 0
    described = expect(agents.call("GET", f"/v1/topics/{topic}"), 200, "describe after produce")
    for p in described["partitions"]:
        expected_here = sorted(o for (q, o) in sent if q == p["partition"])
        assert p["high_watermark"] == len(expected_here), (p, len(expected_here))
        assert expected_here == list(range(len(expected_here))), "offsets have gaps"
        records, n = read_all(agents, topic, p["partition"], 0, p["high_watermark"], encoding="base64")
        reads += n
        assert [r["offset"] for r in records] == expected_here, (p, [r["offset"] for r in records])
        for r in records:
            key, value, headers, timestamp = sent[(p["partition"], r["offset"])]
            assert r["encoding"] == "base64", r
            assert as_bytes(r["key"], "base64") == key, (r, key)
            assert as_bytes(r["value"], "base64") == value, (r, value)
            assert [(h["key"], as_bytes(h["value"], "base64")) for h in r["headers"]] == headers, (r, headers)
            assert r["timestamp"] == timestamp, (r, timestamp)
            read_back += 1
    assert read_back == produced, (read_back, produced)

    # The whole topic by cursor, each read at another agent: every record once,
    # each partition in offset order.
    seen = {}
    order = {}
    cursor = None
    topic_reads = 0
    while True:
        params = {"max_records": 37, "encoding": "base64"}
        if cursor:
            params["cursor"] = cursor
        body = expect(agents.call("GET", f"/v1/topics/{topic}/records", params=params), 200, "topic read")
        topic_reads += 1
        for r in body["records"]:
            key = (r["partition"], r["offset"])
            assert key not in seen, f"{key} read twice by cursor"
            seen[key] = (as_bytes(r["key"], "base64"), as_bytes(r["value"], "base64"))
            order.setdefault(r["partition"], []).append(r["offset"])
        cursor = body["cursor"]
        if not body["records"]:
            break
    assert {k: (v[0], v[1]) for k, v in sent.items()} == seen, "the cursor reads differ from what was produced"
    assert all(offsets == sorted(offsets) for offsets in order.values()), order

    # The topic's tail as Server-Sent Events: cut after 100 records, resumed on
    # another agent with Last-Event-ID.
    tailed = []
    last_id = None
    for _ in range(2):
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        with requests.get(agents.next_url() + f"/v1/topics/{topic}/records", params={"encoding": "base64"},
                          headers=headers, stream=True, timeout=(10, 30)) as response:
            assert response.status_code == 200, response.text
            for event, event_id, data in sse_events(response):
                if event is None:
                    continue
                record = json.loads(data)
                tailed.append((record["partition"], record["offset"]))
                last_id = event_id
                if (last_id is not None and len(tailed) == 100) or len(tailed) == len(sent):
                    break
        if len(tailed) == len(sent):
            break
    assert len(tailed) == len(set(tailed)) == len(sent) and set(tailed) == set(sent), (len(tailed), len(sent))

    # ... and through a Kafka consumer, byte for byte, headers and timestamps.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    consumed = {}
    deadline = time.monotonic() + TIMEOUT
    while len(consumed) < produced and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        assert message.error() is None, message.error()
        consumed[(message.partition(), message.offset())] = (
            message.key(), message.value(), [(k, v) for k, v in (message.headers() or [])], message.timestamp()[1])
    consumer.close()
    assert consumed == sent, f"a Kafka consumer read {len(consumed)} records, {sum(consumed.get(k) == v for k, v in sent.items())} equal of {produced}"

    # Reads by timestamp, and a read that waits for a record produced meanwhile.
    by_time = expect(agents.call("GET", f"/v1/topics/{topic}/partitions/4/records",
                                 params={"timestamp": 1_800_000_000_005, "max_records": 1}), 200, "read by timestamp")
    assert [r["value"] for r in by_time["records"]] == ["batch 5"], by_time
    latest = expect(agents.call("GET", f"/v1/topics/{topic}/partitions/5"), 200, "partition 5")["high_watermark"]
    waited = {}

    def wait_for_record():
        waited["answer"] = agents.call("GET", f"/v1/topics/{topic}/partitions/5/records",
                                       params={"offset": latest, "wait_ms": 20000})

    reader = threading.Thread(target=wait_for_record)
    reader.start()
    time.sleep(0.5)
    expect(agents.call_retrying("POST", f"/v1/topics/{topic}/partitions/5/records", json={"records": [{"value": "late"}]}),
           200, "produce while a read waits")
    reader.join()
    body = expect(waited["answer"], 200, "the waiting read")
    assert [r["value"] for r in body["records"]] == ["late"], body

    # An NDJSON stream: a record per line in, an acknowledgement per line out,
    # in order; a bad line ends it after the lines before it were written.
    ndjson_topic = f"{topic}-ndjson"
    expect(agents.call("POST", "/v1/topics", json={"name": ndjson_topic, "partitions": 3}), 201, "create ndjson topic")
    streamed = 3000

    def lines():
        for n in range(streamed):
            yield (json.dumps({"key": f"s{n % 17}", "value": f"streamed {n}"}) + "\n").encode()

    answer = agents.call_retrying("POST", f"/v1/topics/{ndjson_topic}/records", data=lines(),
                                  headers={"Content-Type": "application/x-ndjson"}, stream=True)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/x-ndjson", answer.headers
    acks = [json.loads(line) for line in answer.iter_lines() if line]
    assert len(acks) == streamed and all("error" not in a for a in acks), acks[-3:]
    last = {}
    for n, a in enumerate(acks):
        assert a["partition"] == (murmur2(f"s{n % 17}".encode()) & 0x7FFFFFFF) % 3, a
        assert a["offset"] == last.get(a["partition"], -1) + 1, ("acks out of order", a, last)
        last[a["partition"]] = a["offset"]
    for p, top in last.items():
        records, _ = read_all(agents, ndjson_topic, p, 0, top + 1)
        assert len(records) == top + 1
    bad = agents.call_retrying("POST", f"/v1/topics/{ndjson_topic}/records",
                               data=b'{"value": "fine"}\n{"value": 7}\n{"value": "never"}\n',
                               headers={"Content-Type": "application/x-ndjson"})
    bad_lines = [json.loads(line) for line in bad.text.splitlines() if line]
    assert [("error" in line) for line in bad_lines] == [False, True], bad_lines
    assert bad_lines[1]["error"]["code"] == "BAD_REQUEST", bad_lines

    # An idempotent producer: a retry through another agent is answered with
    # the original offsets and stored once; a gap is refused.
    producer = expect(agents.call("POST", "/v1/producers"), 201, "new producer")
    ids = {"producer_id": producer["producer_id"], "producer_epoch": producer["producer_epoch"]}
    path = f"/v1/topics/{topic}/partitions/3/records"
    body = {"records": [{"value": f"idempotent {i}"} for i in range(4)]}
    first = expect(agents.call_retrying("POST", path, params={**ids, "sequence": 0}, json=body), 200, "idempotent")
    for _ in urls:
        again = expect(agents.call_retrying("POST", path, params={**ids, "sequence": 0}, json=body), 200, "retry")
        offsets = lambda answer: [(o["partition"], o["offset"]) for o in answer["offsets"]]
        assert offsets(again) == offsets(first), (again, first)
    nxt = expect(agents.call_retrying("POST", path, params={**ids, "sequence": 4}, json={"records": [{"value": "next"}]}),
                 200, "next sequence")
    assert nxt["offsets"][0]["offset"] == first["offsets"][-1]["offset"] + 1, (nxt, first)
    expect_error(agents.call("POST", path, params={**ids, "sequence": 9}, json={"records": [{"value": "gap"}]}),
                 409, "OUT_OF_ORDER_SEQUENCE_NUMBER", "a sequence gap")
    stored = expect(agents.call("GET", f"/v1/topics/{topic}/partitions/3"), 200, "partition 3")
    assert stored["high_watermark"] == nxt["offsets"][0]["offset"] + 1, (stored, nxt)
    expect_error(agents.call("POST", f"/v1/topics/{topic}/records", params={**ids, "sequence": 0}, json=body),
                 400, "BAD_REQUEST", "idempotence without a partition")

    # Deleting a topic.
    expect(agents.call("DELETE", f"/v1/topics/{topic}"), 204, "delete topic")
    for _ in urls:
        expect_error(agents.call("GET", f"/v1/topics/{topic}"), 404, "UNKNOWN_TOPIC_OR_PARTITION", "describe deleted")
    print(f"OK roundtrip produced={produced} read_back={read_back} reads={reads} topic_reads={topic_reads} "
          f"tailed={len(tailed)} consumed={len(consumed)}")


def scenario_bad_input(bootstrap, urls):
    agents = Agents(urls)
    topic = f"bad-{uuid.uuid4().hex[:8]}"
    expect(agents.call("POST", "/v1/topics", json={"name": topic, "partitions": 2}), 201, "create")
    good = expect(agents.call_retrying("POST", f"/v1/topics/{topic}/partitions/0/records",
                                       json={"records": [{"key": "k", "value": "kept"}]}), 200, "good produce")
    checks = 0

    def refused(method, path, status, code, what, **kwargs):
        nonlocal checks
        expect_error(agents.call(method, path, **kwargs), status, code, what)
        checks += 1

    records = f"/v1/topics/{topic}/records"
    refused("POST", records, 400, "BAD_REQUEST", "not JSON", data=b"{not json", headers={"Content-Type": "application/json"})
    refused("POST", records, 400, "BAD_REQUEST", "value a number", json={"records": [{"value": 5}]})
    refused("POST", records, 400, "BAD_REQUEST", "records not a list", json={"records": {"value": "x"}})
    refused("POST", records, 400, "BAD_REQUEST", "unknown field", json={"records": [{"valu": "x"}]})
    refused("POST", records, 400, "BAD_REQUEST", "no records", json={"records": []})
    refused("POST", records, 400, "BAD_REQUEST", "bad base64", json={"records": [{"value": "%%%"}], "encoding": "base64"})
    refused("POST", records, 400, "BAD_REQUEST", "bad encoding", json={"records": [{"value": "x"}], "encoding": "rot13"})
    refused("POST", records, 400, "BAD_REQUEST", "partition a string", json={"records": [{"value": "x", "partition": "0"}]})
    refused("POST", records, 404, "UNKNOWN_TOPIC_OR_PARTITION", "partition out of range", json={"records": [{"value": "x", "partition": 2}]})
    refused("POST", records, 400, "INVALID_TIMESTAMP", "negative timestamp", json={"records": [{"value": "x", "timestamp": -5}]})
    refused("POST", records, 400, "INVALID_REQUIRED_ACKS", "acks=2", params={"acks": "2"}, json={"records": [{"value": "x"}]})
    refused("POST", records, 400, "BAD_REQUEST", "timeout_ms a word", params={"timeout_ms": "soon"}, json={"records": [{"value": "x"}]})
    refused("POST", records, 415, "UNSUPPORTED_MEDIA_TYPE", "text body", data=b"x", headers={"Content-Type": "text/plain"})
    refused("POST", "/v1/topics/no-such-topic/records", 404, "UNKNOWN_TOPIC_OR_PARTITION", "unknown topic", json={"records": [{"value": "x"}]})
    refused("POST", f"/v1/topics/{topic}/partitions/0/records", 400, "BAD_REQUEST", "another partition in the body",
            json={"records": [{"value": "x", "partition": 1}]})
    refused("POST", f"/v1/topics/{topic}/partitions/x/records", 400, "BAD_REQUEST", "partition not a number", json={"records": [{"value": "x"}]})
    refused("POST", f"/v1/topics/{topic}/partitions/0/records", 400, "BAD_REQUEST", "empty batch body",
            data=b"", headers={"Content-Type": "application/vnd.kafka.record-batch"})
    # A record batch with a bad CRC, and one cut short: refused, nothing stored.
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=1, key=b"k", value=b"damaged", headers=[])
    batch = bytearray(builder.build())
    batch[-1] ^= 0xFF
    refused("POST", f"/v1/topics/{topic}/partitions/0/records", 400, "CORRUPT_MESSAGE", "bad CRC",
            data=bytes(batch), headers={"Content-Type": "application/vnd.kafka.record-batch"})
    refused("POST", f"/v1/topics/{topic}/partitions/0/records", 400, "CORRUPT_MESSAGE", "truncated batch",
            data=bytes(batch[:30]), headers={"Content-Type": "application/vnd.kafka.record-batch"})
    # Too large: refused before it is read (declared length) and while it is (chunked).
    big = b'{"records":[{"value":"' + b"x" * (int(os.environ.get("FJORD_TEST_HTTP_MAX_BODY", "1048576")) + 10) + b'"}]}'
    refused("POST", records, 413, "PAYLOAD_TOO_LARGE", "a large body", data=big, headers={"Content-Type": "application/json"})
    refused("POST", records, 413, "PAYLOAD_TOO_LARGE", "a large chunked body",
            data=(big[i:i + 65536] for i in range(0, len(big), 65536)), headers={"Content-Type": "application/json"})
    # Reads.
    read = f"/v1/topics/{topic}/partitions/0/records"
    refused("GET", read, 416, "OFFSET_OUT_OF_RANGE", "offset past the end", params={"offset": 1000})
    refused("GET", read, 400, "BAD_REQUEST", "offset a word", params={"offset": "soon"})
    refused("GET", read, 400, "BAD_REQUEST", "negative offset", params={"offset": -1})
    refused("GET", read, 400, "BAD_REQUEST", "offset and timestamp", params={"offset": 0, "timestamp": 5})
    refused("GET", read, 400, "BAD_REQUEST", "unknown parameter", params={"ofset": 0})
    refused("GET", f"/v1/topics/{topic}/records", 400, "BAD_REQUEST", "a forged cursor", params={"cursor": "djE6MD0tMQ"})
    refused("GET", f"/v1/topics/{topic}/records", 400, "BAD_REQUEST", "a garbage cursor", params={"cursor": "!!"})
    refused("GET", f"/v1/topics/{topic}/records", 400, "BAD_REQUEST", "a bad Last-Event-ID",
            headers={"Accept": "text/event-stream", "Last-Event-ID": "x"})
    refused("GET", "/v1/topics/no-such-topic/records", 404, "UNKNOWN_TOPIC_OR_PARTITION", "tail of an unknown topic",
            headers={"Accept": "text/event-stream"})
    refused("GET", f"/v1/topics/{topic}/partitions/0/records", 400, "BAD_REQUEST", "a bad partition Last-Event-ID",
            headers={"Accept": "text/event-stream", "Last-Event-ID": "-4"})
    refused("GET", f"/v1/topics/{topic}/partitions/7/records", 404, "UNKNOWN_TOPIC_OR_PARTITION", "no such partition")
    refused("GET", f"/v1/topics/{topic}/partitions/-1/records", 400, "BAD_REQUEST", "negative partition")
    # A tail resumed past the end: the stream starts, then one error event
    # with the status a plain read would have had, and it ends.
    with requests.get(urls[0] + read, headers={"Accept": "text/event-stream", "Last-Event-ID": "1000"},
                      stream=True, timeout=(10, 30)) as response:
        assert response.status_code == 200, response.text
        events = [(e, d) for e, _, d in sse_events(response) if e is not None]
    assert len(events) == 1 and events[0][0] == "error", events
    ended = json.loads(events[0][1])
    assert ended["status"] == 416 and ended["error"]["code"] == "OFFSET_OUT_OF_RANGE", ended
    checks += 1
    # Topics.
    refused("POST", "/v1/topics", 400, "INVALID_PARTITIONS", "zero partitions", json={"name": "zero", "partitions": 0})
    refused("POST", "/v1/topics", 400, "INVALID_CONFIG", "unknown config", json={"name": "cfg", "configs": {"no.such": 1}})
    refused("POST", "/v1/topics", 400, "INVALID_CONFIG", "bad config value", json={"name": "cfg", "configs": {"retention.ms": "soon"}})
    refused("POST", "/v1/topics", 400, "INVALID_TOPIC_EXCEPTION", "bad name", json={"name": "a/b"})
    refused("POST", "/v1/topics", 400, "BAD_REQUEST", "name missing", json={"partitions": 1})
    refused("POST", "/v1/topics", 400, "BAD_REQUEST", "config an object", json={"name": "cfg", "configs": {"retention.ms": {}}})
    refused("DELETE", "/v1/topics/no-such-topic", 404, "UNKNOWN_TOPIC_OR_PARTITION", "delete unknown")
    # Routes.
    refused("GET", "/v1/nothing-here", 404, "NOT_FOUND", "unknown route")
    refused("PUT", records, 405, "METHOD_NOT_ALLOWED", "wrong method")
    # HTTP/1.1 garbage on the socket does not take the agent down.
    import socket
    host, port = urls[0].removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
        raw.recv(1024)
    # Nothing refused was stored, and what was stored is intact.
    after = expect(agents.call("GET", read, params={"offset": 0}), 200, "read after refusals")
    assert [(r["offset"], r["key"], r["value"]) for r in after["records"]] == [(good["offsets"][0]["offset"], "k", "kept")], after
    assert after["high_watermark"] == 1, after
    for url in urls:
        assert requests.get(url + "/healthz", timeout=TIMEOUT).status_code == 200
        assert requests.get(url + "/readyz", timeout=TIMEOUT).status_code == 200
    doc = expect(agents.call("GET", "/v1/openapi.json"), 200, "openapi")
    assert doc["openapi"].startswith("3."), doc.get("openapi")
    print(f"OK bad-input checks={checks}")


def scenario_expected_offset(bootstrap, urls):
    """`expected_offset` through every agent, leader or not: the right one is
    written at exactly that offset; a wrong one is 412 with the partition's
    next offset, and nothing is written. Concurrent writers racing for the
    same offset: exactly one wins each offset."""
    agents = Agents(urls)
    topic = f"cas-{uuid.uuid4().hex[:8]}"
    expect(agents.call("POST", "/v1/topics", json={"name": topic, "partitions": 2}), 201, "create")
    path = f"/v1/topics/{topic}/partitions/1/records"
    leaders = set()
    next_offset = 0
    for round_ in range(2):
        for url in urls:
            described = expect(requests.get(f"{url}/v1/topics/{topic}/partitions/1", timeout=TIMEOUT), 200, "describe")
            leaders.add(described["leader"])
            body = {"records": [{"value": f"v{next_offset}"}, {"value": f"v{next_offset + 1}"}]}
            # Behind: refused, nothing written.
            if next_offset > 0:
                error = expect_error(
                    requests.post(f"{url}{path}", params={"expected_offset": next_offset - 1}, json=body, timeout=TIMEOUT),
                    412, "OFFSET_MISMATCH", "stale expected_offset")
                assert error["next_offset"] == next_offset, error
                assert error["retriable"] is False, error
            # Ahead: refused too.
            error = expect_error(
                requests.post(f"{url}{path}", params={"expected_offset": next_offset + 5}, json=body, timeout=TIMEOUT),
                412, "OFFSET_MISMATCH", "future expected_offset")
            assert error["next_offset"] == next_offset, error
            # Right: written there.
            answer = expect(
                requests.post(f"{url}{path}", params={"expected_offset": next_offset}, json=body, timeout=TIMEOUT),
                200, f"expected_offset={next_offset} via {url}")
            assert [o["offset"] for o in answer["offsets"]] == [next_offset, next_offset + 1], answer
            next_offset += 2
    # A record batch body takes the precondition too.
    batch = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                      producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    batch.append(0, timestamp=1_700_000_000_000, key=None, value=b"batch", headers=[])
    raw = bytes(batch.build())
    for url in urls:
        error = expect_error(
            requests.post(f"{url}{path}", params={"expected_offset": 0}, data=raw,
                          headers={"Content-Type": "application/vnd.kafka.record-batch"}, timeout=TIMEOUT),
            412, "OFFSET_MISMATCH", "record batch, stale")
        assert error["next_offset"] == next_offset, error
    answer = expect(
        agents.call("POST", path, params={"expected_offset": next_offset}, data=raw,
                    headers={"Content-Type": "application/vnd.kafka.record-batch"}),
        200, "record batch at its offset")
    assert answer["base_offset"] == next_offset, answer
    next_offset += 1
    # Writers racing through different agents: each offset is won once.
    wins = []
    losses = []

    def writer(url, name):
        for _ in range(10):
            expected = expect(requests.get(f"{url}/v1/topics/{topic}/partitions/1", timeout=TIMEOUT), 200, "hw")["high_watermark"]
            answer = requests.post(f"{url}{path}", params={"expected_offset": expected},
                                   json={"records": [{"value": name}]}, timeout=TIMEOUT)
            if answer.status_code == 200:
                wins.append((answer.json()["offsets"][0]["offset"], name))
            else:
                expect_error(answer, 412, "OFFSET_MISMATCH", "race")
                losses.append(name)
    threads = [threading.Thread(target=writer, args=(url, f"w{i}")) for i, url in enumerate(urls * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won_offsets = sorted(o for o, _ in wins)
    assert len(won_offsets) == len(set(won_offsets)), f"an offset won twice: {wins}"
    end = next_offset + len(wins)
    records, _ = read_all(agents, topic, 1, 0, end)
    assert len(records) == end, (len(records), end)
    by_offset = {r["offset"]: r["value"] for r in records}
    for offset, name in wins:
        assert by_offset[offset] == name, (offset, name, by_offset[offset])
    # Nothing else was written: the high watermark is exactly the winners' end.
    hw = expect(agents.call("GET", f"/v1/topics/{topic}/partitions/1"), 200, "final")["high_watermark"]
    assert hw == end, (hw, end)
    # Without a partition, expected_offset is refused.
    expect_error(agents.call("POST", f"/v1/topics/{topic}/records", params={"expected_offset": 0},
                             json={"records": [{"value": "x"}]}), 400, "BAD_REQUEST", "topic-level expected_offset")
    print(f"OK expected-offset written={next_offset} race_wins={len(wins)} race_losses={len(losses)} "
          f"leaders_seen={sorted(leaders)}")


def idempotent_records(partition):
    return {"records": [{"key": f"idem-{partition}-{i}", "value": f"once {i}"} for i in range(5)]}


def scenario_seed(bootstrap, topic, partitions, count, urls):
    """Creates `topic` and produces `count` records over HTTP, 10 per request,
    then 5 per partition as an idempotent producer."""
    agents = Agents(urls)
    expect(agents.call("POST", "/v1/topics", json={"name": topic, "partitions": partitions}), 201, "create")
    for start in range(0, count, 10):
        records = [{"key": f"k{n}", "value": f"v{n}"} for n in range(start, min(start + 10, count))]
        expect(agents.call_retrying("POST", f"/v1/topics/{topic}/records", json={"records": records}), 200, "produce")
    producer = expect(agents.call("POST", "/v1/producers"), 201, "new producer")
    offsets = {}
    for p in range(partitions):
        params = {"producer_id": producer["producer_id"], "producer_epoch": producer["producer_epoch"], "sequence": 0}
        answer = expect(agents.call_retrying("POST", f"/v1/topics/{topic}/partitions/{p}/records", params=params,
                                             json=idempotent_records(p)), 200, "idempotent produce")
        offsets[p] = [o["offset"] for o in answer["offsets"]]
    print(f"IDEMPOTENT {json.dumps({'producer': producer, 'offsets': offsets})}")
    print(f"OK seed records={count + 5 * partitions}")


def scenario_after_kill(bootstrap, topic, expected, idempotent, urls):
    """After an agent died: every record is read back through the survivors,
    the idempotent producer's retries are recognised by the new leaders, and
    produces to every partition succeed (once leadership moved)."""
    agents = Agents(urls)
    idempotent = json.loads(idempotent)
    producer = idempotent["producer"]
    retried = 0
    for p, offsets in idempotent["offsets"].items():
        params = {"producer_id": producer["producer_id"], "producer_epoch": producer["producer_epoch"], "sequence": 0}
        answer = expect(agents.call_retrying("POST", f"/v1/topics/{topic}/partitions/{p}/records", params=params,
                                             json=idempotent_records(int(p))), 200, "idempotent retry")
        assert [o["offset"] for o in answer["offsets"]] == offsets, (answer, offsets)
        retried += len(offsets)
    described = expect(agents.call_retrying("GET", f"/v1/topics/{topic}"), 200, "describe")
    total = 0
    for p in described["partitions"]:
        records, _ = read_all(agents, topic, p["partition"], 0, p["high_watermark"])
        total += len(records)
        once = [r for r in records if (r["key"] or "").startswith("idem-")]
        assert len(once) == 5, (p, once)
    assert total == expected, (total, expected)
    for p in described["partitions"]:
        expect(agents.call_retrying("POST", f"/v1/topics/{topic}/partitions/{p['partition']}/records",
                                    json={"records": [{"value": "after the kill"}]}), 200, f"produce to {p['partition']}")
    print(f"OK after-kill read={total} retried={retried} partitions={len(described['partitions'])}")


def sse_events(response):
    """Server-Sent Events from a streaming `requests` response: (event, id,
    data) for each dispatched event, and (None, None, text) for a comment."""
    event, event_id, data = None, None, []
    for line in response.iter_lines(chunk_size=None, decode_unicode=True):
        if line == "":
            if data or event:
                yield event or "message", event_id, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            yield None, None, line[1:].strip()
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "id":
            event_id = value
        elif field == "data":
            data.append(value)


def scenario_sse_kill(bootstrap, victim_pid, urls):
    agents = Agents(urls[1:])
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    expect(agents.call("POST", "/v1/topics", json={"name": topic, "partitions": 1}), 201, "create")
    producer = expect(agents.call("POST", "/v1/producers"), 201, "new producer")
    total = 400
    acked = {}  # offset -> value
    producing_done = threading.Event()
    failures = []

    def produce():
        try:
            produce_all()
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        producing_done.set()

    def produce_all():
        sequence = 0
        for start in range(0, total, 5):
            records = [{"value": f"r{n}"} for n in range(start, start + 5)]
            params = {"producer_id": producer["producer_id"], "producer_epoch": producer["producer_epoch"],
                      "sequence": sequence}
            answer = expect(agents.call_retrying("POST", f"/v1/topics/{topic}/partitions/0/records", params=params,
                                                 json={"records": records}), 200, "produce")
            for record, outcome in zip(records, answer["offsets"]):
                acked[outcome["offset"]] = record["value"]
            sequence += 5
            time.sleep(0.01)

    producer_thread = threading.Thread(target=produce)
    producer_thread.start()
    received = []  # (offset, value)
    heartbeats = []
    last_id = None
    connections = 0
    killed = False
    url = urls[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        connections += 1
        try:
            with requests.get(f"{url}/v1/topics/{topic}/partitions/0/records", params={"heartbeat_ms": 200},
                              headers=headers, stream=True, timeout=(10, 30)) as response:
                if response.status_code != 200:
                    raise AssertionError(f"tail: HTTP {response.status_code}: {response.text}")
                assert response.headers["Content-Type"].startswith("text/event-stream"), response.headers
                for event, event_id, data in sse_events(response):
                    if failures or time.monotonic() > deadline:
                        break
                    if event is None:
                        heartbeats.append(data)
                        if producing_done.is_set() and len(received) >= len(acked):
                            break
                        continue
                    assert event == "record", (event, data)
                    record = json.loads(data)
                    assert int(event_id) == record["offset"] + 1, (event_id, record)
                    received.append((record["offset"], record["value"]))
                    last_id = event_id
                    if not killed and len(received) >= 100:
                        os.kill(victim_pid, 9)
                        killed = True
                    if producing_done.is_set() and len(received) >= len(acked) and heartbeats:
                        break
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
            pass
        if producing_done.is_set() and len(received) >= len(acked) and heartbeats:
            break
        if failures:
            raise failures[0]
        # The killed agent's stream ended: resume on the next agent.
        url = agents.next_url()
    producer_thread.join()
    if failures:
        raise failures[0]
    assert killed, "the tail never reached 100 records"
    offsets = [o for o, _ in received]
    assert len(offsets) == len(set(offsets)), f"duplicates: {len(offsets) - len(set(offsets))}"
    assert offsets == list(range(len(offsets))), "a gap or a reordering in the tail"
    assert len(received) == len(acked) == total, (len(received), len(acked))
    assert dict(received) == acked, "the tail and the producer's acknowledgements disagree"
    assert "heartbeat" in heartbeats, heartbeats
    print(f"OK sse-kill received={len(received)} connections={connections} heartbeats={len(heartbeats)}")


def scenario_sse_term(bootstrap, pid, urls):
    agents = Agents(urls[1:])
    topic = f"term-{uuid.uuid4().hex[:8]}"
    expect(agents.call("POST", "/v1/topics", json={"name": topic, "partitions": 1}), 201, "create")
    path = f"/v1/topics/{topic}/partitions/0/records"
    for start in range(0, 50, 10):
        expect(agents.call_retrying("POST", path, json={"records": [{"value": f"r{n}"} for n in range(start, start + 10)]}),
               200, "produce")
    received = []
    last_id = None
    ended_cleanly = False
    started = time.monotonic()
    try:
        with requests.get(urls[0] + path, params={"heartbeat_ms": 500}, headers={"Accept": "text/event-stream"},
                          stream=True, timeout=(10, 60)) as response:
            assert response.status_code == 200, response.text
            for event, event_id, data in sse_events(response):
                if event is None:
                    continue
                received.append(json.loads(data)["value"])
                last_id = event_id
                if len(received) == 50:
                    os.kill(pid, 15)
            ended_cleanly = True
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
        pass
    ended_after = time.monotonic() - started
    assert len(received) == 50, len(received)
    # Resumed elsewhere: what was produced meanwhile, once.
    for start in range(50, 60, 5):
        expect(agents.call_retrying("POST", path, json={"records": [{"value": f"r{n}"} for n in range(start, start + 5)]}),
               200, "produce after the SIGTERM")
    with requests.get(agents.next_url() + path, headers={"Accept": "text/event-stream", "Last-Event-ID": last_id},
                      stream=True, timeout=(10, 60)) as response:
        for event, event_id, data in sse_events(response):
            if event is None:
                continue
            received.append(json.loads(data)["value"])
            if len(received) == 60:
                break
    assert received == [f"r{n}" for n in range(60)], received
    print(f"OK sse-term received={len(received)} ended_cleanly={ended_cleanly} ended_after_s={ended_after:.1f}")


def main():
    scenario = sys.argv[1]
    if scenario == "roundtrip":
        scenario_roundtrip(sys.argv[2], sys.argv[3:])
    elif scenario == "expected-offset":
        scenario_expected_offset(sys.argv[2], sys.argv[3:])
    elif scenario == "bad-input":
        scenario_bad_input(sys.argv[2], sys.argv[3:])
    elif scenario == "sse-term":
        scenario_sse_term(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    elif scenario == "sse-kill":
        scenario_sse_kill(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    elif scenario == "seed":
        scenario_seed(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])
    elif scenario == "after-kill":
        scenario_after_kill(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6:])
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
