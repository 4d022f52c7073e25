"""One consumer-group member, driven by tests/clients/group_harness.py.

Usage: group_member.py CLIENT BOOTSTRAP GROUP TOPIC NAME [options]
  CLIENT: confluent | kafka-python | aiokafka

It consumes TOPIC in GROUP and reports, one JSON object per stdout line:
  {"ev": "assigned", "parts": [...], "t": ...}   its whole assignment after a change
  {"ev": "rec", "p": p, "o": o, "t": ...}        a record it received
  {"ev": "commit", "offsets": {p: next}, "t": ...}  offsets the broker accepted
  {"ev": "commit-failed", "error": ..., "t": ...}
  {"ev": "closed", "t": ...}
It reads commands from stdin: "commit" commits the positions of the owned
partitions now; "stop" closes the consumer (a graceful leave) and exits.
Auto-commit is off: the member also commits every --commit-every records, and
on close with --commit-on-close.
"""

import argparse
import asyncio
import json
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
    """Next offsets of consumed records, per owned partition, and the commit cadence."""

    def __init__(self, commit_every):
        self.next = {}
        self.owned = set()
        self.since_commit = 0
        self.commit_every = commit_every

    def consumed(self, partition, offset):
        self.next[partition] = offset + 1
        self.since_commit += 1

    def due(self):
        return self.commit_every > 0 and self.since_commit >= self.commit_every

    def to_commit(self):
        return {p: o for p, o in self.next.items() if p in self.owned}

    def committed(self):
        self.since_commit = 0


    def set_owned(self, partitions):
        self.owned = set(partitions)
        self.next = {p: o for p, o in self.next.items() if p in self.owned}


def run_confluent(args, commands):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": args.rebalance_timeout_ms,
        "partition.assignment.strategy": args.assignor,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    consumer = Consumer(conf)
    positions = Positions(args.commit_every)
    incremental = args.assignor == "cooperative-sticky"

    def on_assign(_consumer, partitions):
        added = {tp.partition for tp in partitions}
        owned = (positions.owned | added) if incremental else added
        positions.set_owned(owned)
        emit("assigned", parts=sorted(owned))

    def on_revoke(_consumer, partitions):
        removed = {tp.partition for tp in partitions}
        owned = (positions.owned - removed) if incremental else set()
        positions.set_owned(owned)
        emit("assigned", parts=sorted(owned))

    def commit():
        offsets = positions.to_commit()
        if not offsets:
            return
        try:
            consumer.commit(
                offsets=[TopicPartition(args.topic, p, o) for p, o in offsets.items()],
                asynchronous=False,
            )
            positions.committed()
            emit("commit", offsets=offsets)
        except KafkaException as error:
            emit("commit-failed", error=str(error))

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
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
        emit("rec", p=message.partition(), o=message.offset())
        positions.consumed(message.partition(), message.offset())
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
    positions = Positions(args.commit_every)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            positions.set_owned(set())
            emit("assigned", parts=[])

        def on_partitions_assigned(self, assigned):
            owned = {tp.partition for tp in assigned}
            positions.set_owned(owned)
            emit("assigned", parts=sorted(owned))

    def commit():
        offsets = positions.to_commit()
        if not offsets:
            return
        try:
            consumer.commit(
                {TopicPartition(args.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
            )
            positions.committed()
            emit("commit", offsets=offsets)
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
                emit("rec", p=tp.partition, o=record.offset)
                positions.consumed(tp.partition, record.offset)
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
    positions = Positions(args.commit_every)

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            positions.set_owned(set())
            emit("assigned", parts=[])

        async def on_partitions_assigned(self, assigned):
            owned = {tp.partition for tp in assigned}
            positions.set_owned(owned)
            emit("assigned", parts=sorted(owned))

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
                await consumer.commit({TopicPartition(args.topic, p): o for p, o in offsets.items()})
                positions.committed()
                emit("commit", offsets=offsets)
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
                    emit("rec", p=tp.partition, o=record.offset)
                    positions.consumed(tp.partition, record.offset)
                    if positions.due():
                        await commit()
        if args.commit_on_close:
            await commit()
        await consumer.stop()
        emit("closed")

    asyncio.run(main())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["confluent", "kafka-python", "aiokafka"])
    parser.add_argument("bootstrap")
    parser.add_argument("group")
    parser.add_argument("topic")
    parser.add_argument("name")
    parser.add_argument("--assignor", default="range")
    parser.add_argument("--instance-id")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--rebalance-timeout-ms", type=int, default=20000)
    parser.add_argument("--commit-every", type=int, default=0)
    parser.add_argument("--commit-on-close", action="store_true")
    args = parser.parse_args()
    commands = Commands()
    runners = {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}
    runners[args.client](args, commands)


if __name__ == "__main__":
    main()
