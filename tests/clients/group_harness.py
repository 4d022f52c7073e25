"""Consumer-group scenarios with real clients against a Fjord agent.

Usage: group_harness.py SCENARIO BOOTSTRAP [--client C] [--client-b C] [--assignor A]
  clients: confluent, confluent-consumer, kafka-python, aiokafka, kafkajs
  (confluent-consumer: confluent-kafka with the KIP-848 consumer group
  protocol; its --assignor is the broker's, uniform (default) or range)

Each member is a separate process (tests/clients/group_member.py, or
tests/clients/node/group_member.js for kafkajs) reporting its assignments,
records and commits as JSON lines; this script drives membership changes,
produces with confluent-kafka, checks exact outcomes and exits non-zero on the
first failed check. The last stdout line is `RESULT {json}`: counts and the
rebalance times measured (from a membership change to the moment every member
has its new assignment, by the members' own event timestamps). The same
scenario reports the same timing labels whichever protocol its members speak,
and RESULT names the protocols, so classic and KIP-848 runs compare directly.

Before a KIP-848 member starts, the harness checks that the broker advertises
ConsumerGroupHeartbeat (API key 68) and fails at once if not; RESULT records
the broker's version ranges of the group APIs. FJORD_GROUP_DEBUG (librdkafka
debug contexts, e.g. `cgrp,protocol`) turns on the confluent members' debug log,
and a failure then shows more of each member's stderr.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PARTITIONS = 12
WAIT_SECONDS = 90
# The client that speaks the KIP-848 consumer group protocol.
CONSUMER_PROTOCOL_CLIENT = "confluent-consumer"
# Group API keys whose version ranges RESULT records.
GROUP_APIS = {
    "OffsetCommit": 8,
    "OffsetFetch": 9,
    "JoinGroup": 11,
    "ListGroups": 16,
    "ConsumerGroupHeartbeat": 68,
    "ConsumerGroupDescribe": 69,
}
STDERR_TAIL = 60000 if os.environ.get("FJORD_GROUP_DEBUG") else 4000
# How long the assignments of consumer-protocol members must stay unchanged
# before a state where every partition has one owner counts as settled: the
# protocol moves partitions in steps (one member revokes, on a later heartbeat
# another gets them), so a complete but unbalanced state can be a step on the
# way. 2.5 heartbeat intervals of the agent the tests run (1 s).
INCREMENTAL_QUIET_SECONDS = 2.5


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


class Member:
    """A member process and what it reported."""

    def __init__(self, harness, client, name, group, extra):
        self.harness = harness
        self.client = client
        self.name = name
        self.group = group
        self.assignment = None  # None until the first "assigned": partitions of the topic
        self.tps = frozenset()  # its (topic, partition)s of every topic
        self.assigned_at = []  # (t, parts) for every "assigned"
        self.closed = False
        self.alive = True
        self.stderr = tempfile.TemporaryFile(mode="w+")
        if client == "kafkajs":
            command = ["node", os.path.join(HERE, "node", "group_member.js")]
            command += [harness.bootstrap, group, harness.topic, name]
        else:
            command = [sys.executable, os.path.join(HERE, "group_member.py"), client]
            command += [harness.bootstrap, group, harness.topic, name]
        command += extra
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.harness.note(f"{self.name}: unparsable output {line!r}")
                continue
            self.harness.on_event(self, event)
        with self.harness.changed:
            self.alive = False
            self.harness.changed.notify_all()

    def send(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def stop(self):
        """A graceful close (the client leaves the group, unless static)."""
        self.process.stdin.write("stop\n")
        self.process.stdin.flush()
        self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        check(self.closed, f"{self.name} did not close cleanly: {self.stderr_text()}")

    def kill(self):
        """SIGKILL: no leave, no commit."""
        self.process.kill()
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read()[-STDERR_TAIL:]


class Harness:
    def __init__(self, bootstrap, topic, assignor=None):
        self.bootstrap = bootstrap
        self.topic = topic
        self.assignor_override = assignor
        self.api_versions = None  # the broker's, once a KIP-848 member needed them
        self.changed = threading.Condition()
        self.members = []
        self.deliveries = {}  # (p, o) -> [(member, t)], records of self.topic
        self.other_deliveries = {}  # (topic, p, o) -> [(member, t)], of other topics
        self.commits = {}  # group -> [(t, member, {p: next})]
        self.foreign = []  # deliveries of partitions the member did not own
        self.notes = []
        self.produced = []
        self.other_produced = []  # (topic, p, o) produced to topics besides self.topic
        self.timings = {}
        # Set once a scenario's checks are done: records members receive while
        # the harness shuts them down are not part of the scenario.
        self.finished = False

    def note(self, text):
        with self.changed:
            self.notes.append(text)

    def on_event(self, member, event):
        with self.changed:
            kind = event.get("ev")
            if kind == "assigned":
                parts = frozenset(event["parts"])
                member.assignment = parts
                if "tps" in event:
                    member.tps = frozenset((t, p) for t, p in event["tps"])
                else:
                    member.tps = frozenset((self.topic, p) for p in parts)
                member.assigned_at.append((event["t"], parts))
            elif kind == "rec":
                if self.finished:
                    return
                topic = event.get("topic", self.topic)
                if topic != self.topic:
                    key = (topic, event["p"], event["o"])
                    self.other_deliveries.setdefault(key, []).append((member.name, event["t"]))
                    if (topic, event["p"]) not in member.tps:
                        self.foreign.append((member.name, key))
                    self.changed.notify_all()
                    return
                key = (event["p"], event["o"])
                self.deliveries.setdefault(key, []).append((member.name, event["t"]))
                if member.assignment is None or event["p"] not in member.assignment:
                    self.foreign.append((member.name, key))
            elif kind == "commit":
                offsets = {int(p): o for p, o in event["offsets"].items()}
                self.commits.setdefault(member.group, []).append((event["t"], member.name, offsets))
            elif kind == "closed":
                member.closed = True
            else:
                self.notes.append(f"{member.name}: {event}")
            self.changed.notify_all()

    def start(self, client, name, group, *extra):
        if client == CONSUMER_PROTOCOL_CLIENT:
            self.require_consumer_protocol()
        member = Member(self, client, name, group, list(extra))
        with self.changed:
            self.members.append(member)
        return member

    def wait_for(self, what, predicate, timeout=WAIT_SECONDS):
        deadline = time.time() + timeout
        with self.changed:
            while True:
                result = predicate()
                if result:
                    return result
                # A member that exited on its own (not closed by us, not killed).
                dead = [m.name for m in self.members
                        if not m.alive and not m.closed and m.process.poll() not in (None, -9)]
                if dead:
                    raise Failure(f"while waiting for {what}: member(s) {dead} died:\n" + "\n".join(
                        m.stderr_text() for m in self.members if m.name in dead))
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise Failure(f"timed out waiting for {what}; {self.describe()}")
                self.changed.wait(min(remaining, 0.5))

    def describe(self):
        lines = []
        for m in self.members:
            parts = sorted(m.assignment) if m.assignment is not None else None
            lines.append(f"{m.name}[{m.group}] alive={m.alive} assignment={parts}")
        delivered = len(self.deliveries)
        lines.append(f"distinct records delivered: {delivered}, produced: {len(self.produced)}")
        lines.extend(self.notes[-20:])
        return "\n  " + "\n  ".join(lines)

    # ----- protocol -----

    def assignor(self, client):
        """The assignor a scenario's members use unless it needs a specific
        one: --assignor if given, else the client's default."""
        if self.assignor_override:
            return self.assignor_override
        return default_assignor(client)

    def require_consumer_protocol(self):
        """Fails at once, naming what the broker offers, if it does not
        advertise ConsumerGroupHeartbeat: librdkafka would otherwise retry
        quietly (it logs "ConsumerGroupHeartbeatRequest not supported by
        broker" at debug level only) until the scenario times out."""
        if self.api_versions is not None:
            return
        from kafka import KafkaClient

        client = KafkaClient(bootstrap_servers=self.bootstrap, client_id="group-harness")
        try:
            deadline = time.time() + 30
            versions = client.get_api_versions()
            while not versions and time.time() < deadline:
                client.poll(timeout_ms=200)
                versions = client.get_api_versions()
        finally:
            client.close()
        check(versions, "no ApiVersions from the broker")
        self.api_versions = {name: list(versions[key]) for name, key in GROUP_APIS.items() if key in versions}
        print(f"broker group API versions: {self.api_versions}", flush=True)
        check(GROUP_APIS["ConsumerGroupHeartbeat"] in versions,
              "the broker does not support the consumer group protocol (KIP-848): ApiVersions has no "
              f"ConsumerGroupHeartbeat (key 68); it lists keys {sorted(versions)}")

    # ----- membership -----

    def settled(self, members, since, must_report=True):
        """When `members` own every partition exactly once (each at least one),
        the time the last of them got its assignment (after `since`); else None."""
        if any(m.assignment is None or not m.alive for m in members):
            return None
        owned = [p for m in members for p in m.assignment]
        if sorted(owned) != list(range(PARTITIONS)):
            return None
        if any(not m.assignment for m in members):
            return None
        times = [t for m in members for (t, _) in m.assigned_at if t >= since]
        if must_report and any(not any(t >= since for (t, _) in m.assigned_at) for m in members):
            return None
        return max(times) if times else since

    def settled_quietly(self, members, since, must_report=True):
        """As `settled`; for consumer-protocol members also only once no member
        has reported an assignment for INCREMENTAL_QUIET_SECONDS (the time
        returned is still that of the last assignment)."""
        done = self.settled(members, since, must_report)
        if done is None or all(eager(m.client) for m in members):
            return done
        last = max((t for m in members for (t, _) in m.assigned_at), default=since)
        if time.time() - last < INCREMENTAL_QUIET_SECONDS:
            return None
        return done

    def wait_settled(self, label, members, since, must_report=True):
        done = self.wait_for(
            f"{label}: {[m.name for m in members]} to own all {PARTITIONS} partitions",
            lambda: self.settled_quietly(members, since, must_report),
        )
        seconds = round(done - since, 3)
        if label:
            self.timings[label] = seconds
            print(f"rebalance {label}: {seconds:.3f} s", flush=True)
        return seconds

    # ----- data -----

    def create_topic(self, topic=None):
        """Creates the scenario's topic, or `topic`, with PARTITIONS partitions."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(topic or self.topic, num_partitions=PARTITIONS, replication_factor=1)])
        for future in futures.values():
            future.result(timeout=30)

    def produce(self, per_partition, topic=None):
        """Produces `per_partition` records to each partition of the scenario's
        topic (recorded in `produced` as (p, o)), or of `topic` (recorded in
        `other_produced` as (topic, p, o))."""
        from confluent_kafka import Producer

        topic = topic or self.topic
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5})
        failures = []

        def delivered(error, message):
            if error is not None:
                failures.append(str(error))
                return
            with self.changed:
                if topic == self.topic:
                    self.produced.append((message.partition(), message.offset()))
                else:
                    self.other_produced.append((topic, message.partition(), message.offset()))

        for partition in range(PARTITIONS):
            for i in range(per_partition):
                producer.produce(topic, value=f"{partition}:{i}".encode(), partition=partition, on_delivery=delivered)
        remaining = producer.flush(60)
        check(remaining == 0 and not failures, f"produce to {topic} failed: {remaining} undelivered, {failures[:3]}")

    def wait_consumed(self, label="all produced records"):
        expected = set(self.produced)
        self.wait_for(label, lambda: expected <= set(self.deliveries))

    # ----- checks -----

    def check_exactly_once(self, members):
        """Every produced record reached exactly one member, once, and only the
        member that owned its partition."""
        expected = set(self.produced)
        delivered = set(self.deliveries)
        check(delivered == expected, f"delivered {len(delivered)} distinct records, produced {len(expected)}")
        duplicates = {k: v for k, v in self.deliveries.items() if len(v) > 1}
        check(not duplicates, f"{len(duplicates)} records delivered more than once, e.g. {list(duplicates.items())[:3]}")
        check(not self.foreign, f"records delivered to members not owning the partition: {self.foreign[:5]}")
        per_member = {m.name: 0 for m in members}
        for deliveries in self.deliveries.values():
            per_member[deliveries[0][0]] += 1
        check(all(count > 0 for count in per_member.values()), f"a member received nothing: {per_member}")
        return per_member

    def check_no_loss_and_bounded_redeliveries(self, group):
        """Every produced record was delivered; a record delivered again was, at
        that moment, not covered by a committed offset (redeliveries are limited
        to uncommitted offsets). Returns the number of redeliveries."""
        expected = set(self.produced)
        missing = expected - set(self.deliveries)
        check(not missing, f"{len(missing)} records never delivered, e.g. {sorted(missing)[:5]}")
        commits = self._commits_in_order(group)
        redeliveries = 0
        for (partition, offset), deliveries in self.deliveries.items():
            for member, t in deliveries[1:]:
                redeliveries += 1
                committed = max(
                    (c[2][partition] for c in commits if c[0] < t and partition in c[2]),
                    default=0,
                )
                check(
                    offset >= committed,
                    f"record {partition}/{offset} redelivered to {member} although offset {committed} was committed",
                )
        return redeliveries

    def _commits_in_order(self, group):
        """A group's commits by time, then member; ties keep the order they were
        reported in (two commits of one member can share a millisecond, and
        their offset maps do not compare)."""
        return sorted(self.commits.get(group, []), key=lambda c: (c[0], c[1]))

    def committed_offsets(self, group):
        """The group's last committed offsets, as the members reported them."""
        last = {}
        for _, _, offsets in self._commits_in_order(group):
            last.update(offsets)
        return last

    def deliveries_to(self, members):
        """Every delivery of a record of the topic to one of `members`, as (p, o)."""
        names = {m.name for m in members}
        return [key for key, deliveries in self.deliveries.items() for name, _ in deliveries if name in names]

    # ----- the broker's view -----

    def describe_group(self, group):
        """The group as confluent-kafka's AdminClient describes it: librdkafka
        asks with ConsumerGroupDescribe (KIP-848) where the broker has it, and
        with DescribeGroups for classic groups."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        future = admin.describe_consumer_groups([group], request_timeout=30)[group]
        try:
            return future.result(timeout=60)
        except (KafkaException, TimeoutError) as error:
            raise Failure(f"describing group {group} failed: {error!r}") from error

    def broker_committed(self, group):
        """The group's committed offsets of the topic as the broker has them
        (OffsetFetch through confluent-kafka's AdminClient), {p: offset}."""
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(self.topic, p) for p in range(PARTITIONS)])
        future = admin.list_consumer_group_offsets([request], request_timeout=30)[group]
        try:
            listed = future.result(timeout=60)
        except (KafkaException, TimeoutError) as error:
            raise Failure(f"fetching the offsets of group {group} failed: {error!r}") from error
        return {tp.partition: tp.offset for tp in listed.topic_partitions if tp.offset >= 0}

    def finish(self):
        """The scenario's checks are done: stop counting deliveries."""
        with self.changed:
            self.finished = True

    def result(self, **fields):
        """Prints the outcome: `COUNT name value` lines (integers), `TIMING
        label: seconds` lines, then `RESULT {json}` with everything."""
        fields["timings"] = self.timings
        fields["protocols"] = sorted({
            "consumer" if m.client == CONSUMER_PROTOCOL_CLIENT else "classic" for m in self.members})
        if self.api_versions is not None:
            fields["broker_group_api_versions"] = self.api_versions
        fields["produced"] = len(self.produced)
        fields["distinct_delivered"] = len(self.deliveries)
        fields["deliveries"] = sum(len(v) for v in self.deliveries.values())
        for name, value in sorted(fields.items()):
            if isinstance(value, int) and not isinstance(value, bool):
                print(f"COUNT {name} {value}", flush=True)
        for label, seconds in self.timings.items():
            print(f"TIMING {label}: {seconds:.3f}", flush=True)
        print("RESULT " + json.dumps(fields, sort_keys=True), flush=True)

    def shutdown(self):
        for m in self.members:
            if m.process.poll() is None:
                m.process.kill()
                m.process.wait()


def options(client, assignor="range", commit_every=0, commit_on_close=False, instance=None):
    extra = []
    if client != "kafkajs":
        extra += ["--assignor", assignor]
        if instance:
            extra += ["--instance-id", instance]
    if commit_every:
        extra += ["--commit-every", str(commit_every)]
    if commit_on_close:
        extra += ["--commit-on-close"]
    return extra


def default_assignor(client):
    if client == CONSUMER_PROTOCOL_CLIENT:
        return "uniform"  # the broker's default (group.consumer.assignors)
    return "roundrobin" if client == "kafkajs" else "range"


def eager(client):
    """Whether every member reports a new assignment at every rebalance (the
    classic protocol's eager assignors revoke everything and assign anew). With
    the consumer protocol a member the change does not touch reports nothing;
    the settled state (every partition owned exactly once) is then what marks
    the end of the rebalance."""
    return client != CONSUMER_PROTOCOL_CLIENT


# ----- scenarios -----


def three_members(h, client, clients=None):
    """Three members over 12 partitions: each record reaches exactly one member."""
    clients = clients or [client] * 3
    assignor = "roundrobin" if len(set(clients)) > 1 else h.assignor(client)
    h.create_topic()
    started = time.time()
    members = [h.start(c, f"{c}-{i}", "g", *options(c, assignor)) for i, c in enumerate(clients)]
    h.wait_settled("initial join of 3 members", members, started)
    sizes = sorted(len(m.assignment) for m in members)
    check(sizes == [4, 4, 4], f"12 partitions over 3 members should be 4 each, got {sizes}")
    h.produce(per_partition=30)
    h.wait_consumed()
    per_member = h.check_exactly_once(members)
    partitions = {m.name: sorted(m.assignment) for m in members}
    h.finish()
    for m in members:
        m.stop()
    h.result(scenario="three_members", clients=clients, per_member=per_member, partitions=partitions)


def leave_and_join(h, client):
    """A member leaves and another joins: partitions move, nothing is lost, and
    only uncommitted records are delivered again."""
    h.create_topic()
    started = time.time()
    a, b, c = (h.start(client, f"{client}-{n}", "g", *options(client, h.assignor(client), commit_every=7))
               for n in "abc")
    h.wait_settled("initial join of 3 members", [a, b, c], started)
    h.produce(per_partition=25)
    h.wait_consumed("phase 1 consumed")
    c_partitions = set(c.assignment)

    left = time.time()
    c.stop()
    h.wait_settled("member leaves (3 -> 2)", [a, b], left, must_report=eager(client))
    check(c_partitions <= set(a.assignment) | set(b.assignment), "the leaver's partitions moved")

    joined = time.time()
    d = h.start(client, f"{client}-d", "g", *options(client, h.assignor(client), commit_every=7))
    h.wait_settled("member joins (2 -> 3)", [a, b, d], joined, must_report=eager(client))
    check(len(d.assignment) > 0, "the new member got partitions")

    h.produce(per_partition=25)
    h.wait_consumed("phase 2 consumed")
    redelivered = h.check_no_loss_and_bounded_redeliveries("g")
    joiner_partitions = sorted(d.assignment)
    h.finish()
    for m in (a, b, d):
        m.stop()
    h.result(scenario="leave_and_join", client=client, redelivered=redelivered,
             moved_from_leaver=sorted(c_partitions), joiner_partitions=joiner_partitions)


def killed_member(h, client):
    """A member is killed: its partitions move once its session times out."""
    h.create_topic()
    started = time.time()
    a, b, c = (h.start(client, f"{client}-{n}", "g", *options(client, h.assignor(client), commit_every=7))
               for n in "abc")
    h.wait_settled("initial join of 3 members", [a, b, c], started)
    h.produce(per_partition=25)
    h.wait_consumed("phase 1 consumed")
    victim = set(c.assignment)
    killed = time.time()
    c.kill()
    seconds = h.wait_settled("member killed (session timeout 6 s)", [a, b], killed, must_report=eager(client))
    check(seconds >= 5.0, f"partitions moved {seconds} s after the kill, before the 6 s session timeout")
    check(victim <= set(a.assignment) | set(b.assignment), "the killed member's partitions moved")
    h.produce(per_partition=25)
    h.wait_consumed("phase 2 consumed")
    redelivered = h.check_no_loss_and_bounded_redeliveries("g")
    h.finish()
    for m in (a, b):
        m.stop()
    h.result(scenario="killed_member", client=client, redelivered=redelivered, moved=sorted(victim))


def restart_resumes(h, client):
    """A consumer restarts and resumes from its committed offsets."""
    h.create_topic()
    started = time.time()
    first = h.start(client, f"{client}-first", "g", *options(client, h.assignor(client), commit_on_close=True))
    h.wait_settled("initial join of 1 member", [first], started)
    h.produce(per_partition=20)
    h.wait_consumed("phase 1 consumed")
    first.stop()
    committed = h.committed_offsets("g")
    check(committed == {p: 20 for p in range(PARTITIONS)}, f"committed on close: {committed}")
    phase_one = set(h.deliveries)

    h.produce(per_partition=15)
    restarted_at = time.time()
    second = h.start(client, f"{client}-second", "g", *options(client, h.assignor(client), commit_on_close=True))
    h.wait_settled("restarted member joins", [second], restarted_at)
    h.wait_consumed("phase 2 consumed")
    time.sleep(1.0)  # anything re-delivered would arrive by now
    again = [k for k, v in h.deliveries.items() if any(name == second.name for name, _ in v) and k in phase_one]
    check(not again, f"the restarted member re-read {len(again)} committed records, e.g. {again[:5]}")
    second_count = sum(1 for v in h.deliveries.values() for name, _ in v if name == second.name)
    check(second_count == 15 * PARTITIONS, f"the restarted member read {second_count} records, expected {15 * PARTITIONS}")
    h.finish()
    second.stop()
    check(h.committed_offsets("g") == {p: 35 for p in range(PARTITIONS)}, "final commits")
    h.result(scenario="restart_resumes", client=client, first_read=len(phase_one), second_read=second_count)


def two_groups(h, client, client_b):
    """Two groups read the same topic independently; committed offsets and lag
    are per group."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    h.create_topic()
    started = time.time()
    g1 = [h.start(client, f"{client}-g1-{n}", "g1", *options(client, h.assignor(client)))
          for n in "ab"]
    g2 = [h.start(client_b, f"{client_b}-g2", "g2", *options(client_b, default_assignor(client_b), commit_every=7))]
    h.wait_settled("group g1 forms (2 members)", g1, started)
    h.wait_settled("group g2 forms (1 member)", g2, started)
    h.produce(per_partition=20)
    expected = set(h.produced)
    for group_members in (g1, g2):
        names = {m.name for m in group_members}
        h.wait_for(f"{names} consumed everything",
                   lambda: expected <= {k for k, v in h.deliveries.items() if any(n in names for n, _ in v)})
    time.sleep(1.0)
    per_group = {}
    for label, group_members in (("g1", g1), ("g2", g2)):
        names = {m.name for m in group_members}
        got = [k for k, v in h.deliveries.items() for n, _ in v if n in names]
        check(sorted(got) == sorted(expected), f"{label}: each record exactly once ({len(got)} deliveries)")
        per_group[label] = len(got)
    # g1 commits everything it read; g2 keeps what its cadence left uncommitted.
    for m in g1:
        m.send("commit")
    h.wait_for("g1 to commit everything",
               lambda: h.committed_offsets("g1") == {p: 20 for p in range(PARTITIONS)})
    h.finish()
    for m in g1 + g2:
        m.stop()

    # Lag as Kafka tools compute it: committed offsets (OffsetFetch) against the
    # log end (ListOffsets).
    admin = KafkaAdminClient(bootstrap_servers=h.bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=h.bootstrap)
    partitions = [TopicPartition(h.topic, p) for p in range(PARTITIONS)]
    ends = consumer.end_offsets(partitions)
    lag = {}
    for group in ("g1", "g2"):
        fetched = admin.list_consumer_group_offsets(group)
        reported = h.committed_offsets(group)
        lag[group] = {}
        for tp in partitions:
            committed = fetched[tp].offset if tp in fetched else -1
            check(committed == reported.get(tp.partition, -1),
                  f"{group} {tp}: broker has {committed}, the members committed {reported.get(tp.partition)}")
            lag[group][tp.partition] = ends[tp] - max(committed, 0)
    check(all(v == 0 for v in lag["g1"].values()), f"g1 committed everything: {lag['g1']}")
    g2_committed = sum(h.committed_offsets("g2").values())
    check(sum(lag["g2"].values()) == len(expected) - g2_committed,
          f"g2's lag is what it left uncommitted: {lag['g2']}, committed {g2_committed}")
    described = {d.group: d for d in admin.describe_consumer_groups(["g1", "g2"])}
    check(all(described[g].state == "Empty" for g in ("g1", "g2")), f"groups empty after leaving: {described}")
    listed = {g for g, _ in admin.list_consumer_groups()}
    check({"g1", "g2"} <= listed, f"listed groups: {listed}")
    admin.close()
    consumer.close()
    h.result(scenario="two_groups", clients=[client, client_b], per_group=per_group,
             lag={g: {str(p): v for p, v in lags.items()} for g, lags in lag.items()},
             total_lag={g: sum(v.values()) for g, v in lag.items()},
             g1_total_lag=sum(lag["g1"].values()), g2_total_lag=sum(lag["g2"].values()))


def cooperative(h, client):
    """cooperative-sticky: a join and a leave move only the partitions that must
    move; the others stay with their members throughout."""
    h.create_topic()
    started = time.time()
    opts = options(client, "cooperative-sticky", commit_every=7)
    a, b, c = (h.start(client, f"{client}-{n}", "g", *opts) for n in "abc")
    h.wait_settled("initial join of 3 members", [a, b, c], started)
    h.produce(per_partition=20)
    h.wait_consumed("phase 1 consumed")

    def revoked_since(member, since):
        """Partitions a member lost at some point after `since`."""
        lost = set()
        previous = None
        for t, parts in member.assigned_at:
            if previous is not None and t >= since:
                lost |= previous - parts
            previous = parts
        return lost

    before = {m.name: set(m.assignment) for m in (a, b, c)}
    joined = time.time()
    d = h.start(client, f"{client}-d", "g", *opts)
    h.wait_settled("cooperative join (3 -> 4)", [a, b, c, d], joined, must_report=False)
    sizes = sorted(len(m.assignment) for m in (a, b, c, d))
    check(sizes == [3, 3, 3, 3], f"12 partitions over 4 members: {sizes}")
    kept = {}
    for m in (a, b, c):
        now = set(m.assignment)
        check(now <= before[m.name], f"{m.name} gained partitions it did not have: {before[m.name]} -> {now}")
        check(revoked_since(m, joined) == before[m.name] - now,
              f"{m.name} lost more than the moved partitions: {revoked_since(m, joined)}")
        kept[m.name] = sorted(now)

    before = {m.name: set(m.assignment) for m in (a, b, d)}
    moved = set(c.assignment)
    left = time.time()
    c.stop()
    h.wait_settled("cooperative leave (4 -> 3)", [a, b, d], left, must_report=False)
    for m in (a, b, d):
        check(before[m.name] <= set(m.assignment), f"{m.name} lost partitions when another member left")
        check(not revoked_since(m, left), f"{m.name} had partitions revoked when another member left")
    h.produce(per_partition=20)
    h.wait_consumed("phase 2 consumed")
    redelivered = h.check_no_loss_and_bounded_redeliveries("g")
    h.finish()
    for m in (a, b, d):
        m.stop()
    h.result(scenario="cooperative", client=client, kept_on_join=kept, moved_on_leave=sorted(moved),
             redelivered=redelivered)


def static_members(h, client):
    """Static members (group.instance.id) restart without a rebalance."""
    h.create_topic()
    started = time.time()
    members = {n: h.start(client, f"{client}-{n}", "g",
                          *options(client, h.assignor(client), instance=f"instance-{n}", commit_every=5))
               for n in "abc"}
    h.wait_settled("initial join of 3 static members", list(members.values()), started)
    h.produce(per_partition=20)
    h.wait_consumed("phase 1 consumed")
    before = {n: set(m.assignment) for n, m in members.items()}
    events_before = {n: len(m.assigned_at) for n, m in members.items()}

    # Restart b: close (a static member does not leave) and start again with the
    # same instance id, well within the session timeout.
    restarted = time.time()
    members["b"].stop()
    b2 = h.start(client, f"{client}-b2", "g",
                 *options(client, h.assignor(client), instance="instance-b", commit_every=5))
    h.wait_for("the restarted static member's assignment", lambda: b2.assignment)
    rejoin = round(b2.assigned_at[0][0] - restarted, 3)
    h.timings["static member restart (no rebalance)"] = rejoin
    print(f"rebalance static member restart (no rebalance): {rejoin:.3f} s", flush=True)
    check(set(b2.assignment) == before["b"], f"same partitions after the restart: {before['b']} -> {set(b2.assignment)}")
    h.produce(per_partition=20)
    h.wait_consumed("phase 2 consumed")
    for n in "ac":
        check(len(members[n].assigned_at) == events_before[n],
              f"{members[n].name} saw a rebalance: {members[n].assigned_at[events_before[n]:]}")
        check(set(members[n].assignment) == before[n], f"{members[n].name} kept its partitions")
    redelivered = h.check_no_loss_and_bounded_redeliveries("g")
    h.finish()
    for m in (members["a"], members["c"], b2):
        m.stop()
    h.result(scenario="static_members", client=client, redelivered=redelivered,
             partitions={n: sorted(p) for n, p in before.items()})


def pattern(h, client):
    """A regex subscription (KIP-848: the broker resolves the regex): the
    members share every partition of the topics the regex matches, and a
    matching topic created while they run is assigned and consumed."""
    run = h.topic.rsplit("-", 1)[1]
    # The regex is anchored and matched against whole topic names (RE2/J on a
    # Kafka broker); the run id keeps reruns against one broker apart.
    h.topic = f"pattern-topic-{run}-a"
    second = f"pattern-topic-{run}-b"
    decoy = f"not-pattern-topic-{run}-a"  # contains the prefix, does not start with it
    regex = f"^pattern-topic-{run}-.*"
    h.create_topic()
    h.create_topic(decoy)
    started = time.time()
    members = [h.start(client, f"{client}-{n}", "g", *options(client, h.assignor(client), commit_every=7),
                       "--pattern", regex)
               for n in "abc"]
    h.wait_settled("initial join of 3 members", members, started)
    h.produce(per_partition=10)
    h.produce(per_partition=2, topic=decoy)
    h.wait_consumed("the first matching topic consumed")

    created = time.time()
    h.create_topic(second)

    def second_settled():
        if any(not m.alive for m in members):
            return None
        owned = sorted(p for m in members for (t, p) in m.tps if t == second)
        if owned != list(range(PARTITIONS)):
            return None
        last = max(t for m in members for (t, _) in m.assigned_at)
        return last if time.time() - last >= INCREMENTAL_QUIET_SECONDS else None

    done = h.wait_for(f"the new topic {second} to be assigned over {[m.name for m in members]}", second_settled)
    seconds = round(done - created, 3)
    h.timings["new topic matching the regex assigned"] = seconds
    print(f"rebalance new topic matching the regex assigned: {seconds:.3f} s", flush=True)
    h.produce(per_partition=10, topic=second)
    expected_second = set(h.other_produced) - {k for k in h.other_produced if k[0] == decoy}
    h.wait_for(f"{second} consumed", lambda: expected_second <= set(h.other_deliveries))
    time.sleep(1.0)  # a duplicate or a decoy record would arrive by now

    check(not any(t == decoy for m in members for (t, _) in m.tps), f"the decoy topic {decoy} was assigned")
    decoy_read = [k for k in h.other_deliveries if k[0] == decoy]
    check(not decoy_read, f"records of the decoy topic {decoy} were delivered: {decoy_read[:5]}")
    second_deliveries = {k: v for k, v in h.other_deliveries.items() if k[0] == second}
    duplicates = {k: v for k, v in second_deliveries.items() if len(v) > 1}
    check(not duplicates,
          f"{len(duplicates)} records of {second} delivered more than once, e.g. {list(duplicates.items())[:3]}")
    check(not h.foreign, f"records delivered to members not owning the partition: {h.foreign[:5]}")
    redelivered = h.check_no_loss_and_bounded_redeliveries("g")
    owned_second = {m.name: sorted(p for (t, p) in m.tps if t == second) for m in members}
    h.finish()
    for m in members:
        m.stop()
    h.result(scenario="pattern", client=client, regex=regex, redelivered=redelivered,
             second_topic_produced=len(expected_second), second_topic_delivered=len(second_deliveries),
             second_topic_partitions=owned_second)


def upgrade(h, classic_client, client):
    """A classic group consumes and commits, and all its members close; members
    speaking the consumer protocol (KIP-848) then join the same group id and
    resume exactly from the committed offsets: what the classic group left
    uncommitted is read again, nothing before it."""
    h.create_topic()
    started = time.time()
    old = [h.start(classic_client, f"{classic_client}-{n}", "g",
                   *options(classic_client, default_assignor(classic_client), commit_every=7))
           for n in "ab"]
    h.wait_settled("classic group forms (2 members)", old, started)
    h.produce(per_partition=20)
    h.wait_consumed("phase 1 consumed by the classic group")
    for m in old:
        m.stop()
    committed = h.committed_offsets("g")
    check(committed, "the classic group committed nothing")
    check(h.broker_committed("g") == committed,
          f"the broker's offsets {h.broker_committed('g')} are not what the classic members committed {committed}")
    # Recorded, not checked: how the broker describes the emptied classic group.
    try:
        before = h.describe_group("g")
        described_before = {"type": before.type.name, "state": before.state.name}
    except Failure as failure:
        described_before = {"error": str(failure)}
    uncommitted = sum(20 - committed.get(p, 0) for p in range(PARTITIONS))

    joined = time.time()
    new = [h.start(client, f"{client}-{n}", "g", *options(client, h.assignor(client), commit_every=7)) for n in "cd"]
    h.wait_settled("consumer-protocol members take over the group (2 members)", new, joined)
    h.produce(per_partition=15)
    h.wait_consumed("phase 2 consumed")
    time.sleep(1.0)  # anything re-delivered would arrive by now
    first_read = {}
    for p, o in h.deliveries_to(new):
        first_read[p] = min(first_read.get(p, o), o)
    for p in range(PARTITIONS):
        check(first_read.get(p) == committed.get(p, 0),
              f"partition {p}: the consumer-protocol members started at offset {first_read.get(p)}, "
              f"the classic group had committed {committed.get(p, 0)}")
    redelivered = h.check_no_loss_and_bounded_redeliveries("g")
    after = h.describe_group("g")
    check(after.type.name == "CONSUMER", f"the group's type after the upgrade: {after.type}")
    check(len(after.members) == 2, f"the upgraded group's members: {[m.member_id for m in after.members]}")
    h.finish()
    for m in new:
        m.stop()
    h.result(scenario="upgrade", clients=[classic_client, client], redelivered=redelivered,
             uncommitted_by_classic=uncommitted,
             described_before=described_before, type_after=after.type.name,
             assignor_after=after.partition_assignor)


def mixed_protocols(h, classic_client, client):
    """A classic group and a consumer-protocol (KIP-848) group on one topic:
    each group reads every record exactly once and keeps its own offsets, and
    the broker describes each with its own protocol."""
    h.create_topic()
    started = time.time()
    classic = [h.start(classic_client, f"{classic_client}-classic-{n}", "classic",
                       *options(classic_client, default_assignor(classic_client), commit_every=7))
               for n in "ab"]
    consumer = [h.start(client, f"{client}-consumer-{n}", "consumer",
                        *options(client, h.assignor(client), commit_every=7))
                for n in "ab"]
    h.wait_settled("classic group forms (2 members)", classic, started)
    h.wait_settled("consumer-protocol group forms (2 members)", consumer, started)
    h.produce(per_partition=20)
    expected = set(h.produced)
    for label, group_members in (("classic", classic), ("consumer", consumer)):
        h.wait_for(f"the {label} group consumed everything", lambda: expected <= set(h.deliveries_to(group_members)))
    time.sleep(1.0)  # a duplicate would arrive by now
    per_group = {}
    for label, group_members in (("classic", classic), ("consumer", consumer)):
        got = h.deliveries_to(group_members)
        check(sorted(got) == sorted(expected), f"{label}: each record exactly once ({len(got)} deliveries)")
        per_group[label] = len(got)
    check(not h.foreign, f"records delivered to members not owning the partition: {h.foreign[:5]}")

    described = {group: h.describe_group(group) for group in ("classic", "consumer")}
    group = described["consumer"]
    check(group.type.name == "CONSUMER", f"the consumer-protocol group's type: {group.type}")
    check(group.state.name == "STABLE", f"the consumer-protocol group's state: {group.state}")
    check(group.partition_assignor == h.assignor(client),
          f"the consumer-protocol group's assignor: {group.partition_assignor!r}")
    broker_view = sorted(tp.partition for m in group.members for tp in m.assignment.topic_partitions)
    check(broker_view == list(range(PARTITIONS)), f"the consumer-protocol group's assignments: {broker_view}")
    check({m.client_id for m in group.members} == {m.name for m in consumer},
          f"the consumer-protocol group's members: {[m.client_id for m in group.members]}")
    check(len(described["classic"].members) == 2,
          f"the classic group's members: {[m.client_id for m in described['classic'].members]}")

    for m in classic + consumer:
        m.send("commit")
    everything = {p: 20 for p in range(PARTITIONS)}
    for label in ("classic", "consumer"):
        h.wait_for(f"the {label} group to commit everything", lambda: h.committed_offsets(label) == everything)
        check(h.broker_committed(label) == everything,
              f"{label}: the broker has {h.broker_committed(label)}, the members committed {everything}")
    h.finish()
    for m in classic + consumer:
        m.stop()
    h.result(scenario="mixed_protocols", clients=[classic_client, client], per_group=per_group,
             classic_deliveries=per_group["classic"], consumer_deliveries=per_group["consumer"],
             types={g: d.type.name for g, d in described.items()},
             assignors={g: d.partition_assignor for g, d in described.items()})


SCENARIOS = {
    "three_members": lambda h, a: three_members(h, a.client),
    "mixed_python_clients": lambda h, a: three_members(h, None, ["confluent", "kafka-python", "aiokafka"]),
    "leave_and_join": lambda h, a: leave_and_join(h, a.client),
    "killed_member": lambda h, a: killed_member(h, a.client),
    "restart_resumes": lambda h, a: restart_resumes(h, a.client),
    "two_groups": lambda h, a: two_groups(h, a.client, a.client_b or a.client),
    "cooperative": lambda h, a: cooperative(h, a.client),
    "static_members": lambda h, a: static_members(h, a.client),
    "pattern": lambda h, a: pattern(h, a.client),
    "upgrade": lambda h, a: upgrade(h, a.client_b or "confluent", a.client),
    "mixed_protocols": lambda h, a: mixed_protocols(h, a.client_b or "confluent", a.client),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("bootstrap")
    parser.add_argument("--client", default="confluent")
    parser.add_argument("--client-b")
    parser.add_argument("--assignor", help="the members' assignor where the scenario does not fix one")
    args = parser.parse_args()
    topic = f"{args.scenario}-{args.client}-{int(time.time() * 1000) % 1_000_000}".replace("_", "-")
    harness = Harness(args.bootstrap, topic, args.assignor)
    try:
        SCENARIOS[args.scenario](harness, args)
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        for m in harness.members:
            print(f"--- {m.name} stderr ---\n{m.stderr_text()}", file=sys.stderr)
        sys.exit(1)
    finally:
        harness.shutdown()


if __name__ == "__main__":
    main()
