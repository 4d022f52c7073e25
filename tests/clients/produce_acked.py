"""Produces records with confluent-kafka (librdkafka), acks=all (idempotent unless
told otherwise) or acks=1, and prints one line per acknowledged record, as soon
as it is acknowledged:

    ACK <partition> <offset> <key> <wall clock seconds>

Failed deliveries print `FAIL <key> <error>`. Used by the crash tests: the agent is
killed while this runs, and every ACK line must stay true after its restart.

    python3 produce_acked.py <bootstrap> <topic> <records> [pause per 50 records, s]
        [--prefix P] [--no-idempotence] [--acks all|1] [--errors]
        [--timeout-ms N] [--until-stdin-closes]

Keys are `<prefix><index, 7 digits>` (prefix `k` by default). With `--errors`,
client-level errors librdkafka reports (error_cb) print as

    ERROR <name> <fatal 0|1> <retriable 0|1> <text>

(connection failures to a stopped agent show up here; a fatal error means the
idempotent producer gave up). `--no-idempotence` sends with one request in
flight per connection, so a retry never reorders while the partition stays on
one agent (a partition that moves is written over two connections, and a retry
from the first may land after later records): a record stored twice is a
response the broker lost, not the client's doing. `--acks 1` asks only the
leader's acknowledgement (durable on its disk, not yet committed); librdkafka
refuses idempotence with acks=1, so it implies `--no-idempotence` (one request
in flight per connection, many retries: duplicates possible, and a record
whose ACK line was printed must not be lost where the broker promises it).
`--until-stdin-closes` stops producing early when standard input closes (then
waits for what is in flight).
"""

import argparse
import sys
import threading
import time

from confluent_kafka import Producer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("count", type=int)
    parser.add_argument("pause", type=float, nargs="?", default=0.005)
    parser.add_argument("--prefix", default="k")
    parser.add_argument("--no-idempotence", action="store_true")
    parser.add_argument("--acks", choices=["all", "1"], default="all")
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--until-stdin-closes", action="store_true")
    parser.add_argument("--timeout-ms", type=int, default=20000)
    args = parser.parse_args()
    if args.acks == "1":
        args.no_idempotence = True

    config = {
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": not args.no_idempotence,
        "acks": args.acks,
        "linger.ms": 2,
        "message.timeout.ms": args.timeout_ms,
        "retry.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
    }
    if args.no_idempotence:
        config["max.in.flight.requests.per.connection"] = 1
        config["retries"] = 1000000
    if args.errors:
        def on_error(error):
            text = str(error).replace("\n", " ")
            print(
                f"ERROR {error.name()} {int(error.fatal())} {int(error.retriable())} {text}",
                flush=True,
            )
        config["error_cb"] = on_error
    producer = Producer(config)

    def on_delivery(error, message):
        key = message.key().decode()
        if error is None:
            print(f"ACK {message.partition()} {message.offset()} {key} {time.time():.3f}", flush=True)
        else:
            print(f"FAIL {key} {error}", flush=True)

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
        while True:
            try:
                producer.produce(args.topic, key=key.encode(), value=f"value of {key}".encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if i % 50 == 0:
            # Paced so the agent is killed mid-stream rather than after the end.
            time.sleep(args.pause)
    producer.flush(max(30, args.timeout_ms / 1000 + 10))


if __name__ == "__main__":
    main()
