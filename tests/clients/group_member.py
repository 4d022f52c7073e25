"""One consumer-group member, driven by tests/clients/group_harness.py.

Usage: group_member.py CLIENT BOOTSTRAP GROUP TOPIC NAME [options]
  CLIENT: confluent | confluent-consumer | kafka-python | aiokafka

`confluent` is confluent-kafka (librdkafka) with the classic group protocol
(JoinGroup/SyncGroup, the assignor runs in the leader member);
`confluent-consumer` is the same client with `group.protocol=consumer` (KIP-848:
ConsumerGroupHeartbeat, the broker assigns with `group.remote.assignor`, the
session timeout and heartbeat interval are the broker's, and every rebalance is
incremental).

It consumes TOPIC (or, with --pattern, every topic the regex matches) in GROUP
and reports, one JSON object per stdout line:
  {"ev": "assigned", "parts": [...], "tps": [[topic, p], ...], "t": ...}
      its whole assignment after a change: `parts` of TOPIC, `tps` of all topics
  {"ev": "rec", "topic": topic, "p": p, "o": o, "t": ...}  a record it received
  {"ev": "commit", "offsets": {p: next}, "other": {topic: {p: next}}, "t": ...}
      offsets the broker accepted (`other`: topics besides TOPIC, if any)
  {"ev": "commit-failed", "error": ..., "t": ...}
  {"ev": "client-error", "error": ..., "t": ...}  an error the client reported
  {"ev": "closed", "t": ...}
It reads commands from stdin: "commit" commits the positions of the owned
partitions now; "stop" closes the consumer (a graceful leave) and exits.
Auto-commit is off: the member also commits every --commit-every records, and
on close with --commit-on-close.

FJORD_GROUP_DEBUG, when set, is librdkafka's `debug` (e.g. `cgrp,protocol`) for
the confluent clients; the log goes to the member's stderr.
"""

import argparse
import asyncio
import json
import os
import sys
import threading
import time

OUT_LOCK = threading.Lock()


def emit(event, **fields):
    fields["ev"] = event
    fields["t"] = time.time()
    with OUT_LOCK:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


class Commands:
    """Reads stdin in a thread; commands become flags the poll loop checks."""

    def __init__(self):
        self.stop = threading.Event()
        self.commit = threading.Event()
        thread = threading.Thread(target=self._read, daemon=True)
        thread.start()

    def _read(self):
        for line in sys.stdin:
            if line.strip() == "stop":
                self.stop.set()
            elif line.strip() == "commit":
                self.commit.set()
        # The harness went away: stop too.
        self.stop.set()


class Positions:
    """Next offsets of consumed records, per owned (topic, partition), and the
    commit cadence."""

    def __init__(self, topic, commit_every):
        self.topic = topic
        self.next = {}
        self.owned = set()
        self.since_commit = 0
        self.commit_every = commit_every

    def consumed(self, topic, partition, offset):
        self.next[(topic, partition)] = offset + 1
        self.since_commit += 1

    def due(self):
        return self.commit_every > 0 and self.since_commit >= self.commit_every

    def to_commit(self):
        return {tp: o for tp, o in self.next.items() if tp in self.owned}

    def committed(self):
        self.since_commit = 0

    def set_owned(self, topic_partitions):
        """The member's whole assignment is now `topic_partitions`: forgets the
        positions of the others and reports the assignment."""
        self.owned = set(topic_partitions)
        self.next = {tp: o for tp, o in self.next.items() if tp in self.owned}
        emit("assigned", parts=sorted(p for t, p in self.owned if t == self.topic),
             tps=sorted([t, p] for t, p in self.owned))

    def emit_committed(self, offsets):
        """Reports committed `{(topic, p): next}`: TOPIC's as `offsets`, any
        other topic's under `other`."""
        fields = {"offsets": {p: o for (t, p), o in offsets.items() if t == self.topic}}
        other = {}
        for (t, p), o in offsets.items():
            if t != self.topic:
                other.setdefault(t, {})[p] = o
        if other:
            fields["other"] = other
        emit("commit", **fields)


def run_confluent(args, commands, consumer_protocol):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "max.poll.interval.ms": args.rebalance_timeout_ms,
        "topic.metadata.refresh.interval.ms": 2000,
        "error_cb": lambda error: emit("client-error", error=str(error)),
    }
    if consumer_protocol:
        # KIP-848: librdkafka refuses session.timeout.ms, heartbeat.interval.ms,
        # partition.assignment.strategy and group.protocol.type with this
        # protocol (the broker owns them); the assignor is named to the broker.
        conf["group.protocol"] = "consumer"
        conf["group.remote.assignor"] = args.assignor
    else:
        conf["session.timeout.ms"] = args.session_timeout_ms
        conf["heartbeat.interval.ms"] = 1000
        conf["partition.assignment.strategy"] = args.assignor
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    if os.environ.get("FJORD_GROUP_DEBUG"):
        conf["debug"] = os.environ["FJORD_GROUP_DEBUG"]
    consumer = Consumer(conf)
    positions = Positions(args.topic, args.commit_every)
    # The consumer protocol's rebalances are always incremental: the callbacks
    # name only the partitions added or removed, as with cooperative-sticky.
    incremental = consumer_protocol or args.assignor == "cooperative-sticky"

    def on_assign(_consumer, partitions):
        added = {(tp.topic, tp.partition) for tp in partitions}
        positions.set_owned((positions.owned | added) if incremental else added)

    def on_revoke(_consumer, partitions):
        removed = {(tp.topic, tp.partition) for tp in partitions}
        positions.set_owned((positions.owned - removed) if incremental else set())

    def commit():
        offsets = positions.to_commit()
        if not offsets:
            return
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
            positions.committed()
            positions.emit_committed(offsets)
        except KafkaException as error:
            emit("commit-failed", error=str(error))

    # A subscription starting with `^` is a regex (librdkafka's convention).
    subscription = [args.pattern] if args.pattern else [args.topic]
    consumer.subscribe(subscription, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    while not commands.stop.is_set():
        message = consumer.poll(0.1)
        if commands.commit.is_set():
            commands.commit.clear()
            commit()
        if message is None:
            continue
        if message.error():
            emit("client-error", error=str(message.error()))
            continue
        emit("rec", topic=message.topic(), p=message.partition(), o=message.offset())
        positions.consumed(message.topic(), message.partition(), message.offset())
        if positions.due():
            commit()
    if args.commit_on_close:
        commit()
    consumer.close()
    emit("closed")


def run_kafka_python(args, commands):
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.errors import KafkaError

    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id=args.name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=args.rebalance_timeout_ms,
        partition_assignment_strategy=[assignors[args.assignor]],
        metadata_max_age_ms=2000,
    )
    positions = Positions(args.topic, args.commit_every)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            positions.set_owned(set())

        def on_partitions_assigned(self, assigned):
            positions.set_owned({(tp.topic, tp.partition) for tp in assigned})

    def commit():
        offsets = positions.to_commit()
        if not offsets:
            return
        try:
            consumer.commit(
                {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
            )
            positions.committed()
            positions.emit_committed(offsets)
        except KafkaError as error:
            emit("commit-failed", error=repr(error))

    consumer.subscribe([args.topic], listener=Listener())
    while not commands.stop.is_set():
        batches = consumer.poll(timeout_ms=100)
        if commands.commit.is_set():
            commands.commit.clear()
            commit()
        for tp, records in batches.items():
            for record in records:
                emit("rec", topic=tp.topic, p=tp.partition, o=record.offset)
                positions.consumed(tp.topic, tp.partition, record.offset)
                if positions.due():
                    commit()
    if args.commit_on_close:
        commit()
    consumer.close(autocommit=False)
    emit("closed")


def run_aiokafka(args, commands):
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
    from aiokafka.errors import KafkaError
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    positions = Positions(args.topic, args.commit_every)

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            positions.set_owned(set())

        async def on_partitions_assigned(self, assigned):
            positions.set_owned({(tp.topic, tp.partition) for tp in assigned})

    async def main():
        options = dict(
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            client_id=args.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=args.session_timeout_ms,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=args.rebalance_timeout_ms,
            rebalance_timeout_ms=args.rebalance_timeout_ms,
            partition_assignment_strategy=(assignors[args.assignor],),
            metadata_max_age_ms=2000,
        )
        if args.instance_id:
            options["group_instance_id"] = args.instance_id
        consumer = AIOKafkaConsumer(**options)
        await consumer.start()

        async def commit():
            offsets = positions.to_commit()
            if not offsets:
                return
            try:
                await consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
                positions.committed()
                positions.emit_committed(offsets)
            except KafkaError as error:
                emit("commit-failed", error=repr(error))

        consumer.subscribe([args.topic], listener=Listener())
        while not commands.stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            if commands.commit.is_set():
                commands.commit.clear()
                await commit()
            for tp, records in batches.items():
                for record in records:
                    emit("rec", topic=tp.topic, p=tp.partition, o=record.offset)
                    positions.consumed(tp.topic, tp.partition, record.offset)
                    if positions.due():
                        await commit()
        if args.commit_on_close:
            await commit()
        await consumer.stop()
        emit("closed")

    asyncio.run(main())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["confluent", "confluent-consumer", "kafka-python", "aiokafka"])
    parser.add_argument("bootstrap")
    parser.add_argument("group")
    parser.add_argument("topic")
    parser.add_argument("name")
    parser.add_argument("--assignor", default="range",
                        help="the client-side assignor, or with confluent-consumer the broker's"
                             " (group.remote.assignor: uniform or range)")
    parser.add_argument("--instance-id")
    parser.add_argument("--pattern", help="subscribe to this regex (confluent clients) instead of TOPIC")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--rebalance-timeout-ms", type=int, default=20000)
    parser.add_argument("--commit-every", type=int, default=0)
    parser.add_argument("--commit-on-close", action="store_true")
    args = parser.parse_args()
    if args.pattern and not args.client.startswith("confluent"):
        parser.error("--pattern is implemented for the confluent clients only")
    commands = Commands()
    runners = {
        "confluent": lambda a, c: run_confluent(a, c, consumer_protocol=False),
        "confluent-consumer": lambda a, c: run_confluent(a, c, consumer_protocol=True),
        "kafka-python": run_kafka_python,
        "aiokafka": run_aiokafka,
    }
    runners[args.client](args, commands)


if __name__ == "__main__":
    main()
