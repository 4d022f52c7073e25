"""Checks Fjord's compatibility with Confluent's REST Proxy (API v2 and v3)
with clients nobody here wrote: Python `requests` and `http.client` for HTTP,
confluent-kafka (librdkafka) to read back what was produced, kafka-python's
murmur2 partitioner for where keyed records must go.

    python3 rest_proxy.py v3 <bootstrap> <http base URL> [<http base URL> ...]
    python3 rest_proxy.py v2-flow <bootstrap> <http base URL> [...]
    python3 rest_proxy.py kill <bootstrap> <pid of the first agent> <its node id> <http base URL> [...]
    python3 rest_proxy.py session-lapse <bootstrap> <http base URL> [...]
    python3 rest_proxy.py errors <bootstrap> <http base URL> [...]

- `v3`: clusters, topics, partitions, configs and consumer groups; records
  produced unary, streamed (a chunked body, each record answered before the
  next is sent) and as a batch, with the BINARY, JSON and STRING types, read
  back by confluent-kafka byte for byte.
- `v2-flow`: v2 produce (binary and json); three consumer instances of one
  group on a 12-partition topic consume every record exactly once, then
  commit, look up committed offsets, seek, and are deleted.
- `kill`: the same consumption while the first agent is killed (`kill -9` of
  the pid given) part way, with the group's coordinator on it when a group
  name that lands there comes up: no call is ever answered "consumer instance
  not found", and every record is consumed (a read whose answer was lost is
  recovered from the committed offsets, so records may come twice).
- `session-lapse`: an instance that stops reading loses its partitions to the
  other within its session timeout, while its URL still answers; when it reads
  again it rejoins and gets partitions back.
- `errors`: Confluent's error codes and content types (40401, 40402, 40403,
  40601, 40902, 40903, 42201, 42204, 40002, 406, 415, 422), and an instance
  deleted once unused for its `consumer.instance.timeout.ms`.

Every HTTP request goes to the next agent in turn, including the calls of a
consumer instance, whose `base_uri` names the agent that created it. Any
failed check raises (exit status 1) with what differed. Prints
`OK <scenario> <counts>` at the end.
"""

import base64
import http.client
import itertools
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.parse
import uuid

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka.partitioner.default import murmur2

TIMEOUT = 60
V2 = "application/vnd.kafka.v2+json"
V2_BINARY = "application/vnd.kafka.binary.v2+json"
V2_JSON = "application/vnd.kafka.json.v2+json"
JSON = "application/json"


class Agents:
    """Sends each request to the next agent's gateway; an agent that does not
    answer (killed) is skipped, and the request goes to the next."""

    def __init__(self, urls):
        self.urls = list(urls)
        self.turn = itertools.cycle(range(len(urls)))
        self.session = requests.Session()
        self.dead = set()
        self.connection_errors = 0

    def next_url(self):
        for _ in range(len(self.urls)):
            url = self.urls[next(self.turn)]
            if url not in self.dead:
                return url
        raise AssertionError("no agent answers")

    def call(self, method, path, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        while True:
            url = self.next_url()
            try:
                return self.session.request(method, url + path, **kwargs)
            except requests.ConnectionError:
                self.connection_errors += 1
                self.dead.add(url)
                self.session = requests.Session()

    def call_retrying(self, method, path, **kwargs):
        """Retries answers of a retriable Kafka error (50003, leadership or a
        coordinator moving) for up to a minute."""
        deadline = time.monotonic() + 60
        while True:
            answer = self.call(method, path, **kwargs)
            if answer.status_code < 500 or time.monotonic() > deadline:
                return answer
            body = answer.json() if answer.content else {}
            if body.get("error_code") != 50003:
                return answer
            time.sleep(0.2)


def expect(answer, status, what, content_type=None):
    if answer.status_code != status:
        raise AssertionError(f"{what}: HTTP {answer.status_code}, expected {status}: {answer.text}")
    if content_type is not None:
        got = answer.headers.get("Content-Type", "")
        assert got.split(";")[0] == content_type, f"{what}: content type {got!r}, expected {content_type}"
    return answer.json() if answer.content else None


def expect_error(answer, status, code, what, content_type):
    """A Confluent error body: `{"error_code": code, "message": ...}`."""
    body = expect(answer, status, what, content_type)
    assert body.get("error_code") == code, f"{what}: error_code {body.get('error_code')}, expected {code}: {body}"
    assert isinstance(body.get("message"), str) and body["message"], f"{what}: {body}"
    return body


def b64(data):
    return base64.b64encode(data).decode()


def partition_of(key, partitions):
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def concatenated(text):
    """The JSON values written one after another in `text`."""
    decoder = json.JSONDecoder()
    values, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return values
        value, at = decoder.raw_decode(text, at)
        values.append(value)


def cluster_id(agents):
    body = expect(agents.call("GET", "/v3/clusters"), 200, "list clusters", JSON)
    return body["data"][0]["cluster_id"]


def create_topic(agents, cid, topic, partitions, configs=None):
    body = {"topic_name": topic, "partitions_count": partitions, "replication_factor": 1}
    if configs:
        body["configs"] = [{"name": k, "value": v} for k, v in configs.items()]
    return expect(agents.call_retrying("POST", f"/v3/clusters/{cid}/topics", json=body), 201, "create topic", JSON)


def read_back(bootstrap, topic, partitions, count):
    """Every record of `topic` read with confluent-kafka: {(partition,
    offset): message}."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"verify-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found = {}
    deadline = time.monotonic() + TIMEOUT
    while len(found) < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        found[(message.partition(), message.offset())] = message
    consumer.close()
    assert len(found) == count, f"read back {len(found)} records of {topic}, expected {count}"
    return found


# ----- v3 -----


def stream_records(url, path, records):
    """A streamed produce over one connection (`http.client`, chunked): each
    record is sent, then its result read, before the next record is sent."""
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=TIMEOUT)
    connection.putrequest("POST", path)
    connection.putheader("Content-Type", JSON)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()

    def chunk(data):
        connection.send(b"%x\r\n%s\r\n" % (len(data), data))

    response = None
    results = []
    for record in records:
        chunk(json.dumps(record).encode())
        if response is None:
            response = connection.getresponse()
            assert response.status == 200, (response.status, response.read())
            assert response.getheader("Content-Type").startswith(JSON), response.getheaders()
        line = response.readline()
        assert line, "the stream ended early"
        results.append(json.loads(line))
    connection.send(b"0\r\n\r\n")
    rest = response.read().decode()
    assert rest.strip() == "", f"results after the last record: {rest!r}"
    connection.close()
    return results


def scenario_v3(bootstrap, urls):
    agents = Agents(urls)
    # The cluster: the same id on every agent, the one Kafka clients see.
    ids = set()
    for url in urls:
        body = expect(agents.session.get(url + "/v3/clusters", timeout=TIMEOUT), 200, "clusters", JSON)
        assert body["kind"] == "KafkaClusterList" and len(body["data"]) == 1, body
        cluster = body["data"][0]
        assert cluster["metadata"]["self"].startswith(url + "/v3/clusters/"), (url, cluster)
        ids.add(cluster["cluster_id"])
    assert len(ids) == 1, ids
    cid = ids.pop()
    kafka_id = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT).cluster_id
    assert kafka_id == cid, (kafka_id, cid)
    one = expect(agents.call("GET", f"/v3/clusters/{cid}"), 200, "get cluster", JSON)
    assert one["kind"] == "KafkaCluster" and one["topics"]["related"].endswith(f"/v3/clusters/{cid}/topics"), one
    kafka_prefixed = expect(agents.call("GET", f"/kafka/v3/clusters/{cid}"), 200, "get cluster under /kafka/v3", JSON)
    assert "/kafka/v3/clusters/" in kafka_prefixed["metadata"]["self"], kafka_prefixed

    # Topics.
    topic = f"rp-v3-{uuid.uuid4().hex[:8]}"
    partitions = 6
    created = create_topic(agents, cid, topic, partitions, {"retention.ms": "86400000"})
    assert created["topic_name"] == topic and created["partitions_count"] == partitions, created
    listed = expect(agents.call("GET", f"/v3/clusters/{cid}/topics"), 200, "list topics", JSON)
    assert topic in [t["topic_name"] for t in listed["data"]], listed
    described = expect(agents.call("GET", f"/v3/clusters/{cid}/topics/{topic}"), 200, "get topic", JSON)
    assert described["kind"] == "KafkaTopic" and described["partitions_count"] == partitions, described
    configs = expect(agents.call("GET", f"/v3/clusters/{cid}/topics/{topic}/configs"), 200, "configs", JSON)
    assert {c["name"]: c["value"] for c in configs["data"]} == {"retention.ms": "86400000"}, configs
    parts = expect(agents.call("GET", f"/v3/clusters/{cid}/topics/{topic}/partitions"), 200, "partitions", JSON)
    assert [p["partition_id"] for p in parts["data"]] == list(range(partitions)), parts
    part = expect(agents.call("GET", f"/v3/clusters/{cid}/topics/{topic}/partitions/3"), 200, "partition", JSON)
    assert part["partition_id"] == 3 and part["topic_name"] == topic, part

    path = f"/v3/clusters/{cid}/topics/{topic}/records"
    sent = []  # (result, key bytes, value bytes, headers, timestamp or None)

    # Unary: one record per request, each type.
    unary = [
        ({"key": {"type": "STRING", "data": "user-1"}, "value": {"type": "JSON", "data": {"b": 1, "a": [1, 2], "s": "é"}},
          "headers": [{"name": "trace", "value": b64(b"\x00\x01")}], "timestamp": "2024-05-01T12:00:00.123Z"},
         b"user-1", '{"b":1,"a":[1,2],"s":"é"}'.encode(), [("trace", b"\x00\x01")], 1714564800123),
        ({"partition_id": 4, "key": {"type": "BINARY", "data": b64(b"\xff\xfe")}, "value": {"type": "BINARY", "data": b64(os.urandom(64))}},
         b"\xff\xfe", None, [], None),
        ({"value": {"type": "STRING", "data": "no key"}}, None, b"no key", [], None),
        ({"key": {"type": "JSON", "data": "k"}, "value": {"data": [3, {"z": None}]}}, b'"k"', b'[3,{"z":null}]', [], None),
        ({"key": {"type": "STRING", "data": "tomb"}, "value": None}, b"tomb", None, [], None),
    ]
    for request, key, value, headers, timestamp in unary:
        if request.get("value", {}) and request["value"].get("type") == "BINARY":
            value = base64.b64decode(request["value"]["data"])
        answer = agents.call_retrying("POST", path, json=request)
        results = concatenated(expect_text(answer, 200, "unary produce"))
        assert len(results) == 1, results
        result = results[0]
        assert result["error_code"] == 200 and result["cluster_id"] == cid and result["topic_name"] == topic, result
        if "partition_id" in request:
            assert result["partition_id"] == request["partition_id"], result
        elif key is not None:
            assert result["partition_id"] == partition_of(key, partitions), (result, key)
        if request.get("key"):
            assert result["key"] == {"type": request["key"]["type"], "size": len(key)}, result
        if request.get("value"):
            assert result["value"]["size"] == len(value) and result["value"]["type"] == request["value"].get("type", "JSON"), result
        if timestamp is not None:
            assert result["timestamp"] == request["timestamp"], result
        sent.append((result, key, value, headers, timestamp))

    # Streamed: 40 records over one chunked request, each answered before the
    # next is sent, the connection held by one agent.
    streamed_records = [{"key": {"type": "STRING", "data": f"stream-{i}"}, "value": {"type": "STRING", "data": f"s{i}"}} for i in range(40)]
    stream_results = stream_records(agents.next_url(), path, streamed_records)
    assert len(stream_results) == 40
    last = {}
    for i, result in enumerate(stream_results):
        assert result["error_code"] == 200, result
        key = f"stream-{i}".encode()
        assert result["partition_id"] == partition_of(key, partitions), result
        assert result["offset"] > last.get(result["partition_id"], -1), (result, last)
        last[result["partition_id"]] = result["offset"]
        sent.append((result, key, f"s{i}".encode(), [], None))
    # A stream with a bad record in the middle: the others are produced.
    mixed = [{"value": {"type": "STRING", "data": "before"}}, {"value": {"type": "BINARY", "data": "!!"}},
             {"partition_id": 77, "value": {"type": "STRING", "data": "nowhere"}}, {"value": {"type": "STRING", "data": "after"}}]
    body = "".join(json.dumps(r) for r in mixed)
    results = concatenated(expect_text(agents.call_retrying("POST", path, data=body, headers={"Content-Type": JSON}), 200, "mixed"))
    assert [r["error_code"] for r in results] == [200, 400, 40403, 200], results
    sent.append((results[0], None, b"before", [], None))
    sent.append((results[3], None, b"after", [], None))
    # A body that is not JSON ends the stream with an error.
    results = concatenated(expect_text(agents.call_retrying(
        "POST", path, data='{"value": {"type": "STRING", "data": "ok"}} {oops', headers={"Content-Type": JSON}), 200, "broken"))
    assert [r["error_code"] for r in results] == [200, 400], results
    sent.append((results[0], None, b"ok", [], None))

    # Batch.
    batch = {"entries": [
        {"id": "a", "key": {"type": "STRING", "data": "batch-a"}, "value": {"type": "JSON", "data": {"n": 1}}},
        {"id": "b", "partition_id": 99, "value": {"type": "STRING", "data": "x"}},
        {"id": "c", "value": {"type": "BINARY", "data": b64(b"\x00batch")}},
    ]}
    answer = agents.call_retrying("POST", path + ":batch", json=batch)
    body = expect(answer, 207, "batch", JSON)
    successes = {s["id"]: s for s in body["successes"]}
    assert set(successes) == {"a", "c"}, body
    assert [(f["id"], f["error_code"]) for f in body["failures"]] == [("b", 40403)], body
    assert successes["a"]["partition_id"] == partition_of(b"batch-a", partitions), successes
    sent.append((successes["a"], b"batch-a", b'{"n":1}', [], None))
    sent.append((successes["c"], None, b"\x00batch", [], None))
    duplicate = agents.call("POST", path + ":batch", json={"entries": [{"id": "x"}, {"id": "x"}]})
    expect_error(duplicate, 400, 400, "duplicate batch ids", JSON)

    # Read back with confluent-kafka: byte for byte.
    found = read_back(bootstrap, topic, partitions, len(sent))
    for result, key, value, headers, timestamp in sent:
        message = found[(result["partition_id"], result["offset"])]
        assert message.key() == key, (result, message.key(), key)
        assert message.value() == value, (result, message.value(), value)
        assert (message.headers() or []) == headers, (result, message.headers(), headers)
        if timestamp is not None:
            assert message.timestamp()[1] == timestamp, (message.timestamp(), timestamp)

    # Consumer groups: a Kafka consumer's group, seen through every agent.
    group = f"rp-v3-group-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            consumer.commit(message=message, asynchronous=False)
            break
    else:
        raise AssertionError("the Kafka consumer read nothing")
    groups = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups"), 200, "groups", JSON)
    mine = [g for g in groups["data"] if g["consumer_group_id"] == group]
    assert len(mine) == 1 and mine[0]["kind"] == "KafkaConsumerGroup", groups
    one = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}"), 200, "group", JSON)
    assert one["state"] in ("STABLE", "COMPLETING_REBALANCE", "PREPARING_REBALANCE"), one
    assert "/brokers/" in one["coordinator"]["related"], one
    consumers = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}/consumers"), 200, "consumers", JSON)
    assert len(consumers["data"]) == 1, consumers
    consumer.close()

    expect(agents.call("DELETE", f"/v3/clusters/{cid}/topics/{topic}"), 204, "delete topic")
    # Every agent learns of the deletion within its topic cache's age (2 s).
    deadline = time.monotonic() + 10
    for url in urls:
        while True:
            gone = agents.session.get(f"{url}/v3/clusters/{cid}/topics/{topic}", timeout=TIMEOUT)
            if gone.status_code == 404 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        expect_error(gone, 404, 40403, "deleted topic", JSON)
    print(f"OK v3 produced={len(sent)} streamed={len(stream_results)}")


def expect_text(answer, status, what):
    if answer.status_code != status:
        raise AssertionError(f"{what}: HTTP {answer.status_code}, expected {status}: {answer.text}")
    return answer.text


# ----- v2 consumers -----


class Instance:
    """A v2 consumer instance, called through any agent."""

    def __init__(self, agents, base_uri, created_on):
        self.agents = agents
        parsed = urllib.parse.urlparse(base_uri)
        assert f"{parsed.scheme}://{parsed.netloc}" == created_on, (base_uri, created_on)
        self.path = parsed.path
        self.not_found = 0

    def call(self, method, suffix="", **kwargs):
        answer = self.agents.call(method, self.path + suffix, **kwargs)
        if answer.status_code == 404 and answer.content and answer.json().get("error_code") == 40403:
            self.not_found += 1
        return answer

    def call_retrying(self, method, suffix="", **kwargs):
        deadline = time.monotonic() + 60
        while True:
            answer = self.call(method, suffix, **kwargs)
            if answer.status_code < 500 or time.monotonic() > deadline:
                return answer
            if answer.json().get("error_code") != 50003:
                return answer
            time.sleep(0.2)

    def subscribe(self, topics):
        expect(self.call_retrying("POST", "/subscription", json={"topics": topics}, headers={"Content-Type": V2}),
               204, "subscribe")

    def records(self, timeout_ms=1000, accept=V2_BINARY):
        answer = self.call_retrying("GET", "/records", params={"timeout": timeout_ms}, headers={"Accept": accept})
        return expect(answer, 200, "records", accept)

    def assignments(self):
        body = expect(self.call_retrying("GET", "/assignments", headers={"Accept": V2}), 200, "assignments", V2)
        return sorted((p["topic"], p["partition"]) for p in body["partitions"])


def create_instance(agents, group, **config):
    url = agents.next_url()
    answer = agents.session.post(f"{url}/consumers/{group}", json=config, headers={"Content-Type": V2}, timeout=TIMEOUT)
    body = expect(answer, 200, "create instance", V2)
    assert body["base_uri"].endswith(f"/consumers/{group}/instances/{body['instance_id']}"), body
    return Instance(agents, body["base_uri"], url)


def produce_v2_binary(agents, topic, keys):
    """Produces `key → value` records over v2 (binary), 50 per request."""
    placed = {}
    for start in range(0, len(keys), 50):
        chunk = keys[start:start + 50]
        records = [{"key": b64(k.encode()), "value": b64(f"value of {k}".encode())} for k in chunk]
        answer = agents.call_retrying("POST", f"/topics/{topic}", json={"records": records},
                                      headers={"Content-Type": V2_BINARY, "Accept": V2})
        body = expect(answer, 200, "v2 produce", V2)
        assert body["key_schema_id"] is None and body["value_schema_id"] is None, body
        for key, offset in zip(chunk, body["offsets"]):
            assert offset["error_code"] is None, body
            placed[(offset["partition"], offset["offset"])] = key
    return placed


def consume_all(instances, expected, limit_s, on_round=None):
    """Reads from the instances in turn until every expected (partition,
    offset) was answered; returns {(partition, offset): [instance index...]}."""
    seen = {}
    deadline = time.monotonic() + limit_s
    rounds = 0
    while len(seen) < len(expected):
        assert time.monotonic() < deadline, f"consumed {len(seen)} of {len(expected)} records"
        rounds += 1
        if on_round is not None:
            on_round(rounds, len(seen))
        for i, instance in enumerate(instances):
            for record in instance.records(timeout_ms=500):
                where = (record["partition"], record["offset"])
                key = base64.b64decode(record["key"]).decode()
                assert expected.get(where) == key, (where, key, expected.get(where))
                assert base64.b64decode(record["value"]) == f"value of {key}".encode(), record
                seen.setdefault(where, []).append(i)
    return seen


def scenario_v2_flow(bootstrap, urls):
    agents = Agents(urls)
    cid = cluster_id(agents)
    topic = f"rp-v2-{uuid.uuid4().hex[:8]}"
    partitions = 12
    create_topic(agents, cid, topic, partitions)
    keys = [f"key-{i}" for i in range(600)]
    placed = produce_v2_binary(agents, topic, keys)
    for (partition, _), key in placed.items():
        assert partition == partition_of(key.encode(), partitions), (partition, key)

    # v2 json embedded format: stored as compact JSON, read back the same.
    json_topic = f"rp-v2-json-{uuid.uuid4().hex[:8]}"
    create_topic(agents, cid, json_topic, 1)
    answer = agents.call_retrying("POST", f"/topics/{json_topic}", json={"records": [
        {"key": {"id": 7}, "value": {"b": [1, 2], "a": "x"}}, {"value": "plain"}]},
        headers={"Content-Type": V2_JSON})
    expect(answer, 200, "v2 json produce", V2)
    found = read_back(bootstrap, json_topic, 1, 2)
    assert found[(0, 0)].key() == b'{"id":7}' and found[(0, 0)].value() == b'{"b":[1,2],"a":"x"}', found[(0, 0)].value()
    reader = create_instance(agents, f"rp-json-{uuid.uuid4().hex[:6]}", format="json", **{"auto.offset.reset": "earliest"})
    reader.subscribe([json_topic])
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < 2 and time.monotonic() < deadline:
        got.extend(reader.records(accept=V2_JSON))
    assert got[0]["key"] == {"id": 7} and got[0]["value"] == {"b": [1, 2], "a": "x"} and got[1]["value"] == "plain", got
    expect(reader.call("DELETE"), 204, "delete json reader")

    # Three instances of one group, created on three agents, each called
    # through every agent.
    group = f"rp-group-{uuid.uuid4().hex[:6]}"
    instances = [create_instance(agents, group, name=f"c{i}", format="binary",
                                 **{"auto.offset.reset": "earliest", "auto.commit.enable": "true",
                                    "session.timeout.ms": 10000}) for i in range(3)]
    for instance in instances:
        instance.subscribe([topic])
    subscription = expect(instances[0].call("GET", "/subscription"), 200, "subscription", V2)
    assert subscription == {"topics": [topic]}, subscription
    seen = consume_all(instances, placed, 120)
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert not twice, f"records consumed more than once: {list(twice.items())[:5]}"
    per_instance = [sum(1 for v in seen.values() if v[0] == i) for i in range(3)]
    assert all(n > 0 for n in per_instance), per_instance
    # A few more reads: nothing comes twice, the assignment settles.
    for _ in range(4):
        for instance in instances:
            assert instance.records(timeout_ms=200) == []
    owned = [instance.assignments() for instance in instances]
    union = sorted(itertools.chain.from_iterable(owned))
    assert union == [(topic, p) for p in range(partitions)], owned

    # Commits: every instance's positions (reads auto-committed them too).
    for instance in instances:
        expect(instance.call_retrying("POST", "/offsets", headers={"Content-Type": V2}), 200, "commit", V2)
    ends = {}
    for (partition, offset) in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    asked = {"partitions": [{"topic": topic, "partition": p} for p in range(partitions)]}
    committed = expect(instances[1].call("GET", "/offsets", json=asked, headers={"Content-Type": V2}), 200, "committed", V2)
    assert {o["partition"]: o["offset"] for o in committed["offsets"]} == {p: ends.get(p, 0) for p in range(partitions) if p in ends}, committed

    # An explicit commit is of the last record processed: the next is stored.
    first = instances[0]
    mine = first.assignments()
    partition = mine[0][1]
    expect(first.call("POST", "/offsets", json={"offsets": [{"topic": topic, "partition": partition, "offset": 4}]},
                      headers={"Content-Type": V2}), 200, "explicit commit", V2)
    committed = expect(first.call("GET", "/offsets", json={"partitions": [{"topic": topic, "partition": partition}]},
                                  headers={"Content-Type": V2}), 200, "committed one", V2)
    assert committed["offsets"] == [{"topic": topic, "partition": partition, "offset": 5, "metadata": ""}], committed

    # Seeks: to the beginning, to an offset, to the end.
    expect(first.call("POST", "/positions/beginning", json={"partitions": [{"topic": topic, "partition": partition}]},
                      headers={"Content-Type": V2}), 204, "seek to beginning")
    again = first.records(timeout_ms=2000)
    assert again and again[0]["partition"] == partition and again[0]["offset"] == 0, again[:2]
    expect(first.call("POST", "/positions", json={"offsets": [{"topic": topic, "partition": partition, "offset": 3}]},
                      headers={"Content-Type": V2}), 204, "seek to offset")
    again = [r for r in first.records(timeout_ms=2000) if r["partition"] == partition]
    assert again and again[0]["offset"] == 3, again[:2]
    expect(first.call("POST", "/positions/end", json={"partitions": [{"topic": topic, "partition": partition}]},
                      headers={"Content-Type": V2}), 204, "seek to end")
    assert [r for r in first.records(timeout_ms=300) if r["partition"] == partition] == []

    # The group as v3 sees it, then deletes.
    described = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}"), 200, "v3 group", JSON)
    assert described["type"] == "CONSUMER" and described["state"] in ("STABLE", "RECONCILING"), described
    members = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}/consumers"), 200, "members", JSON)
    assert len(members["data"]) == 3, members
    for instance in instances:
        expect(instance.call("DELETE"), 204, "delete instance")
        expect_error(instance.call("GET", "/records", headers={"Accept": V2_BINARY}), 404, 40403, "deleted instance", V2)
    described = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}"), 200, "v3 group after", JSON)
    assert described["state"] == "EMPTY", described
    print(f"OK v2-flow records={len(seen)} per-instance={per_instance}")


def recover(instance):
    """After a read whose answer was lost (its agent died), the instance goes
    back to its committed offsets, so records read but never delivered are
    read again (what a careful client of Confluent's proxy does too)."""
    while True:
        answer = instance.call_retrying("GET", "/assignments", headers={"Accept": V2})
        if answer.status_code != 200:
            return
        owned = [(p["topic"], p["partition"]) for p in answer.json()["partitions"]]
        if not owned:
            return
        asked = {"partitions": [{"topic": t, "partition": p} for t, p in owned]}
        committed = instance.call_retrying("GET", "/offsets", json=asked, headers={"Content-Type": V2})
        if committed.status_code != 200:
            continue
        offsets = [o for o in committed.json()["offsets"]]
        if not offsets:
            return
        moved = instance.call_retrying("POST", "/positions", json={"offsets": offsets}, headers={"Content-Type": V2})
        if moved.status_code in (204, 409):
            return


def scenario_kill(bootstrap, victim_pid, victim_node, urls):
    agents = Agents(urls)
    cid = cluster_id(agents)
    topic = f"rp-kill-{uuid.uuid4().hex[:8]}"
    partitions = 12
    create_topic(agents, cid, topic, partitions)
    placed = produce_v2_binary(agents, topic, [f"key-{i}" for i in range(1200)])
    # A group whose coordinator is the agent about to die, when one comes up
    # within a few tries (groups are hashed onto coordinator shards).
    for attempt in range(24):
        group = f"rp-kill-{uuid.uuid4().hex[:6]}"
        instances = [create_instance(agents, group, name=f"k{i}",
                                     **{"auto.offset.reset": "earliest", "session.timeout.ms": 15000}) for i in range(3)]
        for instance in instances:
            instance.subscribe([topic])
        described = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}"), 200, "group", JSON)
        on_victim = described["coordinator"]["related"].endswith(f"/brokers/{victim_node}")
        if on_victim:
            break
        for instance in instances:
            expect(instance.call("DELETE"), 204, "delete a try")
    kill_now = threading.Event()

    def killer():
        kill_now.wait()
        # Somewhere in the calls under way, not between two of them.
        time.sleep(random.uniform(0, 0.05))
        os.kill(victim_pid, signal.SIGKILL)

    threading.Thread(target=killer, daemon=True).start()
    seen = {}
    lost_reads = 0
    reads_after = 0
    deadline = time.monotonic() + 180
    while len(seen) < len(placed):
        assert time.monotonic() < deadline, f"consumed {len(seen)} of {len(placed)}"
        for instance in instances:
            if len(seen) >= len(placed) // 3:
                kill_now.set()
            errors_before = agents.connection_errors
            answer = instance.call_retrying("GET", "/records", params={"timeout": 500, "max_bytes": 1},
                                            headers={"Accept": V2_BINARY})
            if agents.connection_errors != errors_before:
                lost_reads += 1
                recover(instance)
                continue
            if answer.status_code != 200:
                body = answer.json()
                # Anything but "not found" may happen while leadership moves.
                assert body.get("error_code") != 40403, body
                time.sleep(0.2)
                continue
            if kill_now.is_set():
                reads_after += 1
            for record in answer.json():
                where = (record["partition"], record["offset"])
                assert placed.get(where) == base64.b64decode(record["key"]).decode(), record
                seen[where] = seen.get(where, 0) + 1
    assert kill_now.is_set() and reads_after > 0, reads_after
    not_found = sum(i.not_found for i in instances)
    assert not_found == 0, f"{not_found} calls answered 'consumer instance not found'"
    duplicates = sum(n - 1 for n in seen.values())
    for instance in instances:
        expect(instance.call_retrying("DELETE"), 204, "delete")
    print(f"OK kill records={len(seen)} not_found={not_found} duplicates={duplicates} lost_reads={lost_reads} "
          f"reads_after_kill={reads_after} coordinator_on_victim={on_victim}")


def scenario_session_lapse(bootstrap, urls):
    agents = Agents(urls)
    cid = cluster_id(agents)
    topic = f"rp-lapse-{uuid.uuid4().hex[:8]}"
    partitions = 6
    create_topic(agents, cid, topic, partitions)
    produce_v2_binary(agents, topic, [f"k{i}" for i in range(60)])
    group = f"rp-lapse-{uuid.uuid4().hex[:6]}"
    session_ms = 6000
    config = {"auto.offset.reset": "earliest", "session.timeout.ms": session_ms}
    a = create_instance(agents, group, name="a", **config)
    b = create_instance(agents, group, name="b", **config)
    a.subscribe([topic])
    b.subscribe([topic])
    everything = [(topic, p) for p in range(partitions)]
    deadline = time.monotonic() + 60
    while True:
        a.records(timeout_ms=200)
        b.records(timeout_ms=200)
        owned_a, owned_b = a.assignments(), b.assignments()
        if owned_a and owned_b and sorted(owned_a + owned_b) == everything:
            break
        assert time.monotonic() < deadline, (owned_a, owned_b)
    # b stops reading: a gets every partition within b's session timeout.
    stopped = time.monotonic()
    while a.assignments() != everything:
        a.records(timeout_ms=300)
        assert time.monotonic() - stopped < session_ms / 1000 + 4, f"a owns {a.assignments()} after {time.monotonic() - stopped:.1f}s"
    took = time.monotonic() - stopped
    # b's URL still answers (its state is kept for consumer.instance.timeout.ms).
    expect(b.call("GET", "/subscription"), 200, "b's subscription", V2)
    expect(b.call("GET", "/assignments"), 200, "b's assignments", V2)
    # b reads again: it joins again transparently, and gets partitions back.
    deadline = time.monotonic() + 60
    while True:
        b.records(timeout_ms=200)
        a.records(timeout_ms=200)
        owned_a, owned_b = a.assignments(), b.assignments()
        if owned_b and sorted(owned_a + owned_b) == everything:
            break
        assert time.monotonic() < deadline, (owned_a, owned_b)
    assert a.not_found == 0 and b.not_found == 0
    for instance in (a, b):
        expect(instance.call("DELETE"), 204, "delete")
    print(f"OK session-lapse moved_after={took:.1f}s session={session_ms / 1000:.0f}s")


def scenario_errors(bootstrap, urls):
    agents = Agents(urls)
    cid = cluster_id(agents)
    topic = f"rp-err-{uuid.uuid4().hex[:8]}"
    create_topic(agents, cid, topic, 2)
    group = f"rp-err-{uuid.uuid4().hex[:6]}"

    # v3.
    expect_error(agents.call("GET", "/v3/clusters/not-this-one"), 404, 404, "unknown cluster", JSON)
    expect_error(agents.call("GET", f"/v3/clusters/{cid}/no-such-resource"), 404, 404, "unknown v3 path", JSON)
    exists = agents.call("POST", f"/v3/clusters/{cid}/topics", json={"topic_name": topic, "partitions_count": 1})
    expect_error(exists, 400, 40002, "topic exists", JSON)
    expect_error(agents.call("GET", f"/v3/clusters/{cid}/topics/absent-topic"), 404, 40403, "unknown topic", JSON)
    expect_error(agents.call("GET", f"/v3/clusters/{cid}/topics/{topic}/partitions/99"), 404, 40403, "unknown partition", JSON)
    expect_error(agents.call("POST", f"/v3/clusters/{cid}/topics/absent-topic/records", json={"value": {"data": 1}}),
                 404, 40403, "produce to an unknown topic", JSON)
    expect_error(agents.call("POST", f"/v3/clusters/{cid}/topics/{topic}/records", data="{}", headers={"Content-Type": "text/plain"}),
                 415, 415, "v3 text/plain", JSON)
    expect_error(agents.call("GET", f"/v3/clusters/{cid}/topics", headers={"Accept": "text/html"}), 406, 406, "v3 accept html", JSON)
    expect_error(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/absent-group"), 404, 404, "unknown group", JSON)
    # The embedded schema types need a Schema Registry.
    answer = agents.call_retrying("POST", f"/v3/clusters/{cid}/topics/{topic}/records",
                                  json={"value": {"type": "AVRO", "data": {"a": 1}}})
    assert concatenated(expect_text(answer, 200, "avro"))[0]["error_code"] == 400

    # v2 produce.
    binary = {"Content-Type": V2_BINARY}
    records = {"records": [{"value": b64(b"x")}]}
    expect_error(agents.call("POST", "/topics/absent-topic", json=records, headers=binary), 404, 40401, "v2 unknown topic", V2)
    expect_error(agents.call("POST", f"/topics/{topic}/partitions/99", json=records, headers=binary), 404, 40402, "v2 unknown partition", V2)
    expect_error(agents.call("GET", "/topics/absent-topic"), 404, 40401, "v2 topic metadata", V2)
    expect_error(agents.call("POST", f"/topics/{topic}", json={"records": [{"key": {"a": 1}, "value": {"b": 2}}]},
                             headers={"Content-Type": "application/vnd.kafka.avro.v2+json"}), 422, 42201, "avro without a key schema", V2)
    expect_error(agents.call("POST", f"/topics/{topic}", data="x", headers={"Content-Type": "text/plain"}), 415, 415, "v2 text/plain", V2)
    expect_error(agents.call("POST", f"/topics/{topic}", json={"records": []}, headers=binary), 422, 422, "no records", V2)
    expect_error(agents.call("POST", f"/topics/{topic}", json={"records": [{"value": "!!"}]}, headers=binary), 422, 422, "bad base64", V2)

    # v2 consumers.
    headers = {"Content-Type": V2}
    expect_error(agents.call("POST", f"/consumers/{group}", data="{}", headers={"Content-Type": "text/plain"}),
                 415, 415, "create with text/plain", V2)
    expect_error(agents.call("POST", f"/consumers/{group}", json={"format": "xml"}, headers=headers), 422, 422, "bad format", V2)
    expect_error(agents.call("POST", f"/consumers/{group}", json={"auto.offset.reset": "sometimes"}, headers=headers),
                 422, 42204, "bad reset", V2)
    instance = create_instance(agents, group, name="dup", format="binary")
    expect_error(agents.call("POST", f"/consumers/{group}", json={"name": "dup"}, headers=headers), 409, 40902, "duplicate", V2)
    expect_error(agents.call("GET", f"/consumers/{group}/instances/nobody/records"), 404, 40403, "unknown instance", V2)
    expect_error(agents.call("POST", f"/consumers/{group}/instances/nobody/subscription", json={"topics": [topic]}, headers=headers),
                 404, 40403, "subscribe an unknown instance", V2)
    expect_error(instance.call("GET", "/records"), 409, 40903, "read before subscribing", V2)
    expect_error(instance.call("POST", "/subscription", json={}, headers=headers), 422, 422, "empty subscription", V2)
    instance.subscribe([topic])
    expect_error(instance.call("GET", "/records", headers={"Accept": V2_JSON}), 406, 40601, "format mismatch", V2)
    expect_error(instance.call("GET", "/records", headers={"Accept": "text/html"}), 406, 406, "accept html", V2)
    expect_error(instance.call("POST", "/assignments", json={"partitions": [{"topic": topic, "partition": 0}]}, headers=headers),
                 409, 40903, "assign while subscribed", V2)
    expect_error(instance.call("POST", "/positions", json={"offsets": [{"topic": "other", "partition": 0, "offset": 0}]},
                               headers=headers), 409, 40903, "seek an unowned partition", V2)
    expect_error(instance.call("GET", "/offsets", headers=headers), 404, 40402, "committed without partitions", V2)
    expect(instance.call("DELETE"), 204, "delete")
    expect_error(instance.call("DELETE"), 404, 40403, "delete twice", V2)

    # Manual assignment: read without group membership.
    manual = create_instance(agents, group, name="manual", **{"auto.offset.reset": "earliest"})
    expect(manual.call("POST", "/assignments", json={"partitions": [{"topic": topic, "partition": 0}, {"topic": topic, "partition": 1}]},
                       headers=headers), 204, "assign")
    expect_error(manual.call("POST", "/assignments", json={"partitions": [{"topic": topic, "partition": 7}]}, headers=headers),
                 404, 40402, "assign an unknown partition", V2)
    produced = produce_v2_binary(agents, topic, [f"m{i}" for i in range(10)])
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < len(produced) and time.monotonic() < deadline:
        got.extend(manual.records(timeout_ms=500))
    assert sorted((r["partition"], r["offset"]) for r in got) == sorted(produced), got
    expect_error(manual.call("POST", "/subscription", json={"topics": [topic]}, headers=headers), 409, 40903, "subscribe while assigned", V2)
    expect(manual.call("DELETE"), 204, "delete manual")

    # An instance unused for its consumer.instance.timeout.ms is deleted, and
    # its member leaves the group.
    short = create_instance(agents, group, name="short-lived", **{"consumer.instance.timeout.ms": 2000, "auto.offset.reset": "earliest"})
    short.subscribe([topic])
    members = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}/consumers"), 200, "members", JSON)
    assert len(members["data"]) == 1, members
    time.sleep(3)
    expect_error(short.call("GET", "/assignments"), 404, 40403, "expired instance", V2)
    members = expect(agents.call("GET", f"/v3/clusters/{cid}/consumer-groups/{group}/consumers"), 200, "members after", JSON)
    assert members["data"] == [], members
    # Its name can be taken again.
    again = create_instance(agents, group, name="short-lived")
    expect(again.call("DELETE"), 204, "delete again")
    print("OK errors")


def main():
    scenario = sys.argv[1]
    if scenario == "v3":
        scenario_v3(sys.argv[2], sys.argv[3:])
    elif scenario == "v2-flow":
        scenario_v2_flow(sys.argv[2], sys.argv[3:])
    elif scenario == "kill":
        scenario_kill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
    elif scenario == "session-lapse":
        scenario_session_lapse(sys.argv[2], sys.argv[3:])
    elif scenario == "errors":
        scenario_errors(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
