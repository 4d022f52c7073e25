"""Produces records with confluent-kafka (librdkafka), idempotent and acks=all,
and prints one line per acknowledged record, as soon as it is acknowledged:

    ACK <partition> <offset> <key> <wall clock seconds>

Failed deliveries print `FAIL <key> <error>`. Used by the crash tests: the agent is
killed while this runs, and every ACK line must stay true after its restart.

    python3 produce_acked.py <bootstrap> <topic> <records> [pause per 50 records, s]
"""

import sys
import time

from confluent_kafka import Producer


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.005
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": 20000,
        "retry.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
    })

    def on_delivery(error, message):
        key = message.key().decode()
        if error is None:
            print(f"ACK {message.partition()} {message.offset()} {key} {time.time():.3f}", flush=True)
        else:
            print(f"FAIL {key} {error}", flush=True)

    for i in range(count):
        key = f"k{i:07d}"
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=f"value of {key}".encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if i % 50 == 0:
            # Paced so the agent is killed mid-stream rather than after the end.
            time.sleep(pause)
    producer.flush(30)


if __name__ == "__main__":
    main()
