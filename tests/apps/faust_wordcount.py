"""A stateful Faust (faust-streaming) word count with exactly-once processing.

One agent reads lines of text from INPUT and, for each word of a line, adds
one to the word's count in a Table (backed by the compacted
`GROUP-word_counts-changelog` topic Faust creates) and produces
`word -> count` (the count as ASCII digits) to OUTPUT, one record per
occurrence. With `processing_guarantee="exactly_once"` Faust commits through
one transactional producer per partition number (the transactional id is
`GROUP-<topic group>-<partition>`, stable across restarts), and its
consumers, the table recovery among them, read `read_committed`. Every
topic has one partition (`--partitions`, default 1; INPUT and OUTPUT must
have as many): a Faust transaction holds what is sent to and consumed from
one partition number, so everything one line causes (its offset, the
changelog writes and the counts) is in one transaction only on one
partition.

The table lives in memory (`store="memory://"`): the changelog is its only
durable copy, and every start (a restart on the same state directory as much
as on a fresh one) restores the table from it. A RocksDB store keeps the
writes of a transaction that never commits (Faust has no rollback of its
local store), so after a `kill -9` it can hold counts the changelog does
not, and a restart on it would count those words twice. The counts are sent
as they are made, in the transaction open while the line is counted
(`stream_publish_on_commit` would hold them until the commit of the line's
offset, but publishes the records attached to one offset in heap order, not
in the order they were sent: the counts of a word that appears twice in a
line came out as 25 then 24).

Faust 0.15.3 (over aiokafka 0.14.0) is not exactly once on its own; against
Fjord, about one run in three of `agent/tests/stream_apps.rs` lost or
repeated words before these patches (`patch_faust`), each fault traced
through the app's offsets, the transactions and the topics, with Fjord's
side of each consistent: every record and marker where Kafka puts it, no
aborted record read, offsets committed with their transaction. Line numbers
are faust-streaming 0.15.3's.

1. `Recovery.on_recovery_completed` (faust/tables/recovery.py:624) resumes
   the stream partitions (649), seeks them to their committed offsets (655)
   and then resumes the flow control (659), whose `resume` (mode,
   utils/queues.py:97) clears the agents' queues. Records fetched while the
   seek runs are delivered into the queues and dropped there, neither
   processed nor acked, and the consumer commits past them
   (`Consumer._new_offset`, faust/transport/consumer.py:1140, takes an
   unacked record right at the committed offset for a gap of one, which a
   transaction marker there would be): the words of a line lost (seen: line
   631, line 600, line 2108). The seek also makes aiokafka fetch again from
   the committed offset, and `Consumer._drain_messages` (1209) passes again
   the record at its read offset, the last one it processed
   (`offset >= r_offset`): a line counted twice (seen: line 1199, line
   2399). The patch seeks before it resumes anything.
2. `AIOKafkaConsumerThread._highwaters` (faust/transport/drivers/
   aiokafka.py:1058) under exactly-once returns the last stable offset the
   consumer cached from its last fetch response, `None` before the first,
   which the recovery (faust/tables/recovery.py:676) takes for an empty
   changelog: the table starts from nothing (seen: counts from 1 again after
   a restart, in a run in three). The patch asks the broker (`end_offsets`,
   ListOffsets `read_committed`).
3. `AIOKafkaConsumerThread._fetch_records` (aiokafka.py:1088) hands
   aiokafka the consumer's live set of active partitions; emptied meanwhile
   (as the recovery pauses the changelog before the streams resume), it
   means every partition to aiokafka, which returns and consumes records of
   paused partitions, and `Consumer.getmany` (consumer.py:761) drops them
   (seen, with 1. patched alone: a restarted app that never counted a
   line). The patch fetches for a copy of the set, and nothing when empty.
4. A commit takes the offsets processed so far, then commits the
   transaction, while the agent goes on counting: the table's changelog
   writes (sent through the producer buffer as they are made) and the
   counts of the lines counted meanwhile go into the committing
   transaction, those lines' offsets into the next one, so a `kill -9` in
   between counts them twice (seen: the counts of line 60 in the
   transaction that committed offset 60, and line 60 counted again after
   the kill, in two runs of three). The patch makes each commit exclusive
   with the counting of a line (`PROCESSING`), and has it wait, first,
   until the producer buffer has handed every changelog write to the
   transactional producer.

Not patched, as the input here has no gaps in its offsets (it is not
written in transactions): `Consumer._add_gap` (consumer.py:1157) counts the
record after a gap (a transaction marker, aborted records) as part of the
gap, so as processed before it is, and a commit can take its offset while it
waits in the agent's queue.

Faust sends to a topic its consumer does not read outside any transaction
(it finds no partitions for it): the app also reads OUTPUT (and ignores it).

Usage:
    faust_wordcount.py --bootstrap HOST:PORT[,HOST:PORT...] --input TOPIC
                       --output TOPIC --group GROUP --state-dir DIR

DIR is Faust's data directory (the table itself is in memory). Every option
also reads an environment variable (`WORDCOUNT_BOOTSTRAP`,
`WORDCOUNT_INPUT`, `WORDCOUNT_OUTPUT`, `WORDCOUNT_GROUP`,
`WORDCOUNT_STATE_DIR`).

It prints one JSON object a line on stdout, for the test that runs it:
`{"ev": "started", "t": ...}` once; `{"ev": "recovery-started", ...}` and
`{"ev": "recovery-done", ...}` around reading the changelog into the table
(Faust's "Restoring state from changelog topics" and "Done reading from
changelog topics" log lines); `{"ev": "committed", ...}` after each commit
of its transactions; `{"ev": "processed", "n": N, "t": ...}` for its first
counted word and every 100th after (N counts this process's words; `t` is
the wall clock). It runs until killed.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import cast

import faust
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer

#: Held while a line is counted and while a commit runs: a commit never
#: sees half a line, and nothing is counted while it commits.
PROCESSING = asyncio.Lock()


def report(event, **fields):
    print(json.dumps({"ev": event, "t": time.time(), **fields}), flush=True)


class RecoveryEvents(logging.Handler):
    """Turns Faust's log lines about table recovery into events."""

    def emit(self, record):
        message = record.getMessage()
        if "Restoring state from changelog topics" in message:
            report("recovery-started")
        elif "Done reading from changelog topics" in message:
            report("recovery-done")


async def on_recovery_completed(self, generation_id=0):
    """`Recovery.on_recovery_completed` of faust-streaming 0.15.3, with the
    stream partitions resumed only after the seek and the flow control's
    resume (which clears the agents' queues): see 1. in the module's doc."""
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(
            f"Recovery rebalancing again app id "
            f"{self.app.consumer_generation_id} param {generation_id}"
        )
        return
    if assignment:
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    self.completed.set()
    self.app.flow_control.resume()
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    consumer.resume_flow()
    await self.app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def highwaters(self, partitions):
    """The last stable offsets from the broker: see 2. in the module's doc."""
    return await self._ensure_consumer().end_offsets(partitions)


fetch_records = AIOKafkaConsumerThread._fetch_records


async def fetch_active_records(self, consumer, active_partitions, timeout=None, max_records=None):
    """Records of the partitions active when called, none if none is: see
    3. in the module's doc."""
    partitions = frozenset(active_partitions or ())
    if not partitions:
        return {}
    return await fetch_records(self, consumer, partitions, timeout, max_records)


def patch_faust():
    """Patches faust-streaming 0.15.3 as the module's doc says."""
    Recovery.on_recovery_completed = on_recovery_completed
    AIOKafkaConsumerThread._highwaters = highwaters
    AIOKafkaConsumerThread._fetch_records = fetch_active_records

    # 4.: count what the producer buffer has taken out of its queue but not
    # yet handed to the producer.
    send_pending = ProducerBuffer._send_pending

    async def counted_send_pending(self, fut):
        self.sending = getattr(self, "sending", 0) + 1
        try:
            await send_pending(self, fut)
        finally:
            self.sending -= 1

    ProducerBuffer._send_pending = counted_send_pending

    force_commit = Consumer.force_commit

    async def exclusive_force_commit(self, *args, **kwargs):
        async with PROCESSING:
            buffer = cast(ProducerBuffer, self.app.producer.buffer)
            while buffer.size or getattr(buffer, "sending", 0):
                await asyncio.sleep(0.002)
            return await force_commit(self, *args, **kwargs)

    Consumer.force_commit = exclusive_force_commit

    commit = TransactionManager.commit

    async def commit_and_report(self, *args, **kwargs):
        result = await commit(self, *args, **kwargs)
        report("committed")
        return result

    TransactionManager.commit = commit_and_report


def options():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])

    def option(name, required=True, default=None):
        env = "WORDCOUNT_" + name.upper().replace("-", "_")
        parser.add_argument(
            f"--{name}",
            default=os.environ.get(env, default),
            required=required and env not in os.environ and default is None,
        )

    option("bootstrap")
    option("input")
    option("output")
    option("group")
    option("state-dir")
    option("partitions", default="1")
    option("commit-interval", default="0.5")
    return parser.parse_args()


def build(args):
    partitions = int(args.partitions)
    app = faust.App(
        args.group,
        broker=[f"kafka://{address}" for address in args.bootstrap.split(",")],
        store="memory://",
        datadir=args.state_dir,
        processing_guarantee="exactly_once",
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=float(args.commit_interval),
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        web_enabled=False,
    )
    lines = app.topic(
        args.input, key_type=str, value_type=str, key_serializer="raw", value_serializer="raw"
    )
    counts = app.topic(
        args.output, key_type=str, value_type=str, key_serializer="raw", value_serializer="raw"
    )
    word_counts = app.Table(
        "word_counts", default=int, partitions=partitions, key_type=str, value_type=int
    )
    processed = 0

    # Faust sends to a topic it does not consume outside any transaction (it
    # finds no partitions for it in its consumer's metadata): read the output
    # too, so that the counts go out in the transactions.
    @app.agent(counts)
    async def sink(stream):
        async for _ in stream:
            pass

    @app.agent(lines)
    async def count(stream):
        nonlocal processed
        async for line in stream:
            async with PROCESSING:
                for word in line.split():
                    word_counts[word] += 1
                    await counts.send(key=word, value=str(word_counts[word]))
                    processed += 1
                    if processed == 1 or processed % 100 == 0:
                        report("processed", n=processed)

    return app


def main():
    args = options()
    patch_faust()
    app = build(args)
    report("started", pid=os.getpid())
    logging.getLogger("faust").addHandler(RecoveryEvents())
    # The events go to stdout as they are, not into the log.
    worker = faust.Worker(app, loglevel="info", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    sys.exit(main())
