"""Consumer-group members and group queries for the coordinator failover tests
(agent/tests/group_failover.rs), with confluent-kafka (librdkafka 2.12.1).

    group_failover.py member PROTOCOL BOOTSTRAP GROUP TOPIC NAME
        [--assignor A] [--commit-every N]
    group_failover.py committed BOOTSTRAP GROUP TOPIC PARTITIONS
    group_failover.py describe BOOTSTRAP GROUP

`member` consumes TOPIC in GROUP, PROTOCOL being `consumer` (KIP-848,
`group.protocol=consumer`: the broker assigns with `group.remote.assignor`, its
session timeout and heartbeat interval are the broker's) or `classic`
(JoinGroup/SyncGroup, `partition.assignment.strategy` = A, 6 s session timeout,
1 s heartbeats). Auto-commit is off; the member commits synchronously the next
offsets of what it read every N records (of all its partitions), when
partitions are revoked (those partitions, before they go), and when told to
stop. Partitions lost (session expired, fenced) are not committed: such a
commit would be refused. Reads "commit" and "stop" on stdin. It prints one JSON
object per line:

    {"ev": "assigned", "added": [p...], "owned": [p...], "t": ...}
    {"ev": "revoked" | "lost", "removed": [p...], "owned": [p...], "t": ...}
    {"ev": "rec", "p": p, "o": offset, "k": key, "t": ...}
    {"ev": "commit", "offsets": {p: next}, "why": "every" | "revoke" | "asked" | "stop",
     "sent": t0, "t": ...}
        a commit the coordinator acknowledged: sent at `sent`, answered by `t`
        (asked to commit with nothing read since its partitions came, it
        reports an empty commit)
    {"ev": "commit-failed", "offsets": {...}, "why": ..., "error": ..., "sent": t0, "t": ...}
    {"ev": "client-error", "error": ..., "t": ...}
    {"ev": "closed", "t": ...}

Times are the member's wall clock (seconds), compared with the test's.

`committed` prints the group's committed offsets of TOPIC's partitions 0..PARTITIONS
as the coordinator returns them (OffsetFetch through the AdminClient's
list_consumer_group_offsets), retrying until the coordinator answers:

    {"offsets": {p: offset}, "sent": t0, "t": ..., "attempts": n}

(`sent`: when the request that answered was sent). `describe` prints how the
coordinator describes the group (DescribeGroups, or ConsumerGroupDescribe for a
KIP-848 group):

    {"type": ..., "state": ..., "coordinator": node, "members": {client_id: [p...]}}
"""

import argparse
import json
import sys
import threading
import time

OUT_LOCK = threading.Lock()
# How long `committed` and `describe` keep retrying a coordinator that does not
# answer (one being taken over answers NOT_COORDINATOR or
# COORDINATOR_NOT_AVAILABLE meanwhile).
QUERY_SECONDS = 60


def emit(event, **fields):
    fields["ev"] = event
    fields.setdefault("t", time.time())
    with OUT_LOCK:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def member(args):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "max.poll.interval.ms": 30000,
        "topic.metadata.refresh.interval.ms": 2000,
        # A dead agent's connections are retried quickly.
        "reconnect.backoff.max.ms": 500,
        "error_cb": lambda error: emit("client-error", error=str(error)),
    }
    if args.protocol == "consumer":
        conf["group.protocol"] = "consumer"
        conf["group.remote.assignor"] = args.assignor
    else:
        conf["session.timeout.ms"] = 6000
        conf["heartbeat.interval.ms"] = 1000
        conf["partition.assignment.strategy"] = args.assignor
    consumer = Consumer(conf)
    # Both setups rebalance incrementally: the callbacks name only the
    # partitions added or taken away.
    owned = set()
    positions = {}  # partition -> next offset to commit
    since_commit = [0]

    def commit(partitions, why):
        offsets = {p: positions[p] for p in sorted(partitions) if p in positions}
        if not offsets:
            if why == "asked":
                # Answered all the same: nothing read since the partitions came.
                emit("commit", offsets={}, why=why, sent=time.time())
            return
        sent = time.time()
        try:
            consumer.commit(
                offsets=[TopicPartition(args.topic, p, o) for p, o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as error:
            emit("commit-failed", offsets=offsets, why=why, error=str(error), sent=sent)
            return
        emit("commit", offsets=offsets, why=why, sent=sent)
        since_commit[0] = 0

    def on_assign(_consumer, partitions):
        added = {tp.partition for tp in partitions}
        owned.update(added)
        emit("assigned", added=sorted(added), owned=sorted(owned))

    def on_revoke(_consumer, partitions):
        removed = {tp.partition for tp in partitions}
        commit(removed & owned, "revoke")
        owned.difference_update(removed)
        for p in removed:
            positions.pop(p, None)
        emit("revoked", removed=sorted(removed), owned=sorted(owned))

    def on_lost(_consumer, partitions):
        removed = {tp.partition for tp in partitions}
        owned.difference_update(removed)
        for p in removed:
            positions.pop(p, None)
        emit("lost", removed=sorted(removed), owned=sorted(owned))

    stop = threading.Event()
    asked = threading.Event()

    def read_commands():
        for line in sys.stdin:
            if line.strip() == "commit":
                asked.set()
            elif line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=read_commands, daemon=True).start()
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    while not stop.is_set():
        message = consumer.poll(0.1)
        if asked.is_set():
            asked.clear()
            commit(owned, "asked")
        if message is None:
            continue
        if message.error():
            emit("client-error", error=str(message.error()))
            continue
        p, o = message.partition(), message.offset()
        key = message.key().decode() if message.key() is not None else ""
        emit("rec", p=p, o=o, k=key)
        if p in owned:
            positions[p] = o + 1
        since_commit[0] += 1
        if args.commit_every and since_commit[0] >= args.commit_every:
            commit(owned, "every")
    commit(owned, "stop")
    consumer.close()
    emit("closed")


def committed(args):
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap, "reconnect.backoff.max.ms": 500})
    request = ConsumerGroupTopicPartitions(
        args.group, [TopicPartition(args.topic, p) for p in range(args.partitions)])
    deadline = time.time() + QUERY_SECONDS
    attempts = 0
    while True:
        attempts += 1
        sent = time.time()
        future = admin.list_consumer_group_offsets([request], request_timeout=10)[args.group]
        try:
            listed = future.result(timeout=30)
        except (KafkaException, TimeoutError) as error:
            if time.time() > deadline:
                raise
            print(f"offset fetch attempt {attempts} failed: {error!r}", file=sys.stderr, flush=True)
            time.sleep(0.2)
            continue
        errors = [tp for tp in listed.topic_partitions if tp.error is not None]
        if errors and time.time() <= deadline:
            print(f"offset fetch attempt {attempts}: partition errors {errors}", file=sys.stderr, flush=True)
            time.sleep(0.2)
            continue
        if errors:
            raise SystemExit(f"partition errors: {errors}")
        offsets = {tp.partition: tp.offset for tp in listed.topic_partitions}
        print(json.dumps({"offsets": offsets, "sent": sent, "t": time.time(), "attempts": attempts}),
              flush=True)
        return


def describe(args):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap, "reconnect.backoff.max.ms": 500})
    deadline = time.time() + QUERY_SECONDS
    while True:
        future = admin.describe_consumer_groups([args.group], request_timeout=10)[args.group]
        try:
            group = future.result(timeout=30)
            break
        except (KafkaException, TimeoutError) as error:
            if time.time() > deadline:
                raise
            print(f"describe failed: {error!r}", file=sys.stderr, flush=True)
            time.sleep(0.2)
    members = {
        m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in group.members
    }
    print(json.dumps({
        "type": group.type.name,
        "state": group.state.name,
        "coordinator": group.coordinator.id,
        "members": members,
    }), flush=True)


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("member")
    m.add_argument("protocol", choices=["consumer", "classic"])
    m.add_argument("bootstrap")
    m.add_argument("group")
    m.add_argument("topic")
    m.add_argument("name")
    m.add_argument("--assignor", default="uniform",
                   help="the broker's assignor (consumer) or the client's (classic)")
    m.add_argument("--commit-every", type=int, default=10)
    c = commands.add_parser("committed")
    c.add_argument("bootstrap")
    c.add_argument("group")
    c.add_argument("topic")
    c.add_argument("partitions", type=int)
    d = commands.add_parser("describe")
    d.add_argument("bootstrap")
    d.add_argument("group")
    args = parser.parse_args()
    {"member": member, "committed": committed, "describe": describe}[args.command](args)


if __name__ == "__main__":
    main()
