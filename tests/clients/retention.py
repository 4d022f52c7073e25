"""Retention and DeleteRecords through confluent-kafka (librdkafka), against a
running agent whose retention check runs often.

usage: retention.py BOOTSTRAP

1. Topic `expiring` (retention.ms=60000): 200 records timestamped ten minutes
   ago, then 50 of now. Once a retention pass ran, ListOffsets EARLIEST answers
   200; a consumer with auto.offset.reset=earliest from the beginning reads
   exactly the 50 recent records; one that asks for offset 0 with
   auto.offset.reset=error is told the offset is out of range.
2. Topic `trimmed` (defaults): 100 records; DeleteRecords before offset 60
   moves EARLIEST to 60 and the consumer starts there.
3. Topic `compacted` (cleanup.policy=compact): DeleteRecords is refused with
   POLICY_VIOLATION.
4. Topic `bounded` (retention.bytes=100000): 400 KiB in ten deliveries; a
   retention pass moves its log start (the Rust test checks what is kept
   against the limit in metadata).
5. Topic `doomed` is written and deleted: the Rust test then sees its objects
   leave the bucket.

Prints what it saw, one `key=value` per line; the Rust test asserts on it.
"""

import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})


def create(name, configs):
    futures = admin.create_topics([NewTopic(name, 1, 1, config=configs)])
    futures[name].result(30)


def produce(topic, count, timestamp_ms, tag):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, value=f"{tag}-{i}".encode(), partition=0, timestamp=timestamp_ms)
    left = producer.flush(30)
    assert left == 0, f"{left} records not delivered"


def offsets(topic, spec):
    tp = TopicPartition(topic, 0)
    result = admin.list_offsets({tp: spec}, request_timeout=30)
    return result[tp].result(30).offset


def wait_earliest(topic, wanted, timeout_s):
    deadline = time.monotonic() + timeout_s
    seen = offsets(topic, OffsetSpec.earliest())
    while seen != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = offsets(topic, OffsetSpec.earliest())
    return seen


def consume_from_beginning(topic, group, expected):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + 30
    while len(records) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        records.append((message.offset(), message.value().decode()))
    consumer.close()
    return records


def out_of_range_from_zero(topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "strict",
            "auto.offset.reset": "error",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + 30
    error = None
    while error is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error():
            error = message.error()
        elif message is not None:
            error = f"read offset {message.offset()}"
    consumer.close()
    if isinstance(error, KafkaError):
        return error.name()
    return str(error)


summary = {}
summary["brokers"] = len(admin.list_topics(timeout=30).brokers)

now_ms = int(time.time() * 1000)
create("expiring", {"retention.ms": "60000"})
produce("expiring", 200, now_ms - 600_000, "old")
produce("expiring", 50, now_ms, "new")
summary["expiring_latest"] = offsets("expiring", OffsetSpec.latest())
summary["expiring_earliest"] = wait_earliest("expiring", 200, 60)
records = consume_from_beginning("expiring", "readers", 50)
summary["expiring_read"] = len(records)
summary["expiring_first"] = records[0][0] if records else None
summary["expiring_all_new"] = all(value.startswith("new-") for _, value in records)
summary["expiring_from_zero"] = out_of_range_from_zero("expiring")

create("trimmed", {})
produce("trimmed", 100, now_ms, "t")
result = admin.delete_records([TopicPartition("trimmed", 0, 60)])
deleted = list(result.values())[0].result(30)
summary["trimmed_low_watermark"] = deleted.low_watermark
summary["trimmed_earliest"] = offsets("trimmed", OffsetSpec.earliest())
records = consume_from_beginning("trimmed", "trim-readers", 40)
summary["trimmed_first"] = records[0][0] if records else None
summary["trimmed_read"] = len(records)

create("compacted", {"cleanup.policy": "compact"})
produce("compacted", 10, now_ms, "c")
try:
    result = admin.delete_records([TopicPartition("compacted", 0, 5)])
    list(result.values())[0].result(30)
    summary["compacted_delete"] = "accepted"
except KafkaException as e:
    summary["compacted_delete"] = e.args[0].name()

# retention.bytes: ten rounds of 40 incompressible 1 KiB records, each
# delivered before the next (so each lies in chunks of its own).
create("bounded", {"retention.bytes": "100000"})
bounded = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
for round_ in range(10):
    for i in range(40):
        bounded.produce("bounded", value=os.urandom(1024), partition=0, timestamp=now_ms)
    assert bounded.flush(30) == 0, "records not delivered"
summary["bounded_latest"] = offsets("bounded", OffsetSpec.latest())
deadline = time.monotonic() + 60
earliest = offsets("bounded", OffsetSpec.earliest())
while earliest == 0 and time.monotonic() < deadline:
    time.sleep(0.2)
    earliest = offsets("bounded", OffsetSpec.earliest())
summary["bounded_trimmed"] = earliest > 0

create("doomed", {})
produce("doomed", 30, now_ms, "d")
admin.delete_topics(["doomed"])["doomed"].result(30)
summary["doomed_deleted"] = True

for key in sorted(summary):
    print(f"{key}={summary[key]}")
