"""Group consumption over Fjord's HTTP gateway (members of the server-side
consumer protocol, KIP-848, each carrying its state in an opaque cursor), with
clients nobody here wrote: Python `requests` for HTTP, confluent-kafka
(librdkafka) to produce and to read the group's committed offsets back.

    python3 http_groups.py share <bootstrap> <http base URL> [...]
    python3 http_groups.py agent_kill <bootstrap> <group> <pid of an agent> <its node id> <http base URL> [...]
    python3 http_groups.py member_kill <bootstrap> <http base URL> [...]
    python3 http_groups.py bad_input <bootstrap> <http base URL> [...]
    python3 http_groups.py pattern <bootstrap> <http base URL> [...]
    python3 http_groups.py stream <bootstrap> <http base URL> [...]

`share`: three members (threads) of one group, with a 6 s session and
`auto_commit`, read a 12-partition topic: every record is delivered exactly
once, no partition is owned by two members at one member epoch, and the
committed offsets are the partitions' ends once the members left.

`agent_kill`: the same, with the agent whose pid is given (the Rust side
passes the group's coordinator) killed (`kill -9`) a third of the way through:
the members carry on through the others, no answer is a 404 (a member is
unknown only after its own session expired, and none did), every record is
delivered at least once, and no committed offset ever goes back.

`member_kill`: one of three members stops polling (a crashed client): its
partitions go to the others once its session expires (the time from its last
poll to every partition being owned again is measured), and no record is
lost.

`bad_input`: malformed requests get the documented errors, and the group still
works afterwards. `pattern`: a member subscribed with a regular expression is
given the partitions of a topic created after it joined.

`stream`: a member reading as a Server-Sent Events stream (`auto_commit`)
shares a topic with a polling member that joins later: the stream's `member`
event reports the partitions it gives up, their positions are committed
before the other member gets them, and every record is delivered exactly
once.

Every HTTP request goes to the next agent in turn (each member keeps its own
turn); an agent that refuses or resets the connection (killed) is skipped and
the request retried on the next one, as is a 503 answer. A poll whose answer
was lost is sent again with the same epoch and cursor. Each scenario prints
`RESULT {json}` with its counts and measured times (measured, never asserted)
as its last line; the first failed check raises (exit status 1) with what
differed.
"""

import itertools
import json
import os
import signal
import sys
import threading
import time
import uuid

import requests
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

# One HTTP request (a poll waits at most WAIT_MS of it).
REQUEST_TIMEOUT = 30
# How long a request is retried on other agents (connection refused or reset,
# 503) before the scenario fails.
RETRY_FOR = 60
# A generous bound on waits that catch a broken requirement, not a slow machine.
MUST_HAPPEN = 120
SESSION_TIMEOUT_MS = 6000
WAIT_MS = 500


def log(message):
    print(message, flush=True)


class Stats:
    """Counts shared by every member of a scenario."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.not_found = []

    def add(self, name, n=1):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def get(self, name):
        with self.lock:
            return self.counts.get(name, 0)

    def saw_not_found(self, what, answer):
        with self.lock:
            self.not_found.append(f"{what}: {answer.text}")


class Gateway:
    """Sends each request to the next agent's gateway: a connection refused or
    reset (an agent killed), a timeout, or a 503 is retried on the next agent
    (for up to RETRY_FOR seconds)."""

    def __init__(self, urls, stats):
        self.urls = urls
        self.turn = itertools.cycle(range(len(urls)))
        self.stats = stats
        self.session = requests.Session()

    def next_url(self):
        return self.urls[next(self.turn)]

    def once(self, method, path, **kwargs):
        """One request to the next agent, no retry."""
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        self.stats.add("requests")
        return self.session.request(method, self.next_url() + path, **kwargs)

    def call(self, method, path, **kwargs):
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                answer = self.once(method, path, **kwargs)
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                self.stats.add("connection_retries")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{method} {path}: no agent answered for {RETRY_FOR} s: {error}")
                continue
            except requests.exceptions.Timeout as error:
                self.stats.add("timeout_retries")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{method} {path}: no agent answered for {RETRY_FOR} s: {error}")
                continue
            self.stats.add(f"http_{answer.status_code}")
            if answer.status_code == 503:
                assert "Retry-After" in answer.headers, answer.headers
                self.stats.add("unavailable_retries")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{method} {path}: 503 for {RETRY_FOR} s: {answer.text}")
                # Retry-After says 1 s; a member must still poll well within
                # its session, so it tries the next agent sooner.
                time.sleep(0.2)
                continue
            return answer


def expect(answer, status, what):
    if answer.status_code != status:
        raise AssertionError(f"{what}: HTTP {answer.status_code}, expected {status}: {answer.text}")
    return answer.json() if answer.content else None


def expect_error(answer, status, code, what):
    body = expect(answer, status, what)
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{what}: no error object in {body}"
    assert error["code"] == code, f"{what}: code {error['code']}, expected {code}: {body}"
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["retriable"], bool), body
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
    return error


def pairs(listed):
    return frozenset((tp["topic"], tp["partition"]) for tp in listed)


class Member:
    """One HTTP group member: joins, then polls (its heartbeat) until told to
    stop, then commits its cursor and leaves; or, if `crash_after` records
    were delivered to it, stops polling (a crashed client)."""

    def __init__(self, name, urls, stats, group, subscription, stop, failures, *, auto_commit=True,
                 max_records=50, pause=0.0, crash_after=None):
        self.name = name
        self.gateway = Gateway(urls, stats)
        self.stats = stats
        self.group = group
        self.subscription = subscription
        self.stop = stop
        self.failures = failures
        self.auto_commit = auto_commit
        self.max_records = max_records
        self.pause = pause
        self.crash_after = crash_after
        self.member_id = f"{name}-{uuid.uuid4().hex[:12]}"
        self.lock = threading.Lock()
        self.epoch = None
        self.cursor = None
        self.assignment = frozenset()
        # Every answer: (monotonic time, member epoch, assignment).
        self.history = []
        # Every record delivered: (topic, partition, offset, key, value).
        self.delivered = []
        # The next offset after what it delivered, per partition it owns.
        self.positions = {}
        # The highest offset it knows it committed, per partition.
        self.committed = {}
        self.polls = 0
        self.joins = 0
        self.rejoins = 0
        self.fenced = 0
        self.last_poll_at = None
        self.crashed = False
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def path(self, suffix=""):
        return f"/v1/groups/{self.group}/members/{self.member_id}{suffix}"

    def snapshot(self):
        with self.lock:
            return self.epoch, self.assignment, len(self.delivered)

    def run(self):
        try:
            self.join()
            while not self.stop.is_set():
                self.poll()
                if self.crash_after is not None and len(self.delivered) >= self.crash_after:
                    self.crashed = True
                    log(f"{self.name}: stops polling after {len(self.delivered)} records (a crashed client)")
                    return
                if self.pause:
                    time.sleep(self.pause)
            self.finish()
        except BaseException as error:  # reported by the main thread
            self.failures.append(f"{self.name}: {error!r}")
            self.stop.set()

    def join(self):
        body = {"member_id": self.member_id, "session_timeout_ms": SESSION_TIMEOUT_MS, **self.subscription}
        answer = expect(self.gateway.call("POST", f"/v1/groups/{self.group}/members", json=body), 201,
                        f"{self.name} joins")
        assert answer["records"] == [], answer
        self.joins += 1
        with self.lock:
            # A join starts from nothing owned.
            self.positions = {}
            self.assignment = frozenset()
        self.adopt(answer)

    def adopt(self, answer):
        assert answer["member_id"] == self.member_id, (answer["member_id"], self.member_id)
        assert isinstance(answer["cursor"], str) and answer["cursor"], answer
        assert answer["heartbeat_interval_ms"] > 0, answer
        assignment = pairs(answer["assignment"])
        assigned, revoked = pairs(answer["assigned"]), pairs(answer["revoked"])
        assert assigned <= assignment, (assigned, assignment)
        assert not (revoked & assignment), (revoked, assignment)
        assert assignment == (self.assignment - revoked) | assigned, \
            f"{self.name}: {sorted(self.assignment)} - {sorted(revoked)} + {sorted(assigned)} != {sorted(assignment)}"
        with self.lock:
            for tp in revoked | assigned:
                self.positions.pop(tp, None)
            for record in answer["records"]:
                tp = (record["topic"], record["partition"])
                assert tp in assignment, f"{self.name}: a record of {tp}, not among {sorted(assignment)}"
                expected = self.positions.get(tp)
                assert expected is None or record["offset"] == expected, \
                    f"{self.name}: {tp} at offset {record['offset']} after {expected}: a gap or a repeat"
                self.positions[tp] = record["offset"] + 1
                self.delivered.append((record["topic"], record["partition"], record["offset"], record["key"],
                                       record["value"]))
            self.epoch = answer["member_epoch"]
            self.cursor = answer["cursor"]
            self.assignment = assignment
            self.history.append((time.monotonic(), self.epoch, assignment))

    def poll(self, max_records=None, wait_ms=WAIT_MS):
        """One poll; a 404 (its session expired) or 409 fenced epoch rejoins."""
        with self.lock:
            incoming = {tp: self.positions[tp] for tp in self.assignment if tp in self.positions}
        body = {"member_epoch": self.epoch, "cursor": self.cursor, "max_records": max_records or self.max_records,
                "wait_ms": wait_ms, "auto_commit": self.auto_commit, "encoding": "utf8"}
        answer = self.gateway.call("POST", self.path("/poll"), json=body)
        self.polls += 1
        if answer.status_code == 404:
            expect_error(answer, 404, "UNKNOWN_MEMBER_ID", f"{self.name} polls")
            self.stats.saw_not_found(f"{self.name} poll at epoch {self.epoch}", answer)
            log(f"{self.name}: unknown member at epoch {self.epoch}: rejoins")
            self.rejoins += 1
            self.join()
            return
        if answer.status_code == 409:
            expect_error(answer, 409, "FENCED_MEMBER_EPOCH", f"{self.name} polls")
            log(f"{self.name}: fenced at epoch {self.epoch}: rejoins")
            self.fenced += 1
            self.join()
            return
        self.adopt(expect(answer, 200, f"{self.name} polls at epoch {body['member_epoch']}"))
        self.last_poll_at = time.monotonic()
        if self.auto_commit:
            # The incoming cursor's positions were committed by this poll.
            with self.lock:
                for tp, offset in incoming.items():
                    self.committed[tp] = max(self.committed.get(tp, 0), offset)

    def commit(self):
        """Commits the cursor under the current epoch; on 409 (the epoch
        moved) polls and tries again. Returns how many tries it took."""
        for attempt in range(1, 20):
            with self.lock:
                positions = {tp: self.positions[tp] for tp in self.assignment if tp in self.positions}
                body = {"member_epoch": self.epoch, "cursor": self.cursor}
            answer = self.gateway.call("POST", self.path("/commit"), json=body)
            if answer.status_code == 204:
                with self.lock:
                    for tp, offset in positions.items():
                        self.committed[tp] = max(self.committed.get(tp, 0), offset)
                return attempt
            expect_error(answer, 409, "STALE_MEMBER_EPOCH", f"{self.name} commits at epoch {self.epoch}")
            self.poll(wait_ms=0)
        raise AssertionError(f"{self.name}: the commit was stale 20 times")

    def finish(self):
        self.commit()
        expect(self.gateway.call("DELETE", self.path()), 204, f"{self.name} leaves")


def start_members(count, urls, stats, group, subscription, crash_first_after=None, **kwargs):
    """`count` members polling in threads; the first stops polling once
    `crash_first_after` records were delivered to it, when given."""
    stop = threading.Event()
    failures = []
    members = [Member(f"m{i}", urls, stats, group, subscription, stop, failures, **kwargs) for i in range(count)]
    members[0].crash_after = crash_first_after
    for member in members:
        member.thread.start()
    return members, stop, failures


def check_failures(failures):
    if failures:
        raise AssertionError(failures[0])


def wait_until(what, limit, failures, probe):
    """Polls `probe` every 50 ms until it returns something truthy; fails if
    `limit` seconds pass first or a member failed."""
    deadline = time.monotonic() + limit
    while True:
        check_failures(failures)
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit} s")
        time.sleep(0.05)


def settled(members, partitions):
    """Whether every member owns some partitions and together they own each
    of `partitions` exactly once."""
    owned = [m.snapshot()[1] for m in members]
    union = frozenset().union(*owned)
    return all(owned) and union == partitions and sum(len(o) for o in owned) == len(partitions)


def create_topic(gateway, topic, partitions):
    expect(gateway.call("POST", "/v1/topics", json={"name": topic, "partitions": partitions}), 201,
           f"create {topic}")


def produce(bootstrap, topic, count, prefix="k"):
    """`count` keyed records through confluent-kafka (idempotent, acks=all):
    {(partition, offset): (key, value)} of the acknowledged ones."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5})
    acked = {}
    failed = []

    def delivered(error, message):
        if error is not None:
            failed.append(str(error))
            return
        acked[(message.partition(), message.offset())] = (message.key().decode(), message.value().decode())

    for n in range(count):
        producer.produce(topic, key=f"{prefix}{n % 97}", value=f"{prefix}-value-{n}", on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(MUST_HAPPEN)
    assert remaining == 0 and not failed, f"{remaining} undelivered, failed: {failed[:3]}"
    assert len(acked) == count, (len(acked), count)
    return acked


def leaders(bootstrap, topic):
    """Partition → leader node id, as the cluster's metadata says now."""
    described = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30).topics[topic]
    return {p: meta.leader for p, meta in described.partitions.items()}


def committed_offsets(bootstrap, group, topic, partitions, timeout=30):
    """The group's committed offset and each partition's end, read with
    confluent-kafka (a consumer that never subscribes, so never joins)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        read = consumer.committed(wanted, timeout=timeout)
        assert all(tp.error is None for tp in read), [tp.error for tp in read]
        committed = {tp.partition: tp.offset for tp in read}
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in range(partitions)}
    finally:
        consumer.close()
    return committed, ends


class CommitWatcher:
    """Reads the group's committed offsets every 250 ms while it runs, and
    counts any that went back."""

    def __init__(self, bootstrap, group, topic, partitions):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        self.wanted = [TopicPartition(topic, p) for p in range(partitions)]
        self.highest = {}
        self.went_back = []
        self.reads = 0
        self.failed_reads = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                read = self.consumer.committed(self.wanted, timeout=5)
            except KafkaException:
                self.failed_reads += 1
                continue
            self.reads += 1
            for tp in read:
                if tp.error is not None or tp.offset < 0:
                    continue
                before = self.highest.get(tp.partition, -1)
                if tp.offset < before:
                    self.went_back.append((tp.partition, before, tp.offset))
                self.highest[tp.partition] = max(before, tp.offset)
            self.stop.wait(0.25)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.consumer.close()


def check_assignments(members, partitions):
    """No partition owned by two members at one member epoch; the answers
    together cover every partition. Returns (epochs seen, owner changes)."""
    owners = {}
    for member in members:
        for _, epoch, assignment in member.history:
            for tp in assignment:
                owners.setdefault((epoch, tp), set()).add(member.name)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    assert not shared, f"partitions owned by two members at one epoch: {sorted(shared.items())[:5]}"
    covered = frozenset(tp for (_, tp) in owners)
    assert covered == partitions, f"never assigned: {sorted(partitions - covered)}"
    return len({epoch for (epoch, _) in owners})


def deliveries(members, acked, topic):
    """(times each acknowledged record was delivered, records delivered that
    were never produced) over every member."""
    seen = {}
    for member in members:
        for t, p, o, key, value in member.delivered:
            assert t == topic, (t, topic)
            assert (p, o) in acked, f"{member.name} got {t}/{p}@{o}, never acknowledged"
            assert acked[(p, o)] == (key, value), (acked[(p, o)], key, value)
            seen[(p, o)] = seen.get((p, o), 0) + 1
    return seen


def group_consumption(bootstrap, urls, group, victim_pid=None, victim_node=None, crash_member=False):
    """The body of `share`, `agent_kill` and `member_kill`."""
    stats = Stats()
    tag = uuid.uuid4().hex[:8]
    topic = f"hg-{tag}"
    partition_count = 12
    partitions = frozenset((topic, p) for p in range(partition_count))
    gateway = Gateway(urls, stats)
    create_topic(gateway, topic, partition_count)
    started = time.monotonic()
    slow = victim_pid is not None or crash_member
    members, stop, failures = start_members(
        3, urls, stats, group, {"topics": [topic]},
        crash_first_after=40 if crash_member else None, max_records=10 if slow else 50,
        pause=0.05 if slow else 0.0)
    wait_until("three members sharing the 12 partitions", MUST_HAPPEN, failures,
               lambda: settled(members, partitions))
    settled_s = time.monotonic() - started
    log(f"members settled after {settled_s:.2f} s: {[len(m.snapshot()[1]) for m in members]} partitions each")

    watcher = CommitWatcher(bootstrap, group, topic, partition_count) if victim_pid is not None else None
    total = 1200
    produce_started = time.monotonic()
    acked = produce(bootstrap, topic, total)
    produced_s = time.monotonic() - produce_started

    def delivered_count():
        return len({(p, o) for m in members for (_, p, o, _, _) in list(m.delivered)})

    killed_at = None
    if victim_pid is not None:
        wait_until("a third of the records delivered", MUST_HAPPEN, failures, lambda: delivered_count() >= total // 3)
        victim_led = sum(1 for leader in leaders(bootstrap, topic).values() if leader == victim_node)
        os.kill(victim_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        log(f"killed agent pid {victim_pid} (node {victim_node}, leading {victim_led} partitions) after "
            f"{delivered_count()} records delivered")

    reassigned_s = None
    if crash_member:
        crashed = members[0]
        wait_until("the member stopping", MUST_HAPPEN, failures, lambda: crashed.crashed)
        survivors = members[1:]
        reassigned_at = wait_until(
            "the crashed member's partitions owned by the others", MUST_HAPPEN, failures,
            lambda: time.monotonic() if frozenset().union(*(m.snapshot()[1] for m in survivors)) == partitions
            else None)
        # The first answer of the survivors showing every partition owned.
        reassigned_at = min(
            (t for m in survivors for (t, _, a) in m.history
             if t > crashed.last_poll_at
             and frozenset().union(a, *(latest_before(o, t) for o in survivors if o is not m)) == partitions),
            default=reassigned_at)
        reassigned_s = reassigned_at - crashed.last_poll_at
        log(f"every partition owned again {reassigned_s:.2f} s after the crashed member's last poll")

    wait_until(f"all {total} records delivered", MUST_HAPPEN, failures,
               lambda: set(acked) <= {(p, o) for m in members for (_, p, o, _, _) in list(m.delivered)})
    consumed_s = time.monotonic() - produce_started
    stop.set()
    for member in members:
        member.thread.join(MUST_HAPPEN)
        assert not member.thread.is_alive(), f"{member.name} never finished"
    check_failures(failures)
    if watcher is not None:
        watcher.close()

    seen = deliveries(members, acked, topic)
    missing = [k for k in acked if k not in seen]
    assert not missing, f"{len(missing)} records never delivered: {sorted(missing)[:5]}"
    duplicates = sum(n - 1 for n in seen.values())
    epochs = check_assignments(members, partitions)

    committed, ends = committed_offsets(bootstrap, group, topic, partition_count)
    assert committed == ends, f"committed {committed} != ends {ends}"
    for member in members:
        for (t, p), offset in member.committed.items():
            assert committed[p] >= offset, f"{member.name} committed {t}/{p}@{offset}, the group holds {committed[p]}"
    assert stats.get("http_404") == 0 and not stats.not_found, f"404 answers: {stats.not_found}"
    assert stats.get("http_500") == 0, "500 answers"

    result = {
        "scenario": None,
        "group": group,
        "topic": topic,
        "produced": len(acked),
        "delivered": sum(seen.values()),
        "delivered_unique": len(seen),
        "duplicates": duplicates,
        "partitions": len(partitions),
        "epochs_owning": epochs,
        "committed_at_end": sum(1 for p in ends if committed[p] == ends[p]),
        "not_found": stats.get("http_404"),
        "fenced": sum(m.fenced for m in members),
        "rejoins": sum(m.rejoins for m in members),
        "polls": sum(m.polls for m in members),
        "requests": stats.get("requests"),
        "connection_retries": stats.get("connection_retries"),
        "timeout_retries": stats.get("timeout_retries"),
        "unavailable_retries": stats.get("unavailable_retries"),
        "settled_s": round(settled_s, 3),
        "produced_s": round(produced_s, 3),
        "consumed_s": round(consumed_s, 3),
        "per_member": {m.name: len(m.delivered) for m in members},
    }
    if watcher is not None:
        assert not watcher.went_back, f"committed offsets went back: {watcher.went_back[:5]}"
        result.update({
            "commit_reads": watcher.reads,
            "commit_read_failures": watcher.failed_reads,
            "commits_went_back": len(watcher.went_back),
            "victim_led_partitions": victim_led,
            "recovered_s": round(consumed_s - (killed_at - produce_started), 3),
        })
    if reassigned_s is not None:
        result["reassigned_s"] = round(reassigned_s, 3)
        result["session_timeout_ms"] = SESSION_TIMEOUT_MS
    return result


def latest_before(member, t):
    """The member's assignment as of time `t` (empty before its first answer)."""
    assignment = frozenset()
    for at, _, a in member.history:
        if at > t:
            break
        assignment = a
    return assignment


def scenario_share(bootstrap, urls):
    result = group_consumption(bootstrap, urls, f"hg-share-{uuid.uuid4().hex[:8]}")
    assert result["duplicates"] == 0, f"{result['duplicates']} records delivered twice with no failure"
    assert result["fenced"] == 0 and result["rejoins"] == 0, result
    result["scenario"] = "share"
    print(f"RESULT {json.dumps(result)}")


def scenario_agent_kill(bootstrap, group, victim_pid, victim_node, urls):
    result = group_consumption(bootstrap, urls, group, victim_pid=victim_pid, victim_node=victim_node)
    result["scenario"] = "agent_kill"
    print(f"RESULT {json.dumps(result)}")


def scenario_member_kill(bootstrap, urls):
    result = group_consumption(bootstrap, urls, f"hg-crash-{uuid.uuid4().hex[:8]}", crash_member=True)
    result["scenario"] = "member_kill"
    print(f"RESULT {json.dumps(result)}")


def scenario_bad_input(bootstrap, urls):
    stats = Stats()
    gateway = Gateway(urls, stats)
    tag = uuid.uuid4().hex[:8]
    topic = f"hg-bad-{tag}"
    group = f"hg-bad-{tag}"
    create_topic(gateway, topic, 2)
    members_path = f"/v1/groups/{group}/members"
    joined = expect(gateway.call("POST", members_path, json={"topics": [topic], "session_timeout_ms": 6000}), 201,
                    "a member joins")
    member = joined["member_id"]
    epoch = joined["member_epoch"]
    cursor = joined["cursor"]
    member_path = f"{members_path}/{member}"
    checks = 0

    def refused(method, path, status, code, what, **kwargs):
        nonlocal checks
        error = expect_error(gateway.call(method, path, **kwargs), status, code, what)
        checks += 1
        return error

    poll = f"{member_path}/poll"
    refused("POST", poll, 400, "BAD_REQUEST", "a garbage cursor", json={"member_epoch": epoch, "cursor": "!!garbage!!"})
    refused("POST", poll, 400, "BAD_REQUEST", "a cursor of another encoding",
            json={"member_epoch": epoch, "cursor": "djE6MD0x"})
    refused("POST", f"{member_path}/commit", 400, "BAD_REQUEST", "a garbage cursor to commit",
            json={"member_epoch": epoch, "cursor": "%%%"})
    refused("POST", poll, 400, "BAD_REQUEST", "member_epoch a string", json={"member_epoch": "x", "cursor": cursor})
    refused("POST", poll, 400, "BAD_REQUEST", "no member_epoch", json={"cursor": cursor})
    refused("POST", poll, 400, "BAD_REQUEST", "max_records negative",
            json={"member_epoch": epoch, "cursor": cursor, "max_records": -1})
    refused("POST", poll, 400, "BAD_REQUEST", "an unknown field",
            json={"member_epoch": epoch, "cursor": cursor, "autocommit": True})
    refused("POST", poll, 400, "BAD_REQUEST", "not JSON", data=b"{member_epoch: 1",
            headers={"Content-Type": "application/json"})
    refused("POST", members_path, 400, "BAD_REQUEST", "topics not a list", json={"topics": topic})
    refused("POST", members_path, 400, "BAD_REQUEST", "topics a list of numbers", json={"topics": [1, 2]})
    refused("POST", members_path, 400, "BAD_REQUEST", "session_timeout_ms a string",
            json={"topics": [topic], "session_timeout_ms": "6000"})
    refused("POST", members_path, 415, "UNSUPPORTED_MEDIA_TYPE", "a join without a content type",
            data=json.dumps({"topics": [topic]}).encode())
    refused("POST", poll, 415, "UNSUPPORTED_MEDIA_TYPE", "a poll without a content type",
            data=json.dumps({"member_epoch": epoch, "cursor": cursor}).encode())
    refused("POST", poll, 415, "UNSUPPORTED_MEDIA_TYPE", "a poll as text/plain",
            data=json.dumps({"member_epoch": epoch, "cursor": cursor}).encode(), headers={"Content-Type": "text/plain"})
    refused("POST", f"{members_path}/no-such-member/poll", 404, "UNKNOWN_MEMBER_ID", "an unknown member polls",
            json={"member_epoch": 1, "cursor": cursor})
    refused("POST", f"/v1/groups/hg-nobody-{tag}/members/no-such-member/poll", 404, "UNKNOWN_MEMBER_ID",
            "a member of a group that never existed polls", json={"member_epoch": 1})
    refused("POST", f"{members_path}/no-such-member/commit", 404, "UNKNOWN_MEMBER_ID", "an unknown member commits",
            json={"member_epoch": 1, "cursor": cursor})
    stale = refused("POST", f"{member_path}/commit", 409, "STALE_MEMBER_EPOCH", "a commit at an earlier epoch",
                    json={"member_epoch": epoch - 1, "cursor": cursor})
    assert stale["kafka_error_code"] == 113, stale
    refused("POST", members_path, 400, "INVALID_REGULAR_EXPRESSION", "an invalid regular expression",
            json={"pattern": "hg-bad-(["})
    refused("POST", members_path, 400, "UNSUPPORTED_ASSIGNOR", "an unknown assignor",
            json={"topics": [topic], "assignor": "round-robin-please"})
    refused("POST", members_path, 400, "INVALID_SESSION_TIMEOUT", "a 10 ms session",
            json={"topics": [topic], "session_timeout_ms": 10})
    refused("POST", members_path, 400, "BAD_REQUEST", "a join with neither topics nor a pattern", json={})
    refused("POST", members_path, 400, "BAD_REQUEST", "a join with only a session timeout",
            json={"session_timeout_ms": 6000})
    refused("POST", f"{member_path}/commit", 400, "BAD_REQUEST", "a commit with a cursor and offsets",
            json={"member_epoch": epoch, "cursor": cursor, "offsets": []})
    refused("POST", f"{member_path}/commit", 400, "BAD_REQUEST", "a negative offset",
            json={"member_epoch": epoch, "offsets": [{"topic": topic, "partition": 0, "offset": -5}]})

    # Still a member, still working: the first member polls; a new member
    # joins and reads what is produced, then both leave.
    expect(gateway.call("POST", poll, json={"member_epoch": epoch, "cursor": cursor, "auto_commit": True}), 200,
           "the first member polls after the refusals")
    expect(gateway.call("DELETE", member_path), 204, "the first member leaves")
    refused("POST", poll, 404, "UNKNOWN_MEMBER_ID", "a member that left polls", json={"member_epoch": epoch})
    stop = threading.Event()
    failures = []
    reader = Member("reader", urls, stats, group, {"topics": [topic]}, stop, failures)
    reader.join()
    acked = produce(bootstrap, topic, 20, prefix="after-")
    deadline = time.monotonic() + MUST_HAPPEN
    while {(p, o) for (_, p, o, _, _) in reader.delivered} != set(acked):
        assert time.monotonic() < deadline, f"the reader got {len(reader.delivered)} of {len(acked)}"
        reader.poll()
    assert sorted((p, o) for (_, p, o, _, _) in reader.delivered) == sorted(acked), "read twice"
    reader.finish()
    committed, ends = committed_offsets(bootstrap, group, topic, 2)
    assert committed == ends, (committed, ends)
    result = {"scenario": "bad_input", "refusals": checks, "read_after": len(reader.delivered),
              "http_500": stats.get("http_500"), "committed_at_end": sum(1 for p in ends if committed[p] == ends[p])}
    assert result["http_500"] == 0
    print(f"RESULT {json.dumps(result)}")


def scenario_pattern(bootstrap, urls):
    stats = Stats()
    gateway = Gateway(urls, stats)
    tag = uuid.uuid4().hex[:8]
    prefix = f"hg-pat-{tag}"
    before, after, other = f"{prefix}-before", f"{prefix}-after", f"hg-other-{tag}"
    create_topic(gateway, before, 2)
    early = produce(bootstrap, before, 4, prefix="early-")
    stop = threading.Event()
    failures = []
    member = Member("pat", urls, stats, f"hg-pat-{tag}", {"pattern": f"{prefix}-.*"}, stop, failures)
    member.join()
    want_before = frozenset((before, p) for p in range(2))
    deadline = time.monotonic() + MUST_HAPPEN
    while member.assignment != want_before or len(member.delivered) < len(early):
        assert time.monotonic() < deadline, f"{member.assignment}, {len(member.delivered)} records"
        member.poll()
    polls_at_created = member.polls
    create_topic(gateway, other, 2)
    create_topic(gateway, after, 3)
    created_at = time.monotonic()
    want = want_before | frozenset((after, p) for p in range(3))
    while member.assignment != want:
        assert time.monotonic() < created_at + MUST_HAPPEN, f"{sorted(member.assignment)} after {member.polls} polls"
        member.poll()
        assert not any(t == other for (t, _) in member.assignment), member.assignment
    assigned_s = time.monotonic() - created_at
    polls_until_assigned = member.polls - polls_at_created
    late = produce(bootstrap, after, 6, prefix="late-")
    produce(bootstrap, other, 3, prefix="other-")
    deadline = time.monotonic() + MUST_HAPPEN
    while len({(t, p, o) for (t, p, o, _, _) in member.delivered if t == after}) < len(late):
        assert time.monotonic() < deadline, len(member.delivered)
        member.poll()
    for _ in range(3):
        member.poll(wait_ms=200)
    topics = {t for (t, _, _, _, _) in member.delivered}
    assert topics == {before, after}, topics
    assert len(member.delivered) == len(early) + len(late), len(member.delivered)
    member.finish()
    result = {"scenario": "pattern", "assigned_s": round(assigned_s, 3), "polls_until_assigned": polls_until_assigned,
              "partitions": len(member.assignment), "read": len(member.delivered),
              "read_other": sum(1 for (t, _, _, _, _) in member.delivered if t == other),
              "not_found": stats.get("http_404")}
    assert result["not_found"] == 0, stats.not_found
    print(f"RESULT {json.dumps(result)}")


def read_events(response):
    """(event, id, data) of a Server-Sent Events response, as they come."""
    event, event_id, data = None, None, []
    for raw in response.iter_lines(decode_unicode=True):
        if raw is None:
            continue
        if raw == "":
            if event is not None or data:
                yield event or "message", event_id, "\n".join(data)
            event, event_id, data = None, None, []
        elif raw.startswith(":"):
            continue
        elif raw.startswith("event:"):
            event = raw[6:].strip()
        elif raw.startswith("id:"):
            event_id = raw[3:].strip()
        elif raw.startswith("data:"):
            data.append(raw[5:].strip())


def scenario_stream(bootstrap, urls):
    stats = Stats()
    gateway = Gateway(urls, stats)
    tag = uuid.uuid4().hex[:8]
    topic, group = f"hg-stream-{tag}", f"hg-stream-{tag}"
    create_topic(gateway, topic, 6)
    acked = produce(bootstrap, topic, 300, prefix="a-")
    member_id = f"sse-{tag}"
    joined = expect(gateway.call("POST", f"/v1/groups/{group}/members",
                                 json={"member_id": member_id, "topics": [topic],
                                       "session_timeout_ms": SESSION_TIMEOUT_MS}), 201, "the stream member joins")
    query = {"member_epoch": joined["member_epoch"], "cursor": joined["cursor"], "auto_commit": "true",
             "heartbeat_ms": 500}
    response = requests.get(f"{urls[0]}/v1/groups/{group}/members/{member_id}/records", params=query,
                            headers={"Accept": "text/event-stream"}, stream=True, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream"), response.headers
    streamed, member_events, errors = [], [], []
    closing = threading.Event()

    def consume_stream():
        try:
            for event, event_id, data in read_events(response):
                if closing.is_set():
                    return
                body = json.loads(data) if data else None
                if event == "record":
                    assert event_id, "a record event has the cursor as its id"
                    streamed.append((body["topic"], body["partition"], body["offset"], body["key"], body["value"]))
                elif event == "member":
                    member_events.append(body)
                elif event == "error":
                    errors.append(body)
                    return
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError, AttributeError):
            if not closing.is_set():
                raise

    reader = threading.Thread(target=consume_stream, daemon=True)
    reader.start()
    wait_until("the stream delivers 100 records", MUST_HAPPEN, errors, lambda: len(streamed) >= 100)
    assert member_events and member_events[0]["member_id"] == member_id, member_events
    # A polling member joins: the stream gives up half of the partitions.
    stop, failures = threading.Event(), []
    poller = Member("poller", urls, stats, group, {"topics": [topic]}, stop, failures)
    poller.thread.start()
    wait_until("the stream gives partitions up", MUST_HAPPEN, failures,
               lambda: any(e["revoked"] for e in member_events))
    wait_until("the poller owns its half", MUST_HAPPEN, failures, lambda: len(poller.assignment) == 3)
    acked.update(produce(bootstrap, topic, 300, prefix="b-"))

    def all_delivered():
        got = {(p, o) for (_, p, o, _, _) in streamed} | {(p, o) for (_, p, o, _, _) in poller.delivered}
        return len(got) >= len(acked)

    wait_until("every record is delivered", MUST_HAPPEN, failures + errors, all_delivered)
    time.sleep(1)
    stop.set()
    poller.thread.join(timeout=MUST_HAPPEN)
    check_failures(failures)
    closing.set()
    response.close()
    assert not errors, errors
    every = [(p, o) for (_, p, o, _, _) in streamed] + [(p, o) for (_, p, o, _, _) in poller.delivered]
    twice = sorted(tp for tp in set(every) if every.count(tp) > 1)
    assert not twice, f"delivered twice: {twice[:10]}"
    assert sorted(every) == sorted(acked), (len(every), len(acked))
    for (_, p, o, key, value) in streamed + poller.delivered:
        assert acked[(p, o)] == (key, value), (p, o, key, value)
    revoked = sorted({(tp["topic"], tp["partition"]) for e in member_events for tp in e["revoked"]})
    result = {"scenario": "stream", "streamed": len(streamed), "polled": len(poller.delivered),
              "member_events": len(member_events), "revoked": len(revoked), "not_found": stats.get("http_404")}
    assert result["not_found"] == 0, stats.not_found
    print(f"RESULT {json.dumps(result)}")


def main():
    scenario, bootstrap = sys.argv[1], sys.argv[2]
    if scenario == "share":
        scenario_share(bootstrap, sys.argv[3:])
    elif scenario == "agent_kill":
        scenario_agent_kill(bootstrap, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])
    elif scenario == "member_kill":
        scenario_member_kill(bootstrap, sys.argv[3:])
    elif scenario == "bad_input":
        scenario_bad_input(bootstrap, sys.argv[3:])
    elif scenario == "pattern":
        scenario_pattern(bootstrap, sys.argv[3:])
    elif scenario == "stream":
        scenario_stream(bootstrap, sys.argv[3:])
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
