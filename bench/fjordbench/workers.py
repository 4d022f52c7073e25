"""Producer and consumer processes, built on confluent-kafka (librdkafka).

Each worker runs in its own process (the driver starts them with the ``spawn``
method, so no librdkafka instance is ever forked) and sends one result dict back
on a queue.

Every record's value starts with a fixed header, followed by filler up to the
record size:

    producer index (u16) | partition (u32) | sequence (u64) | send time (i64, ns)

The sequence counts per (producer, partition) from 0, which is what lets a
consumer prove no loss, no duplicates and order per partition. The send time is
``time.monotonic_ns()`` (CLOCK_MONOTONIC, one clock for every process on the
host): the moment ``produce()`` was called, or, for an open-loop rate, the moment
the schedule said the record should be sent, so a producer that falls behind
cannot hide the delay (no coordinated omission).

Latencies are kept as raw samples (milliseconds, ``array('d')``) for records whose
send time falls in the measurement window the driver gives; percentiles are
computed by the driver.
"""

import array
import os
import random
import struct
import time

HEADER = struct.Struct("<HIQq")

# Filler is cut from a pool larger than zstd's window, so the agent's segment
# compression sees no repeats between records that real data would not have.
POOL_BYTES = 16 * 1024 * 1024


def make_pool(kind, seed):
    """A byte pool to cut record filler from.

    ``letters``: random uppercase letters, as Apache Kafka's
    ``kafka-producer-perf-test`` sends (compresses to about 60 %);
    ``random``: incompressible bytes; ``zeros``: all zero (compresses to nothing).
    """
    rng = random.Random(seed)
    if kind == "zeros":
        return bytes(POOL_BYTES)
    raw = rng.randbytes(POOL_BYTES)
    if kind == "random":
        return raw
    if kind == "letters":
        table = bytes(65 + (b % 26) for b in range(256))
        return raw.translate(table)
    raise ValueError(f"unknown payload kind {kind!r}")


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


def _wait_until(monotonic_ns):
    while True:
        remaining = monotonic_ns - time.monotonic_ns()
        if remaining <= 0:
            return
        time.sleep(min(remaining / 1e9, 0.05))


def producer_main(spec, control, results):
    """Produces records as ``spec`` says and puts one result dict on ``results``.

    spec keys: index, bootstrap, topic, partitions (list), message_size, payload,
    acks, idempotence, compression, linger_ms, batch_size, message_max_bytes, rate (records/s or
    None for as fast as possible), messages (or None), duration_s (or None).

    control: ``ready`` (set once connected), ``start`` (a queue the driver puts
    ``(start_at_ns, (window_start_ns, window_end_ns))`` on; the window bounds the
    latency samples and the steady-state throughput).
    """
    try:
        results.put(_produce(spec, control))
    except BaseException as error:  # report, never hang the driver
        results.put({"role": "producer", "index": spec["index"], "fatal": repr(error)})
        raise


def _produce(spec, control):
    from confluent_kafka import Producer

    index = spec["index"]
    size = spec["message_size"]
    if size < HEADER.size:
        raise ValueError(f"message size must be at least {HEADER.size} bytes")
    filler_len = size - HEADER.size
    pool = make_pool(spec["payload"], seed=index)
    pool_span = len(pool) - filler_len
    config = {
        "bootstrap.servers": spec["bootstrap"],
        "acks": str(spec["acks"]),
        "enable.idempotence": bool(spec["idempotence"]),
        "compression.type": spec["compression"],
        "linger.ms": spec["linger_ms"],
        "batch.size": spec["batch_size"],
        "message.max.bytes": spec["message_max_bytes"],
        "client.id": f"fjord-bench-producer-{index}",
        # Fail loudly rather than retry forever if the agent is gone.
        "delivery.timeout.ms": 120_000,
    }
    producer = Producer(config)
    partitions = list(spec["partitions"])
    partition_count = len(partitions)
    sequences = [0] * partition_count
    latencies = array.array("d")
    state = {
        "acked": 0,
        "acked_bytes": 0,
        "window_acked_bytes": 0,
        "window_acked": 0,
        "window_sent_acked": 0,
        "window_sent_acked_bytes": 0,
        "errors": 0,
        "first_errors": [],
        "last_ack_ns": 0,
    }
    unpack = HEADER.unpack_from

    def on_delivery(error, message):
        now = time.monotonic_ns()
        if error is not None:
            state["errors"] += 1
            if len(state["first_errors"]) < 5:
                state["first_errors"].append(str(error))
            return
        value = message.value()
        _, _, _, sent = unpack(value)
        state["acked"] += 1
        state["acked_bytes"] += len(value)
        state["last_ack_ns"] = now
        if window_start <= now < window_end:
            state["window_acked"] += 1
            state["window_acked_bytes"] += len(value)
        if window_start <= sent < window_end:
            state["window_sent_acked"] += 1
            state["window_sent_acked_bytes"] += len(value)
            latencies.append((now - sent) / 1e6)

    # Connect and learn the partitions' leaders before the clock starts.
    producer.list_topics(spec["topic"], timeout=30)
    control["ready"].set()
    start, (window_start, window_end) = control["start"].get()
    _wait_until(start)
    cpu_start = _cpu_seconds()
    rate = spec["rate"]
    interval_ns = 1e9 / rate if rate else 0.0
    limit = spec["messages"]
    stop_at = start + int(spec["duration_s"] * 1e9) if spec["duration_s"] else None
    topic = spec["topic"]
    produce = producer.produce
    poll = producer.poll
    sent_count = 0
    behind_max_ns = 0
    i = 0
    while True:
        now = time.monotonic_ns()
        if stop_at is not None and now >= stop_at:
            break
        if limit is not None and i >= limit:
            break
        if rate:
            # Open loop: send what the schedule says is due, with the scheduled
            # time as the send time, then sleep until the next one is due.
            due_total = int((now - start) / interval_ns) + 1
            if limit is not None:
                due_total = min(due_total, limit)
            if due_total <= i:
                next_due = start + int(i * interval_ns)
                time.sleep(max(0.0, min((next_due - now) / 1e9, 0.01)))
                continue
            batch = range(i, due_total)
        else:
            batch = range(i, i + 256 if limit is None else min(i + 256, limit))
        for n in batch:
            k = n % partition_count
            partition = partitions[k]
            sequence = sequences[k]
            sequences[k] = sequence + 1
            sent_at = start + int(n * interval_ns) if rate else time.monotonic_ns()
            offset = (n * 7919) % pool_span
            value = HEADER.pack(index, partition, sequence, sent_at) + pool[offset : offset + filler_len]
            while True:
                try:
                    produce(topic, value, partition=partition, on_delivery=on_delivery)
                    break
                except BufferError:
                    poll(0.01)
            sent_count += 1
        if rate:
            behind_max_ns = max(behind_max_ns, time.monotonic_ns() - (start + int((batch.stop - 1) * interval_ns)))
        i = batch.stop
        poll(0)
    send_end = time.monotonic_ns()
    remaining = producer.flush(180)
    cpu_end = _cpu_seconds()
    per_partition = {str(partitions[k]): sequences[k] for k in range(partition_count)}
    return {
        "role": "producer",
        "index": index,
        "sent": sent_count,
        "unflushed": remaining,
        "acked": state["acked"],
        "acked_bytes": state["acked_bytes"],
        "window_acked": state["window_acked"],
        "window_acked_bytes": state["window_acked_bytes"],
        "window_sent_acked": state["window_sent_acked"],
        "window_sent_acked_bytes": state["window_sent_acked_bytes"],
        "errors": state["errors"],
        "first_errors": state["first_errors"],
        "start_ns": start,
        "send_end_ns": send_end,
        "last_ack_ns": state["last_ack_ns"],
        "behind_max_ms": behind_max_ns / 1e6,
        "sent_per_partition": per_partition,
        "latencies_ms": latencies.tobytes(),
        "cpu_seconds": cpu_end - cpu_start,
        "pid": os.getpid(),
    }


def consumer_main(spec, control, results):
    """Reads ``spec['partitions']`` from the beginning with ``assign()`` (no
    consumer group) until it has every record the producers sent there, and
    verifies them.

    control: ``ready`` (set once assigned and connected), ``expected`` (a queue
    the driver puts ``(counts, window)`` on once the producers are done: counts
    per ``producer << 32 | partition`` key, and the ``(start_ns, end_ns)`` window
    of send times whose end-to-end latencies count; the catch-up phase puts them
    before starting), ``deadline_s`` (seconds to wait without progress, once the
    counts are known).

    spec keys: index, bootstrap, topic, partitions, measure_e2e.
    """
    try:
        results.put(_consume(spec, control))
    except BaseException as error:
        results.put({"role": "consumer", "index": spec["index"], "fatal": repr(error)})
        raise


def _consume(spec, control):
    import queue

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    index = spec["index"]
    config = {
        "bootstrap.servers": spec["bootstrap"],
        # librdkafka needs a group id even for assign(); no group protocol is
        # used and no offsets are committed.
        "group.id": f"fjord-bench-{os.getpid()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "client.id": f"fjord-bench-consumer-{index}",
    }
    consumer = Consumer(config)
    topic = spec["topic"]
    partitions = list(spec["partitions"])
    consumer.list_topics(topic, timeout=30)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    measure_e2e = spec["measure_e2e"]
    latencies = array.array("d")
    sent_times = array.array("q")
    next_sequence = {}  # (producer << 32 | partition) -> next expected sequence
    last_offset = {p: -1 for p in partitions}
    received = 0
    received_bytes = 0
    duplicates = 0
    gap_records = 0
    order_violations = 0
    errors = []
    expected = None
    expected_total = None
    first_ns = None
    last_ns = None
    idle_since = time.monotonic_ns()
    deadline_ns = int(control["deadline_s"] * 1e9)
    gave_up = False
    unpack = HEADER.unpack_from
    control["ready"].set()
    cpu_start = _cpu_seconds()
    consume = consumer.consume
    # consume() returns when it has num_messages *or* its timeout passed, so a
    # long timeout would hold records that already arrived: while measuring
    # end-to-end latency it waits at most 5 ms (the error bound it adds).
    wait_s = 0.005 if measure_e2e else 0.1
    while True:
        if expected is None:
            try:
                expected, (window_start, window_end) = control["expected"].get_nowait()
                expected_total = sum(expected.values())
                idle_since = time.monotonic_ns()
            except queue.Empty:
                pass
        if expected_total is not None and received >= expected_total:
            break
        if first_ns is None:
            first_ns = time.monotonic_ns()
        messages = consume(num_messages=1000, timeout=wait_s)
        now = time.monotonic_ns()
        if not messages:
            if expected is not None and now - idle_since > deadline_ns:
                gave_up = True
                break
            continue
        idle_since = now
        last_ns = now
        for message in messages:
            error = message.error()
            if error is not None:
                if len(errors) < 5:
                    errors.append(str(error))
                continue
            value = message.value()
            producer, partition, sequence, sent = unpack(value)
            received += 1
            received_bytes += len(value)
            key = (producer << 32) | partition
            want = next_sequence.get(key, 0)
            if sequence == want:
                next_sequence[key] = sequence + 1
            elif sequence < want:
                duplicates += 1
            else:
                gap_records += sequence - want
                next_sequence[key] = sequence + 1
            offset = message.offset()
            p = message.partition()
            if offset <= last_offset.get(p, -1):
                order_violations += 1
            last_offset[p] = offset
            if measure_e2e:
                sent_times.append(sent)
                latencies.append((now - sent) / 1e6)
    cpu_end = _cpu_seconds()
    consumer.close()
    if expected is not None:
        latencies = array.array(
            "d", (lat for sent, lat in zip(sent_times, latencies) if window_start <= sent < window_end)
        )
    missing_tail = 0
    if expected is not None:
        for key, count in expected.items():
            got = next_sequence.get(key, 0)
            if got < count:
                missing_tail += count - got
    return {
        "role": "consumer",
        "index": index,
        "received": received,
        "received_bytes": received_bytes,
        "expected": expected_total,
        "duplicates": duplicates,
        "gap_records": gap_records,
        "missing_tail": missing_tail,
        "gave_up": gave_up,
        "order_violations": order_violations,
        "errors": errors,
        "first_ns": first_ns,
        "last_ns": last_ns,
        "latencies_ms": latencies.tobytes(),
        "cpu_seconds": cpu_end - cpu_start,
        "pid": os.getpid(),
    }
