"""Produces with kafka-python (idempotent, acks=all) in two phases over one
producer — so over the partition leaders it learnt before the first phase — and
reports what the broker made it retry:

    python3 produce_then_wait.py <bootstrap> <topic> <records per phase>

Phase 1 produces and flushes, then prints `PHASE1 DONE` and waits for a line on
standard input (the test moves partition leadership meanwhile); phase 2 produces
and flushes again. Metadata is not refreshed in between on its own
(metadata_max_age_ms is long), so phase 2 first reaches the old leaders. Prints

    ACK <partition> <offset> <key> <wall clock seconds>
    FAIL <key> <error>
    RETRY <error name>      a produce response the client retried (kafka-python's log)
"""

import logging
import re
import sys
import threading
import time

from kafka import KafkaProducer

out = threading.Lock()


def emit(line):
    with out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Retries(logging.Handler):
    """Turns kafka-python's 'retrying ... Error: X' warnings into RETRY lines."""

    def emit(self, record):
        message = record.getMessage()
        if "retrying" in message:
            # "Error: [Error 6] NotLeaderForPartitionError: ..." or
            # "Error: <class 'kafka.errors.NotLeaderForPartitionError'>"
            names = re.findall(r"([A-Z]\w*Error)\b", message.split("Error: ", 1)[-1])
            emit(f"RETRY {names[0] if names else message.replace(' ', '_')}")


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sender = logging.getLogger("kafka.producer.sender")
    sender.setLevel(logging.WARNING)
    sender.addHandler(Retries())
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        enable_idempotence=True,
        acks="all",
        max_in_flight_requests_per_connection=1,
        linger_ms=2,
        retry_backoff_ms=100,
        metadata_max_age_ms=600000,
        delivery_timeout_ms=60000,
        request_timeout_ms=30000,
    )

    def send(phase):
        for i in range(count):
            key = f"{phase}{i:07d}"
            future = producer.send(topic, key=key.encode(), value=f"value of {key}".encode())
            future.add_callback(
                lambda md, key=key: emit(f"ACK {md.partition} {md.offset} {key} {time.time():.3f}"))
            future.add_errback(lambda error, key=key: emit(f"FAIL {key} {error!r}"))
        producer.flush(timeout=90)

    send("a")
    emit("PHASE1 DONE")
    sys.stdin.readline()
    send("b")
    producer.close(timeout=5)


if __name__ == "__main__":
    main()
