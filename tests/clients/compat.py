"""Kafka client compatibility check: one real client library creates topics through
its admin API, produces records with keys, headers and timestamps over several
partitions with every compression codec, with and without idempotence, and
consumes them back.

    python3 compat.py <client> <bootstrap> [--records N] [--partitions P]

<client> is one of confluent-kafka, kafka-python, aiokafka. Every mismatch is
printed and makes the script exit non-zero: counts must be exact, every
partition's records must come back in the order they were produced, and keys,
values, headers and timestamps must be byte-identical. The last line printed is a
JSON summary.
"""

import argparse
import asyncio
import json
import random
import sys
import time

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BASE_TIMESTAMP_MS = 1_700_000_000_000


def make_records(count, partitions, seed):
    """Deterministic records: (partition, key, value, headers, timestamp)."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        partition = i % partitions
        key = f"key-{i:06d}".encode()
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "fjord"]) for _ in range(rng.randint(1, 40)))
        value = f"{i}:{words}".encode() + bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        headers = [("index", str(i).encode()), ("bin", bytes([i % 256, 0, 255]))]
        timestamp = BASE_TIMESTAMP_MS + i
        records.append((partition, key, value, headers, timestamp))
    return records


def verify(label, produced, consumed, partitions):
    """Compares consumed records (partition, offset, key, value, headers, ts) with
    what was produced; returns a list of problems."""
    problems = []
    if len(consumed) != len(produced):
        problems.append(f"{label}: consumed {len(consumed)} records, produced {len(produced)}")
    for p in range(partitions):
        want = [r for r in produced if r[0] == p]
        got = sorted((r for r in consumed if r[0] == p), key=lambda r: r[1])
        offsets = [r[1] for r in got]
        if len(set(offsets)) != len(offsets):
            problems.append(f"{label}: partition {p} returned an offset twice")
        for index, (w, g) in enumerate(zip(want, got)):
            _, key, value, headers, ts = w
            _, offset, gkey, gvalue, gheaders, gts = g
            if (key, value, headers, ts) != (gkey, gvalue, gheaders, gts):
                problems.append(
                    f"{label}: partition {p} record {index} (offset {offset}) differs: "
                    f"want {(key, value[:20], headers, ts)} got {(gkey, gvalue[:20] if gvalue else gvalue, gheaders, gts)}"
                )
                break
        if len(want) != len(got):
            problems.append(f"{label}: partition {p}: consumed {len(got)}, produced {len(want)}")
    return problems


def normalize_headers(headers):
    return [(k if isinstance(k, str) else k.decode(), bytes(v) if v is not None else None) for k, v in (headers or [])]


# ----- confluent-kafka (librdkafka) -----


def run_confluent(bootstrap, topic, records, partitions, codec, idempotent):
    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _, future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).items():
        future.result(30)
    metadata = admin.list_topics(topic, timeout=10)
    if len(metadata.topics[topic].partitions) != partitions:
        raise AssertionError(f"admin created {len(metadata.topics[topic].partitions)} partitions, asked {partitions}")

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "compression.type": codec,
        "enable.idempotence": idempotent,
        "acks": "all",
        "linger.ms": 5,
    })
    failures = []
    acked = [0]

    def on_delivery(error, message):
        if error is not None:
            failures.append(str(error))
        else:
            acked[0] += 1

    for partition, key, value, headers, ts in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, partition=partition, timestamp=ts,
                                 headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise AssertionError(f"{remaining} undelivered, failures: {failures[:5]}")

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"verify-{topic}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    consumed = []
    deadline = time.time() + 60
    while len(consumed) < len(records) and time.time() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            if message.error():
                raise AssertionError(f"consume error: {message.error()}")
            _, ts = message.timestamp()
            consumed.append((message.partition(), message.offset(), message.key(), message.value(),
                             normalize_headers(message.headers()), ts))
    consumer.close()
    admin.delete_topics([topic])[topic].result(30)
    return acked[0], consumed


# ----- kafka-python -----


def run_kafka_python(bootstrap, topic, records, partitions, codec, idempotent):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    described = admin.describe_topics([topic])
    if len(described[0]["partitions"]) != partitions:
        raise AssertionError(f"describe_topics shows {described}")

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        enable_idempotence=idempotent,
        acks="all",
        linger_ms=5,
    )
    futures = [
        producer.send(topic, value=value, key=key, partition=partition, timestamp_ms=ts, headers=headers)
        for partition, key, value, headers, ts in records
    ]
    producer.flush(60)
    acked = sum(1 for f in futures if f.get(timeout=30) is not None)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    consumed = []
    deadline = time.time() + 60
    while len(consumed) < len(records) and time.time() < deadline:
        for tp, messages in consumer.poll(timeout_ms=1000, max_records=2000).items():
            for m in messages:
                consumed.append((tp.partition, m.offset, m.key, m.value, normalize_headers(m.headers), m.timestamp))
    consumer.close()
    admin.delete_topics([topic])
    admin.close()
    return acked, consumed


# ----- aiokafka -----


async def run_aiokafka_async(bootstrap, topic, records, partitions, codec, idempotent):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        enable_idempotence=idempotent,
        acks="all",
        linger_ms=5,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, partition=partition, timestamp_ms=ts, headers=headers)
            for partition, key, value, headers, ts in records
        ]
        acked = sum(1 for m in await asyncio.gather(*futures) if m is not None)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    consumed = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.time() + 60
        while len(consumed) < len(records) and time.time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for tp, messages in batches.items():
                for m in messages:
                    consumed.append((tp.partition, m.offset, m.key, m.value, normalize_headers(m.headers),
                                     m.timestamp))
    finally:
        await consumer.stop()
    await admin.delete_topics([topic])
    await admin.close()
    return acked, consumed


def run_aiokafka(*args):
    return asyncio.run(run_aiokafka_async(*args))


CLIENTS = {
    "confluent-kafka": run_confluent,
    "kafka-python": run_kafka_python,
    "aiokafka": run_aiokafka,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("bootstrap")
    parser.add_argument("--records", type=int, default=1000, help="records per codec and idempotence setting")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    run = CLIENTS[args.client]
    problems = []
    totals = {"produced": 0, "acknowledged": 0, "consumed": 0, "configurations": 0}
    seed = 0
    for idempotent in (False, True):
        for codec in CODECS:
            seed += 1
            label = f"{args.client} codec={codec} idempotent={idempotent}"
            topic = f"compat-{args.client}-{codec}-{'idem' if idempotent else 'plain'}"
            records = make_records(args.records, args.partitions, seed)
            started = time.time()
            acked, consumed = run(args.bootstrap, topic, records, args.partitions, codec, idempotent)
            if acked != len(records):
                problems.append(f"{label}: {acked} of {len(records)} acknowledged")
            found = verify(label, records, consumed, args.partitions)
            problems.extend(found)
            totals["produced"] += len(records)
            totals["acknowledged"] += acked
            totals["consumed"] += len(consumed)
            totals["configurations"] += 1
            print(f"{label}: produced {len(records)}, acknowledged {acked}, consumed {len(consumed)}, "
                  f"{'ok' if not found else 'MISMATCH'} in {time.time() - started:.1f}s", flush=True)
    for problem in problems:
        print("PROBLEM:", problem)
    print(json.dumps({"client": args.client, **totals, "problems": len(problems)}))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
