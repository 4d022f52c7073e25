"""A confluent-kafka consumer in a group that reads up to `max` records (or
until it has been idle for `idle` seconds), commits their offsets synchronously,
prints what it read and what the group then has committed, and leaves:

    python3 consume_commit.py <bootstrap> <topic> <group> <max> [idle s]

    REC <partition> <offset> <key>
    COMMITTED <partition> <offset>     the group's committed offset, as the coordinator returns it
"""

import sys
import time

from confluent_kafka import Consumer, TopicPartition


def main():
    bootstrap, topic, group, most = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    idle = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "reconnect.backoff.max.ms": 500,
    })
    consumer.subscribe([topic])
    read = 0
    last = time.time()
    deadline = time.time() + 120
    while read < most and time.time() - last < idle and time.time() < deadline:
        for message in consumer.consume(num_messages=min(100, most - read), timeout=0.3):
            if message.error():
                continue
            read += 1
            last = time.time()
            print(f"REC {message.partition()} {message.offset()} {message.key().decode()}", flush=True)
    if read:
        consumer.commit(asynchronous=False)
    partitions = [TopicPartition(topic, p) for p in consumer.list_topics(topic).topics[topic].partitions]
    for tp in consumer.committed(partitions, timeout=30):
        print(f"COMMITTED {tp.partition} {tp.offset}", flush=True)
    consumer.close()


if __name__ == "__main__":
    main()
