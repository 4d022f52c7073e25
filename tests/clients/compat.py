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


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


async def aiokafka_admin_round(admin, topic, partitions):
    """Topic admin through aiokafka, every answer checked: create with configs,
    list, describe, describe configs, alter configs, create partitions. The
    topic is left with `partitions` partitions; `run_aiokafka_async` deletes it."""
    from aiokafka.admin import NewPartitions, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    start = max(1, partitions - 1)
    created = (await admin.create_topics([NewTopic(
        topic, num_partitions=start, replication_factor=1,
        topic_configs={"retention.ms": "86400000", "cleanup.policy": "delete"},
    )])).to_object()
    errors = {e["topic"]: e["error_code"] for e in created["topic_errors"]}
    expect(errors == {topic: 0}, f"create_topics: {created}")
    again = (await admin.create_topics([NewTopic(topic, num_partitions=start, replication_factor=1)])).to_object()
    expect(again["topic_errors"][0]["error_code"] == 36, f"creating it twice: TOPIC_ALREADY_EXISTS, got {again}")
    expect(topic in await admin.list_topics(), "list_topics lists the new topic")

    def configs_of(responses):
        found = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                expect(resource["error_code"] == 0, f"describe_configs: {resource}")
                if resource["resource_name"] == topic:
                    for entry in resource["config_entries"]:
                        found[entry["config_names"]] = entry["config_value"]
        return found

    described = configs_of(await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
    expect(described.get("retention.ms") == "86400000", f"retention.ms from create: {described.get('retention.ms')}")
    expect(described.get("cleanup.policy") == "delete", f"cleanup.policy: {described.get('cleanup.policy')}")
    altered = await admin.alter_configs([ConfigResource(
        ConfigResourceType.TOPIC, topic, configs={"retention.ms": "3600000", "cleanup.policy": "delete"})])
    for response in altered:
        for resource in response.to_object()["resources"]:
            expect(resource["error_code"] == 0, f"alter_configs: {resource}")
    described = configs_of(await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": None})]))
    expect(described.get("retention.ms") == "3600000", f"retention.ms after alter: {described}")
    bad = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"no.such.config": "1"})])
    codes = [r["error_code"] for response in bad for r in response.to_object()["resources"]]
    expect(codes and all(code != 0 for code in codes), f"an unknown config is refused: {codes}")

    if partitions > start:
        grown = (await admin.create_partitions({topic: NewPartitions(total_count=partitions)})).to_object()
        expect(all(e["error_code"] == 0 for e in grown["topic_errors"]), f"create_partitions: {grown}")
    shrink_refused = False
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=1)})
    except Exception:  # aiokafka raises INVALID_PARTITIONS as an exception
        shrink_refused = True
    expect(shrink_refused, "create_partitions to fewer partitions is refused")
    topics = await admin.describe_topics([topic])
    expect(len(topics) == 1 and topics[0]["error_code"] == 0, f"describe_topics: {topics}")
    expect(len(topics[0]["partitions"]) == partitions, f"{topic} has {len(topics[0]['partitions'])} partitions")


async def run_aiokafka_async(bootstrap, topic, records, partitions, codec, idempotent):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await aiokafka_admin_round(admin, topic, partitions)

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
    deleted = (await admin.delete_topics([topic])).to_object()
    expect([(e["topic"], e["error_code"]) for e in deleted["topic_error_codes"]] == [(topic, 0)],
           f"delete_topics: {deleted}")
    for _ in range(50):
        if topic not in await admin.list_topics():
            break
        await asyncio.sleep(0.1)
    expect(topic not in await admin.list_topics(), "a deleted topic is not listed")
    await admin.close()
    return acked, consumed


def run_aiokafka(*args):
    return asyncio.run(run_aiokafka_async(*args))


CLIENTS = {
    "confluent-kafka": run_confluent,
    "kafka-python": run_kafka_python,
    "aiokafka": run_aiokafka,
}


def produce_fixture(argv):
    """`compat.py produce-fixture BOOTSTRAP TOPIC COUNT [--partitions P] [--codec C]
    [--idempotent]`: confluent-kafka produces COUNT records whose headers differ
    per record and whose timestamps it sets, for a consumer (kcat) to check:
    record i goes to partition i % P with key `key-{i:06d}`, value
    `value {i} of {TOPIC}`, headers index=i, parity=even|odd, tag=t{i % 7}, and
    timestamp 1600000000000 + 1000 i."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    parser = argparse.ArgumentParser(prog="compat.py produce-fixture")
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("count", type=int)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--codec", default="none")
    parser.add_argument("--idempotent", action="store_true")
    args = parser.parse_args(argv)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for future in admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions,
                                                replication_factor=1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": args.bootstrap, "compression.type": args.codec,
                         "enable.idempotence": args.idempotent, "acks": "all", "linger.ms": 5})
    failures = []
    acked = [0]

    def on_delivery(error, _message):
        if error is not None:
            failures.append(str(error))
        else:
            acked[0] += 1

    for i in range(args.count):
        headers = [("index", str(i).encode()), ("parity", b"even" if i % 2 == 0 else b"odd"),
                   ("tag", f"t{i % 7}".encode())]
        while True:
            try:
                producer.produce(args.topic, key=f"key-{i:06d}".encode(), value=f"value {i} of {args.topic}".encode(),
                                 partition=i % args.partitions, timestamp=1_600_000_000_000 + 1000 * i,
                                 headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        print(f"{remaining} undelivered, failures: {failures[:5]}")
        sys.exit(1)
    print(f"produce-fixture {args.topic}: acknowledged {acked[0]}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "produce-fixture":
        produce_fixture(sys.argv[2:])
        return
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
