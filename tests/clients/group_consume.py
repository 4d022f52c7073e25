"""One confluent-kafka member of a consumer group, reading a topic and committing
as it goes (auto-commit), until its standard input closes or `timeout` seconds
pass. Several run at once in one group while agents are killed, paused and
restarted: the test reads their output as it comes and closes their input once
the group has seen everything it expects.

    python3 group_consume.py <bootstrap> <topic> <group> [timeout s]

Prints, as they happen:

    ASSIGN <p>,<p>,...     partitions assigned (empty list: none)
    REVOKE <p>,<p>,...     partitions revoked (or lost)
    REC <partition> <offset> <key>
    CONSUMER_ERROR <text>  an error event from the client (retriable ones too)
    DONE <records read>    at the end
"""

import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError


def main():
    bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 180.0
    out = threading.Lock()

    def emit(text):
        with out:
            sys.stdout.write(text)
            sys.stdout.flush()

    def partitions(parts):
        return ",".join(str(p.partition) for p in parts)

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 500,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "reconnect.backoff.max.ms": 500,
        "error_cb": lambda error: emit(f"CONSUMER_ERROR {str(error).replace(chr(10), ' ')}\n"),
    })
    consumer.subscribe(
        [topic],
        on_assign=lambda c, parts: emit(f"ASSIGN {partitions(parts)}\n"),
        on_revoke=lambda c, parts: emit(f"REVOKE {partitions(parts)}\n"),
        on_lost=lambda c, parts: emit(f"REVOKE {partitions(parts)}\n"),
    )
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    read = 0
    deadline = time.time() + timeout
    while not stop.is_set() and time.time() < deadline:
        lines = []
        for message in consumer.consume(num_messages=500, timeout=0.3):
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    lines.append(f"CONSUMER_ERROR {message.error()}\n")
                continue
            read += 1
            lines.append(f"REC {message.partition()} {message.offset()} {message.key().decode()}\n")
        if lines:
            emit("".join(lines))
    consumer.close()
    emit(f"DONE {read}\n")


if __name__ == "__main__":
    main()
