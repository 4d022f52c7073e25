"""Log compaction through confluent-kafka (librdkafka), against a running agent
whose log compaction and retention run often.

usage: log_compaction.py BOOTSTRAP

1. Topic `compacted` (cleanup.policy=compact, segment.ms=100,
   min.cleanable.dirty.ratio=0.01, delete.retention.ms=3000): an idempotent
   producer (lz4) writes 10,000 keys x 20 versions; a full read from the
   beginning is polled until it holds exactly one record per key, the latest
   value, each at the offset it was written at; a search by timestamp finds
   the first record kept.
2. The same producer keeps writing new versions of a tenth of the keys in
   rounds while compactions run: no delivery error (no sequence error); the
   topic again reads back as exactly one record per key, the latest.
3. Tombstones for 1,000 keys: the read first shows them (one per key, the
   latest), then, once delete.retention.ms passed and a clean ran, neither
   they nor their keys' older values.
4. Topic `both` (cleanup.policy=compact,delete, retention.ms=60000): 300
   records of 100 keys timestamped ten minutes ago, then 50 of now; the log
   start moves past the old ones and a read returns exactly the 50 new.

Prints what it saw, one `key=value` per line; the Rust test asserts on it.
Deadlines are generous; nothing here asserts a duration.
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})
KEYS = 10_000
VERSIONS = 20
DEADLINE_S = 180


def create(name, configs):
    futures = admin.create_topics([NewTopic(name, 1, 1, config=configs)])
    futures[name].result(30)


class Writer:
    """An idempotent producer remembering where each key's latest record went."""

    def __init__(self):
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
            }
        )
        self.latest = {}
        self.errors = []
        self.sent = 0

    def send(self, topic, key, value, timestamp=None):
        def delivered(error, message):
            if error is not None:
                self.errors.append(error.name())
                return
            known = self.latest.get(key)
            if known is None or known[0] < message.offset():
                self.latest[key] = (message.offset(), value)

        kwargs = {"key": key, "value": value, "partition": 0, "on_delivery": delivered}
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.sent += 1
        self.producer.poll(0)

    def flush(self):
        left = self.producer.flush(60)
        assert left == 0, f"{left} records not delivered"


def read_all(topic):
    """Every record from the beginning to the end: (offset, key, value)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING
    records = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(message.error())
        records.append((message.offset(), message.key(), message.value()))
    consumer.close()
    return records


def exactly_latest(records, latest):
    """Whether `records` hold exactly one record per key of `latest`, at
    its offset with its value (a value of None: a tombstone)."""
    if len(records) != len(latest):
        return False
    for offset, key, value in records:
        expected = latest.get(key)
        if expected is None or expected != (offset, value):
            return False
    return True


def wait_for(topic, condition):
    """Reads `topic` until `condition(records)` holds or the deadline passes;
    the last read and the seconds it took."""
    start = time.monotonic()
    records = read_all(topic)
    while not condition(records) and time.monotonic() - start < DEADLINE_S:
        time.sleep(0.5)
        records = read_all(topic)
    return records, time.monotonic() - start


summary = {}

# 1. 10,000 keys x 20 versions.
create(
    "compacted",
    {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "3000",
    },
)
writer = Writer()
for version in range(VERSIONS):
    for key in range(KEYS):
        writer.send("compacted", f"key-{key}".encode(), f"v{version}-{key}".encode())
writer.flush()
summary["produced"] = writer.sent
summary["produce_errors"] = len(writer.errors)
records, took = wait_for("compacted", lambda r: exactly_latest(r, writer.latest))
summary["compacted_read"] = len(records)
summary["compacted_exact"] = exactly_latest(records, writer.latest)
summary["compacted_seconds"] = round(took, 1)
# A search by timestamp over cleaned chunks finds the first record kept.
searcher = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ts-{uuid.uuid4()}"})
found = searcher.offsets_for_times([TopicPartition("compacted", 0, 0)], timeout=30)
searcher.close()
first_kept = min(offset for offset, _, _ in records) if records else None
summary["timestamp_search_exact"] = found[0].error is None and found[0].offset == first_kept

# A record without a key is refused by a compacted topic (INVALID_RECORD).
outcomes = []
plain = Producer({"bootstrap.servers": bootstrap, "retries": 0})
plain.produce("compacted", value=b"no key", on_delivery=lambda error, _m: outcomes.append(error))
plain.flush(30)
summary["keyless_refused"] = (
    len(outcomes) == 1 and outcomes[0] is not None and outcomes[0].code() == KafkaError.INVALID_RECORD
)

# 2. The idempotent producer carries on across compactions.
for round_ in range(10):
    for key in range(round_ * 1_000, (round_ + 1) * 1_000):
        writer.send("compacted", f"key-{key}".encode(), f"r{round_}-{key}".encode())
    writer.flush()
    time.sleep(0.4)
summary["carried_on_errors"] = len(writer.errors)
summary["carried_on_error_names"] = ",".join(sorted(set(writer.errors))) or "none"
records, took = wait_for("compacted", lambda r: exactly_latest(r, writer.latest))
summary["carried_on_read"] = len(records)
summary["carried_on_exact"] = exactly_latest(records, writer.latest)

# 3. Tombstones: seen, then gone after delete.retention.ms.
for key in range(1_000):
    writer.send("compacted", f"key-{key}".encode(), None)
writer.flush()
records, _ = wait_for("compacted", lambda r: exactly_latest(r, writer.latest))
summary["tombstones_seen"] = sum(1 for _, _, value in records if value is None)
summary["tombstones_exact"] = exactly_latest(records, writer.latest)
live = {key: seen for key, seen in writer.latest.items() if seen[1] is not None}
records, took = wait_for("compacted", lambda r: exactly_latest(r, live))
summary["tombstones_left"] = sum(1 for _, _, value in records if value is None)
summary["after_tombstones_read"] = len(records)
summary["after_tombstones_exact"] = exactly_latest(records, live)
summary["producer_errors_total"] = len(writer.errors)

# 4. compact,delete: retention.ms still applies.
create(
    "both",
    {
        "cleanup.policy": "compact,delete",
        "retention.ms": "60000",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
    },
)
now_ms = int(time.time() * 1000)
both = Writer()
for i in range(300):
    both.send("both", f"old-{i % 100}".encode(), f"old-{i}".encode(), timestamp=now_ms - 600_000)
both.flush()
for i in range(50):
    both.send("both", f"new-{i}".encode(), f"new-{i}".encode(), timestamp=now_ms)
both.flush()
new_only = {key: seen for key, seen in both.latest.items() if key.startswith(b"new-")}
records, _ = wait_for("both", lambda r: exactly_latest(r, new_only))
summary["both_read"] = len(records)
summary["both_exact"] = exactly_latest(records, new_only)
summary["both_first"] = records[0][0] if records else None
low, high = Consumer(
    {"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4()}"}
).get_watermark_offsets(TopicPartition("both", 0), timeout=30)
summary["both_earliest"] = low
summary["both_latest"] = high
summary["both_errors"] = len(both.errors)

for key in sorted(summary):
    print(f"{key}={summary[key]}")
