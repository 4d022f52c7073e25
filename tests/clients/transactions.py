"""Transactions against Fjord with real clients: confluent-kafka (librdkafka)
and kafka-python transactional producers, `read_committed` consumers.

Usage: transactions.py BOOTSTRAP SCENARIO [ARGS...]

Scenarios (each prints `COUNT name value` lines and exits non-zero on a
failed check):

- basic: committed transactions are visible exactly once to
  read_committed consumers, aborted ones never; read_uncommitted sees both;
  an open transaction holds read_committed readers back (last stable offset).
- zombie: a second producer with the same transactional.id fences the first;
  the first's next transaction fails with a fencing error and writes nothing
  visible.
- eos: consume-transform-produce with offsets sent to the transaction; the
  group's committed offset moves only with committed transactions.
- kafka_python: the basic checks with kafka-python's transactional producer.
- produce_open TOPIC TXN_ID COUNT TIMEOUT_MS: begins a transaction with
  that transaction.timeout.ms, produces COUNT records, flushes, prints
  READY and sleeps (to be killed).
- produce_plain TOPIC PREFIX COUNT: COUNT records of an idempotent producer.
- produce_committed TOPIC TXN_ID PREFIX TXNS PER_TXN: TXNS transactions of
  PER_TXN records each, committed, one after another, retrying a transaction
  that fails abortably; prints COMMITTED n after each.
- read_committed TOPIC: reads the topic from the beginning with
  read_committed until it has been idle a while; prints the records' values
  sorted (`VALUE v` lines).
- kp_produce_open, kp_produce_plain, kp_produce_committed, kp_read_committed:
  the same four with kafka-python (a KafkaProducer with transactional_id, an
  idempotent KafkaProducer, a KafkaConsumer with
  isolation_level='read_committed'). kp_read_committed reads every partition
  up to its end offset as of its start (the last stable offset), so it ends
  once it has all, not after an idle time. kp_produce_committed recovers as
  an application must: see its doc.
"""

import os
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def count(name, value):
    print(f"COUNT {name} {value}", flush=True)


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", flush=True)
        sys.exit(1)


def create_topic(bootstrap, topic, partitions=3, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})]
    )
    for future in futures.values():
        try:
            future.result(30)
        except KafkaException as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise


def producer(bootstrap, txn_id, **extra):
    config = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 5,
    }
    config.update(extra)
    p = Producer(config)
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, isolation, idle_seconds=3.0, deadline_seconds=60.0):
    """Every record of `topic` from the beginning: (partition, offset, value)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    assigned = []
    consumer.subscribe([topic], on_assign=lambda c, parts: assigned.append(len(parts)))
    out = []
    last = time.monotonic()
    start = last
    while time.monotonic() - last < idle_seconds and time.monotonic() - start < deadline_seconds:
        message = consumer.poll(0.5)
        if not assigned:
            # The idle clock starts once partitions are assigned.
            last = time.monotonic()
        if message is None:
            continue
        if message.error():
            continue
        out.append((message.partition(), message.offset(), message.value().decode()))
        last = time.monotonic()
    consumer.close()
    return out


def produce_txn(p, topic, values, commit):
    p.begin_transaction()
    for value in values:
        p.produce(topic, key=value.encode(), value=value.encode())
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)


def basic(bootstrap):
    topic = f"txn-basic-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    p = producer(bootstrap, f"basic-{uuid.uuid4()}")
    committed = [f"a-{i}" for i in range(100)] + [f"c-{i}" for i in range(100)]
    produce_txn(p, topic, [f"a-{i}" for i in range(100)], commit=True)
    produce_txn(p, topic, [f"b-{i}" for i in range(50)], commit=False)
    produce_txn(p, topic, [f"c-{i}" for i in range(100)], commit=True)
    # A plain producer's records interleave with transactions.
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        plain.produce(topic, value=f"plain-{i}".encode())
    plain.flush(30)
    committed += [f"plain-{i}" for i in range(10)]

    seen = read_all(bootstrap, topic, "read_committed")
    values = [v for _, _, v in seen]
    count("read_committed", len(values))
    check(sorted(values) == sorted(committed), f"read_committed saw {len(values)} records, "
          f"missing {sorted(set(committed) - set(values))[:5]}, extra {sorted(set(values) - set(committed))[:5]}")
    check(len(set(values)) == len(values), "a record was seen twice")
    uncommitted = read_all(bootstrap, topic, "read_uncommitted")
    count("read_uncommitted", len(uncommitted))
    check(len(uncommitted) == 260, f"read_uncommitted saw {len(uncommitted)}, expected 260")

    # An open transaction holds read_committed readers at its first offset.
    p.begin_transaction()
    for i in range(20):
        p.produce(topic, value=f"open-{i}".encode())
    p.flush(30)
    plain.produce(topic, value=b"after-open", partition=0)
    plain.flush(30)
    held = [v for _, _, v in read_all(bootstrap, topic, "read_committed")]
    count("read_committed_while_open", len(held))
    check(not any(v.startswith("open-") for v in held), "records of an open transaction were visible")
    p.commit_transaction(30)
    after = [v for _, _, v in read_all(bootstrap, topic, "read_committed")]
    count("read_committed_after_commit", len(after))
    check(len([v for v in after if v.startswith("open-")]) == 20, "the committed transaction is not all visible")
    check("after-open" in after, "a record behind a committed transaction is not visible")
    print("OK basic", flush=True)


def zombie(bootstrap):
    topic = f"txn-zombie-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    txn_id = f"zombie-{uuid.uuid4()}"
    old = producer(bootstrap, txn_id)
    produce_txn(old, topic, ["old-0"], commit=True)
    old.begin_transaction()
    old.produce(topic, value=b"old-open")
    old.flush(30)
    # The new instance fences the old one and aborts its open transaction.
    new = producer(bootstrap, txn_id)
    produce_txn(new, topic, ["new-0"], commit=True)
    fenced = False
    try:
        old.produce(topic, value=b"old-late")
        old.flush(10)
        old.commit_transaction(10)
    except KafkaException as error:
        fenced = True
        print(f"old producer refused: {error}", flush=True)
    count("fenced", int(fenced))
    check(fenced, "the zombie producer's commit was accepted")
    values = sorted(v for _, _, v in read_all(bootstrap, topic, "read_committed"))
    count("visible", len(values))
    check(values == ["new-0", "old-0"], f"read_committed saw {values}")
    print("OK zombie", flush=True)


def eos(bootstrap):
    source = f"txn-in-{uuid.uuid4().hex[:8]}"
    sink = f"txn-out-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, source)
    create_topic(bootstrap, sink)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(300):
        plain.produce(source, key=str(i).encode(), value=f"in-{i}".encode())
    plain.flush(30)
    group = f"eos-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([source])
    p = producer(bootstrap, f"eos-{uuid.uuid4()}")
    processed = 0
    aborted_once = False
    deadline = time.monotonic() + 90
    while processed < 300 and time.monotonic() < deadline:
        messages = consumer.consume(50, 1.0)
        messages = [m for m in messages if not m.error()]
        if not messages:
            continue
        p.begin_transaction()
        for m in messages:
            p.produce(sink, key=m.key(), value=m.value().decode().replace("in-", "out-").encode())
        p.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        if not aborted_once:
            # The first batch is aborted: its outputs vanish and the
            # group's offsets stay; the consumer rewinds to them.
            p.abort_transaction(30)
            aborted_once = True
            committed = consumer.committed(consumer.assignment(), 30)
            for tp in committed:
                consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
            continue
        p.commit_transaction(30)
        processed += len(messages)
    consumer.close()
    count("processed", processed)
    check(processed == 300, f"processed {processed} of 300")
    out = [v for _, _, v in read_all(bootstrap, sink, "read_committed")]
    count("outputs", len(out))
    check(sorted(out) == sorted(f"out-{i}" for i in range(300)), f"outputs: {len(out)}, distinct {len(set(out))}")
    check_consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    meta = check_consumer.list_topics(source, 30)
    partitions = [TopicPartition(source, p) for p in meta.topics[source].partitions]
    committed = check_consumer.committed(partitions, 30)
    total = sum(tp.offset for tp in committed if tp.offset >= 0)
    check_consumer.close()
    count("committed_offsets", total)
    check(total == 300, f"the group's committed offsets sum to {total}, not 300")
    print("OK eos", flush=True)


def kafka_python(bootstrap):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic

    topic = f"txn-kp-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([KNewTopic(topic, 3, 1)])
    admin.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"kp-{uuid.uuid4()}")
    p.init_transactions()
    p.begin_transaction()
    for i in range(100):
        p.send(topic, value=f"a-{i}".encode())
    p.commit_transaction()
    p.begin_transaction()
    for i in range(40):
        p.send(topic, value=f"b-{i}".encode())
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    for i in range(60):
        p.send(topic, value=f"c-{i}".encode())
    p.commit_transaction()
    p.close()

    def consume(isolation):
        c = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level=isolation,
            consumer_timeout_ms=5000,
        )
        values = [m.value.decode() for m in c]
        c.close()
        return values

    committed = consume("read_committed")
    count("kp_read_committed", len(committed))
    expected = sorted([f"a-{i}" for i in range(100)] + [f"c-{i}" for i in range(60)])
    check(sorted(committed) == expected, f"kafka-python read_committed saw {len(committed)}")
    everything = consume("read_uncommitted")
    count("kp_read_uncommitted", len(everything))
    check(len(everything) == 200, f"kafka-python read_uncommitted saw {len(everything)}")
    # librdkafka reads what kafka-python wrote the same way.
    rd = sorted(v for _, _, v in read_all(bootstrap, topic, "read_committed"))
    check(rd == expected, f"librdkafka read_committed saw {len(rd)}")
    print("OK kafka_python", flush=True)


def produce_open(bootstrap, topic, txn_id, n, timeout_ms):
    create_topic(bootstrap, topic, partitions=6)
    p = producer(bootstrap, txn_id, **{"transaction.timeout.ms": int(timeout_ms)})
    p.begin_transaction()
    for i in range(int(n)):
        p.produce(topic, value=f"open-{i}".encode())
    p.flush(30)
    print("READY", flush=True)
    time.sleep(600)


def produce_plain(bootstrap, topic, prefix, n):
    plain = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(int(n)):
        plain.produce(topic, value=f"{prefix}-{i}".encode())
    check(plain.flush(60) == 0, "plain records not delivered")
    print("PRODUCED", flush=True)


def produce_committed(bootstrap, topic, txn_id, prefix, txns, per_txn):
    """TXNS transactions one after another; a commit that fails retriably is
    retried, one that needs an abort is aborted and the same records are sent
    again in a new transaction. Prints COMMITTED n after each commit."""
    create_topic(bootstrap, topic, partitions=6)
    p = producer(bootstrap, txn_id, **{"message.timeout.ms": 60000, "transaction.timeout.ms": 60000})
    done = 0
    aborted = 0
    while done < int(txns):
        values = [f"{prefix}-{done}-{i}" for i in range(int(per_txn))]
        committed = False
        try:
            p.begin_transaction()
            for value in values:
                p.produce(topic, key=value.encode(), value=value.encode())
            while True:
                try:
                    p.commit_transaction(60)
                    committed = True
                    break
                except KafkaException as error:
                    err = error.args[0]
                    print(f"commit of {done} failed: {err}", flush=True)
                    if err.retriable():
                        continue
                    raise
        except KafkaException as error:
            err = error.args[0]
            print(f"transaction {done} failed: {err}", flush=True)
            if err.fatal() or not err.txn_requires_abort():
                raise
            p.abort_transaction(60)
            aborted += 1
        if committed:
            done += 1
            print(f"COMMITTED {done}", flush=True)
    count("aborted_and_retried", aborted)


def read_committed(bootstrap, topic):
    values = sorted(v for _, _, v in read_all(bootstrap, topic, "read_committed", idle_seconds=5.0))
    for value in values:
        print(f"VALUE {value}")
    count("values", len(values))


# ----- kafka-python: the kill -9 scenarios -----


def kp_create_topic(bootstrap, topic, partitions):
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([KNewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    admin.close()


def kp_producer(bootstrap, txn_id, timeout_ms=60000):
    """A kafka-python transactional producer, initialized: its
    InitProducerId fences any earlier producer of `txn_id` and completes (or
    aborts) that one's last transaction before it returns. One whose
    initialization does not end within max_block_ms is left for a new one
    (kafka-python 2.2.15 can drop the request: see kp_bounded)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError, NoBrokersAvailable

    for _ in range(8):
        try:
            p = KafkaProducer(
                bootstrap_servers=bootstrap,
                transactional_id=txn_id,
                transaction_timeout_ms=int(timeout_ms),
                linger_ms=5,
                max_block_ms=KP_BLOCK_SECONDS * 1000,
                api_version_auto_timeout_ms=10000,
            )
        except NoBrokersAvailable as error:
            # Its bootstrap found no agent answering in time (one was just
            # killed, the others busy taking its partitions over): retry, as
            # an application would.
            print(f"NO BROKERS at start: {error!r}; again", flush=True)
            time.sleep(1)
            continue
        try:
            p.init_transactions()
            return p
        except KafkaTimeoutError as error:
            print(f"STUCK init_transactions: {error!r}; a new producer", flush=True)
            kp_abandon(p)
    check(False, f"no producer of {txn_id} could initialize")


# How long a kafka-python call that waits on the transaction coordinator may
# take before the producer is given up for a new one.
KP_BLOCK_SECONDS = 15


def kp_bounded(seconds, call):
    """Runs `call`; True if it returned within `seconds`, False if it has not
    (it is left running in its thread); re-raises what it raised.

    kafka-python 2.2.15 drops a transactional request (EndTxn,
    AddPartitionsToTxn, InitProducerId) whose coordinator's connection has
    failed by the time the request is dequeued (Sender.
    _maybe_send_transactional_request: KafkaConnectionError from
    await_ready leaves target_node set, so the handler is not retried), and
    commit_transaction()/abort_transaction() then wait forever. An
    application has to bound them and replace the producer."""
    outcome = {}

    def run():
        try:
            call()
            outcome["ok"] = True
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return False
    if "error" in outcome:
        raise outcome["error"]
    return True


def kp_abandon(p):
    """Closes a producer that is stuck or failed, without waiting on it."""
    try:
        if not kp_bounded(5, lambda: p.close(timeout=0)):
            print("closing the old producer did not finish", flush=True)
    except Exception as error:  # noqa: BLE001 - it is being thrown away
        # close() flushes first, and gives up on records still waiting:
        # the old producer is left as it is, fenced by the new one's epoch.
        print(f"closing the old producer: {error!r}", flush=True)


def kp_read_all(bootstrap, topic, isolation, deadline_seconds=60.0):
    """Every record of `topic` from the beginning to each partition's end
    offset as of the start (for read_committed, the last stable offset):
    (partition, offset, value)."""
    from kafka import KafkaConsumer, TopicPartition as KTopicPartition

    # kafka-python's blocking calls here may not return at all (position()
    # spins on an offset reset it does not poll for): a watchdog bounds them.
    watchdog = threading.Timer(
        deadline_seconds + 30, lambda: (print(f"FAILED: {isolation} reader of {topic} hung", flush=True), os._exit(1))
    )
    watchdog.daemon = True
    watchdog.start()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        # Agents may be restarting: give the bootstrap time to find one.
        api_version_auto_timeout_ms=10000,
    )
    deadline = time.monotonic() + deadline_seconds
    partitions = None
    while not partitions:
        check(time.monotonic() < deadline, f"no partitions of {topic}")
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            time.sleep(0.2)
    tps = [KTopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    # Positions set by seek, not by an offset reset: position() then answers
    # at once (kafka-python 2.2's position() spins on a pending reset).
    begins = consumer.beginning_offsets(tps)
    ends = consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, begins[tp])
    out = []
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        behind = {tp.partition: (consumer.position(tp), ends[tp]) for tp in tps if consumer.position(tp) < ends[tp]}
        check(time.monotonic() < deadline, f"{isolation} reader stuck at (position, end) {behind}")
        for tp, records in consumer.poll(timeout_ms=500).items():
            out.extend((tp.partition, r.offset, r.value.decode()) for r in records)
    consumer.close()
    watchdog.cancel()
    return out


def kp_produce_open(bootstrap, topic, txn_id, n, timeout_ms):
    kp_create_topic(bootstrap, topic, 6)
    p = kp_producer(bootstrap, txn_id, timeout_ms)
    p.begin_transaction()
    for i in range(int(n)):
        p.send(topic, value=f"open-{i}".encode())
    p.flush(30)
    print("READY", flush=True)
    time.sleep(600)


def kp_produce_plain(bootstrap, topic, prefix, n):
    from kafka import KafkaProducer

    plain = KafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, api_version_auto_timeout_ms=10000
    )
    futures = [plain.send(topic, value=f"{prefix}-{i}".encode()) for i in range(int(n))]
    plain.flush(60)
    for future in futures:
        future.get(0)
    plain.close()
    print("PRODUCED", flush=True)


def kp_produce_committed(bootstrap, topic, txn_id, prefix, txns, per_txn):
    """TXNS transactions one after another with kafka-python, each of PER_TXN
    records, printing COMMITTED n after each.

    kafka-python retries by itself what is retriable (a coordinator or a
    leader that went away: it looks them up again and resends). The rest, the
    loop handles as an application must to have each transaction committed
    once and an aborted attempt never seen:

    - a send or commit that raised while the producer can still abort (an
      abortable error): abort, and once the abort is acknowledged send the
      same records in a new transaction;
    - the producer cannot abort (a fatal error, such as fencing), or commit
      or abort has not returned in KP_BLOCK_SECONDS (kp_bounded): the outcome
      is unknown. A new producer with the same transactional id fences the
      old one; its init_transactions completes the transaction if its commit
      was decided and aborts it otherwise, and a read_committed read then
      tells which. Only an aborted one is sent again.

    What happened is printed (`ERROR`, `STUCK`, `ABORTED`, `REINIT` lines)
    and counted at the end."""
    kp_create_topic(bootstrap, topic, 6)
    p = kp_producer(bootstrap, txn_id)
    done = 0
    counts = {"aborted_and_retried": 0, "stuck": 0, "reinitialized": 0, "committed_before_failure": 0}
    while done < int(txns):
        values = [f"{prefix}-{done}-{i}" for i in range(int(per_txn))]
        outcome = kp_transaction(p, topic, values, done, counts)
        if outcome == "unknown":
            kp_abandon(p)
            p = kp_producer(bootstrap, txn_id)
            counts["reinitialized"] += 1
            seen = {v for _, _, v in kp_read_all(bootstrap, topic, "read_committed")}
            visible = [v for v in values if v in seen]
            print(f"REINIT after transaction {done}: {len(visible)} of its {len(values)} records committed", flush=True)
            check(len(visible) in (0, len(values)), f"transaction {done} is partly visible: {visible}")
            if visible:
                counts["committed_before_failure"] += 1
                outcome = "committed"
        if outcome == "committed":
            done += 1
            print(f"COMMITTED {done}", flush=True)
    kp_bounded(30, lambda: p.close(timeout=10))
    for name, value in counts.items():
        count(name, value)


def kp_transaction(p, topic, values, number, counts):
    """One attempt at a transaction of `values`: "committed", "aborted"
    (acknowledged by the coordinator) or "unknown"."""
    from kafka.errors import KafkaError

    try:
        p.begin_transaction()
        for value in values:
            p.send(topic, key=value.encode(), value=value.encode())
        if kp_bounded(KP_BLOCK_SECONDS, p.commit_transaction):
            return "committed"
        print(f"STUCK commit of transaction {number}", flush=True)
        counts["stuck"] += 1
        return "unknown"
    except KafkaError as error:
        print(f"ERROR transaction {number}: {error!r}", flush=True)
    try:
        if kp_bounded(KP_BLOCK_SECONDS, p.abort_transaction):
            print(f"ABORTED transaction {number}; sending it again", flush=True)
            counts["aborted_and_retried"] += 1
            return "aborted"
        print(f"STUCK abort of transaction {number}", flush=True)
        counts["stuck"] += 1
    except KafkaError as error:
        print(f"ERROR abort of transaction {number}: {error!r}", flush=True)
    return "unknown"


def kp_read_committed(bootstrap, topic):
    values = sorted(v for _, _, v in kp_read_all(bootstrap, topic, "read_committed"))
    for value in values:
        print(f"VALUE {value}")
    count("values", len(values))


def main():
    bootstrap, scenario, *args = sys.argv[1:]
    {
        "basic": basic,
        "zombie": zombie,
        "eos": eos,
        "kafka_python": kafka_python,
        "produce_open": produce_open,
        "produce_committed": produce_committed,
        "produce_plain": produce_plain,
        "read_committed": read_committed,
        "kp_produce_open": kp_produce_open,
        "kp_produce_plain": kp_produce_plain,
        "kp_produce_committed": kp_produce_committed,
        "kp_read_committed": kp_read_committed,
    }[scenario](bootstrap, *args)


if __name__ == "__main__":
    main()
