"""Feeds the word-count applications (`quix_wordcount.py`,
`faust_wordcount.py`) a known text and checks what they counted, with
confluent-kafka (librdkafka).

The text: LINES lines, each of 1 to 8 words drawn from a fixed vocabulary of
40 words by a generator seeded with SEED; line `i` is keyed `line-i`. The
same seed and line count always give the same text, so the expected count of
every word in lines `[0, upto)` is known exactly.

Usage: wordcount_driver.py COMMAND BOOTSTRAP [OPTIONS]

- create BOOTSTRAP --topic T [--topic T ...] --partitions P: creates the
  topics (an existing one is fine).
- produce BOOTSTRAP --topic T --seed S --lines N --start A --end B: produces
  lines [A, B) with an idempotent producer (acks=all), retrying through an
  agent's death; prints `PRODUCED n`.
- check BOOTSTRAP --topic T --seed S --lines N --upto M --deadline SECONDS
  [--changelog-contains TEXT ...]: reads T from the beginning with
  `isolation.level=read_committed` until the last count of every word equals
  its count in lines [0, M) (or the deadline passes), keeps reading until
  nothing new arrives for a few seconds, then checks
    - the last count of every word is exact (and no other word appears);
    - each word's counts, in offset order, are exactly 1, 2, ..., n: no
      count was produced twice or skipped, so no aborted or duplicated work
      is visible;
    - every topic whose name contains each TEXT (the applications'
      changelogs) exists and has `cleanup.policy=compact` (DescribeConfigs).
  Prints `RESULT {json}` and exits 1 on a failed check.
"""

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

VOCABULARY = [
    "alder", "birch", "cedar", "delta", "ember", "fjord", "glade", "heath",
    "inlet", "jetty", "kelp", "larch", "marsh", "north", "ocean", "pine",
    "quay", "reef", "skerry", "tide", "umber", "vale", "wharf", "xeric",
    "yew", "zephyr", "basin", "cliff", "dune", "estuary", "fen", "gulf",
    "harbor", "isle", "jungle", "knoll", "lagoon", "mesa", "nook", "oasis",
]


def text(seed, lines):
    """The `lines` lines of the text of `seed`."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 8)))
        for _ in range(lines)
    ]


def expected_counts(seed, lines, upto):
    counts = Counter()
    for line in text(seed, lines)[:upto]:
        counts.update(line.split())
    return dict(counts)


def fail(message, result):
    result["failed"] = message
    print(f"RESULT {json.dumps(result, sort_keys=True)}", flush=True)
    print(f"FAILED: {message}", flush=True)
    sys.exit(1)


def create(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=args.partitions, replication_factor=1) for t in args.topic]
    )
    for topic, future in futures.items():
        try:
            future.result(60)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        print(f"CREATED {topic}", flush=True)


def produce(args):
    lines = text(args.seed, args.lines)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120000,
        }
    )
    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(str(error))

    for i in range(args.start, args.end):
        while True:
            try:
                producer.produce(
                    args.topic, key=f"line-{i}", value=lines[i], on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(150)
    if left or failures:
        print(f"FAILED: {left} undelivered, errors {failures[:5]}", flush=True)
        sys.exit(1)
    print(f"PRODUCED {args.end - args.start}", flush=True)


def changelog_policies(admin, contains):
    """topic -> cleanup.policy of every topic whose name contains `contains`."""
    names = sorted(
        name for name in admin.list_topics(timeout=30).topics if contains in name
    )
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    policies = {}
    for resource, future in admin.describe_configs(resources).items():
        configs = future.result(30)
        policies[resource.name] = configs["cleanup.policy"].value
    return policies


def check(args):
    expected = expected_counts(args.seed, args.lines, args.upto)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"wordcount-check-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    metadata = consumer.list_topics(args.topic, timeout=30)
    partitions = sorted(metadata.topics[args.topic].partitions)
    consumer.assign([TopicPartition(args.topic, p, 0) for p in partitions])

    started = time.time()
    deadline = started + args.deadline
    sequences = {}  # word -> its counts in offset order
    records = 0
    matched_at = None
    last_record_at = time.time()
    while True:
        message = consumer.poll(0.5)
        now = time.time()
        if message is not None:
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {message.error()}", file=sys.stderr, flush=True)
                continue
            word = message.key().decode()
            sequences.setdefault(word, []).append(int(message.value()))
            records += 1
            last_record_at = now
        last = {word: counts[-1] for word, counts in sequences.items()}
        if matched_at is None and last == expected:
            matched_at = now
        if matched_at is not None and now - last_record_at >= args.settle:
            break
        if now > deadline:
            break
    consumer.close()

    last = {word: counts[-1] for word, counts in sequences.items()}
    broken = {}
    for word, counts in sequences.items():
        at = next((i for i, n in enumerate(counts) if n != i + 1), None)
        if at is not None:
            broken[word] = {"at": at, "around": counts[max(0, at - 3) : at + 5]}
    result = {
        "topic": args.topic,
        "upto": args.upto,
        "records": records,
        "words_expected": sum(expected.values()),
        "words_counted": sum(last.values()),
        "exact_after_s": round(matched_at - started, 3) if matched_at else None,
    }
    if last != expected:
        wrong = {
            w: {"expected": expected.get(w), "counted": last.get(w)}
            for w in sorted(set(expected) | set(last))
            if expected.get(w) != last.get(w)
        }
        fail(f"counts differ after {args.deadline} s: {wrong}; sequences broken: {broken}", result)
    if broken:
        fail(f"counts produced twice or skipped (where each first breaks): {broken}", result)

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    changelogs = {}
    for contains in args.changelog_contains:
        policies = changelog_policies(admin, contains)
        if not policies:
            fail(f"no topic named like {contains!r}", result)
        changelogs.update(policies)
    result["changelogs"] = changelogs
    not_compacted = {t: p for t, p in changelogs.items() if "compact" not in p.split(",")}
    if not_compacted:
        fail(f"changelog topics without cleanup.policy=compact: {not_compacted}", result)
    print(f"RESULT {json.dumps(result, sort_keys=True)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    create_parser = commands.add_parser("create")
    create_parser.add_argument("bootstrap")
    create_parser.add_argument("--topic", action="append", required=True)
    create_parser.add_argument("--partitions", type=int, default=3)

    def text_options(sub):
        sub.add_argument("bootstrap")
        sub.add_argument("--topic", required=True)
        sub.add_argument("--seed", type=int, required=True)
        sub.add_argument("--lines", type=int, required=True)

    produce_parser = commands.add_parser("produce")
    text_options(produce_parser)
    produce_parser.add_argument("--start", type=int, required=True)
    produce_parser.add_argument("--end", type=int, required=True)

    check_parser = commands.add_parser("check")
    text_options(check_parser)
    check_parser.add_argument("--upto", type=int, required=True)
    check_parser.add_argument("--deadline", type=float, default=120.0)
    check_parser.add_argument("--settle", type=float, default=3.0)
    check_parser.add_argument("--changelog-contains", action="append", default=[])

    args = parser.parse_args()
    {"create": create, "produce": produce, "check": check}[args.command](args)


if __name__ == "__main__":
    main()
