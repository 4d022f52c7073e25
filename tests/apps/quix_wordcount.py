"""A stateful Quix Streams word count with exactly-once processing.

Reads lines of text from INPUT, splits them into words, re-keys each word by
itself (`group_by`, through a `repartition__...` topic), counts each word in
the RocksDB state store (backed by a compacted `changelog__...` topic the
application creates) and produces `word -> count` (the count as JSON, e.g.
`7`) to OUTPUT, one record per occurrence. With
`processing_guarantee="exactly-once"` the state changelog, the repartition
and output records and the consumed offsets commit in one Kafka transaction.

Usage:
    quix_wordcount.py --bootstrap HOST:PORT --input TOPIC --output TOPIC
                      --group GROUP --state-dir DIR [--transactional-id ID]
                      [--transaction-timeout-ms MS] [--commit-interval SECONDS]
                      [--commit-every MESSAGES]

Every option also reads an environment variable (`WORDCOUNT_BOOTSTRAP`,
`WORDCOUNT_INPUT`, ..., `WORDCOUNT_COMMIT_EVERY`). A checkpoint (one
transaction) commits every 0.5 s or 500 messages, whichever comes first.

It prints one JSON object a line on stdout, for the test that runs it:
`{"ev": "started", "t": ...}` once; `{"ev": "recovery-started", ...}` and
`{"ev": "recovery-done", ...}` around restoring state from the changelog
(Quix's "Beginning recovery check" and "Recovery process complete" log
lines); `{"ev": "committed", ...}` after each checkpoint it commits;
`{"ev": "processed", "n": N, "t": ...}` for its first processed word and
every 100th after (N counts this process's words; `t` is the wall clock).
It runs until killed.

The transactional id is stable across restarts by default (the group name
plus `-quix`): a restarted instance's InitProducerId fences the killed one and
aborts its open transaction at once. Quix's own default is a random id per
process, whose abandoned transaction blocks `read_committed` readers (this
application's state recovery among them) until `transaction.timeout.ms`.
"""

import argparse
import json
import logging
import os
import sys
import time

from quixstreams import Application, State
from quixstreams.checkpointing import Checkpoint


def report(event, **fields):
    print(json.dumps({"ev": event, "t": time.time(), **fields}), flush=True)


class RecoveryEvents(logging.Handler):
    """Turns Quix's log lines about state recovery into events."""

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Beginning recovery check"):
            report("recovery-started")
        elif message.startswith("Recovery process complete"):
            report("recovery-done")


def report_commits():
    """Reports every checkpoint Quix commits (its transaction, with the
    consumed offsets) as a `committed` event."""
    commit = Checkpoint.commit

    def commit_and_report(self, *args, **kwargs):
        result = commit(self, *args, **kwargs)
        report("committed")
        return result

    Checkpoint.commit = commit_and_report


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
    option("transactional-id", required=False)
    option("transaction-timeout-ms", default="20000")
    option("commit-interval", default="0.5")
    option("commit-every", default="500")
    return parser.parse_args()


def main():
    args = options()
    transactional_id = args.transactional_id or f"{args.group}-quix"
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=args.state_dir,
        commit_interval=float(args.commit_interval),
        commit_every=int(args.commit_every),
        producer_extra_config={
            "transactional.id": transactional_id,
            "transaction.timeout.ms": int(args.transaction_timeout_ms),
        },
        consumer_extra_config={"session.timeout.ms": 10000},
        loglevel="INFO",
    )
    # Quix configures its logger when the Application is made; the handler
    # goes on after.
    logging.getLogger("quixstreams").addHandler(RecoveryEvents())
    lines = app.topic(args.input, value_deserializer="str", key_deserializer="str")
    counts = app.topic(args.output, key_serializer="str", value_serializer="json")

    processed = 0

    def count(word: str, state: State) -> int:
        nonlocal processed
        total = state.get("count", 0) + 1
        state.set("count", total)
        processed += 1
        if processed == 1 or processed % 100 == 0:
            report("processed", n=processed)
        return total

    sdf = app.dataframe(lines)
    sdf = sdf.apply(lambda line: line.split(), expand=True)
    sdf = sdf.group_by(lambda word: word, name="word")
    sdf = sdf.apply(count, stateful=True)
    sdf = sdf.to_topic(counts)

    report_commits()
    report("started", pid=os.getpid())
    app.run()


if __name__ == "__main__":
    sys.exit(main())
