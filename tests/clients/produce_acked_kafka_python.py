"""Produces records with kafka-python, idempotent and acks=all, and prints one
line per acknowledged record as soon as it is acknowledged — the same output as
produce_acked.py (confluent-kafka), so crash tests can run both clients:

    ACK <partition> <offset> <key> <wall clock seconds>
    FAIL <key> <error>

    python3 produce_acked_kafka_python.py <bootstrap> <topic> <records>
        [pause per 50 records, s] [--prefix P] [--timeout-ms N]
        [--until-stdin-closes]

Keys are `<prefix><index, 7 digits>` (prefix `p` by default). With
`--until-stdin-closes` it stops producing early when standard input closes (then
waits for what is in flight).
"""

import argparse
import sys
import threading
import time

from kafka import KafkaProducer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("count", type=int)
    parser.add_argument("pause", type=float, nargs="?", default=0.005)
    parser.add_argument("--prefix", default="p")
    parser.add_argument("--until-stdin-closes", action="store_true")
    parser.add_argument("--timeout-ms", type=int, default=60000)
    args = parser.parse_args()

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap.split(","),
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        delivery_timeout_ms=args.timeout_ms,
        request_timeout_ms=min(30000, args.timeout_ms - 1000),
        retry_backoff_ms=100,
        reconnect_backoff_max_ms=500,
        # kafka-python's idempotent producer allows one request in flight.
        max_in_flight_requests_per_connection=1,
    )
    out = threading.Lock()

    def emit(line):
        with out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def on_ack(key):
        return lambda metadata: emit(
            f"ACK {metadata.partition} {metadata.offset} {key} {time.time():.3f}"
        )

    def on_fail(key):
        return lambda error: emit(f"FAIL {key} {type(error).__name__}: {error}".replace("\n", " "))

    stop = threading.Event()
    if args.until_stdin_closes:
        def watch_stdin():
            sys.stdin.read()
            stop.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    for i in range(args.count):
        if stop.is_set():
            break
        key = f"{args.prefix}{i:07d}"
        future = producer.send(args.topic, key=key.encode(), value=f"value of {key}".encode())
        future.add_callback(on_ack(key))
        future.add_errback(on_fail(key))
        if i % 50 == 0:
            time.sleep(args.pause)
    producer.flush(timeout=args.timeout_ms / 1000 + 10)
    producer.close(timeout=5)


if __name__ == "__main__":
    main()
