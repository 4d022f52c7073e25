"""A confluent-kafka consumer in a group that reads a topic until it has seen
`expected` distinct keys or `timeout` seconds pass, committing as it goes; prints
`KEY <key>` for every distinct key and `SEEN <distinct keys> <records read>` at
the end. Used while agents are killed
and restarted: the group must keep consuming.

    python3 group_consume.py <bootstrap> <topic> <group> <expected> <timeout s>
"""

import sys
import time

from confluent_kafka import Consumer


def main():
    bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
    expected, timeout = int(sys.argv[4]), float(sys.argv[5])
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 500,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    consumer.subscribe([topic])
    seen = set()
    read = 0
    deadline = time.time() + timeout
    while len(seen) < expected and time.time() < deadline:
        for message in consumer.consume(num_messages=500, timeout=0.5):
            if message.error():
                continue
            read += 1
            seen.add(message.key())
    consumer.close()
    for key in sorted(seen):
        print(f"KEY {key.decode()}")
    print(f"SEEN {len(seen)} {read}", flush=True)


if __name__ == "__main__":
    main()
