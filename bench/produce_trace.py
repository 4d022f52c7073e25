#!/usr/bin/env python3
"""Summarises the agent's produce and flush trace: where a produce request waits.

Run an agent with `RUST_LOG=warn,fjord::trace=debug` (the bench passes the
variable through to its agents), then `python3 bench/produce_trace.py LOG...`.
Each answered Produce left one `fjord::trace::produce` event with the times it
was read, appended, committed (answered by the write path) and written back,
and how many requests of its connection were in flight when it arrived.

Per connection it reports the percentiles of each stage, the window the client
kept (requests in flight at arrival, and the time-weighted mean), and the share
of time the connection had nothing in flight at the agent: time the agent spent
waiting for the client. Per flush trigger (`fjord::trace::flush` events), the
flushes' sizes, how many were in flight when each was taken, and their stages:
build (zstd and copies), PUT, waiting for earlier commits, commit and answer.
"""

import re
import sys
from collections import defaultdict

FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


PRODUCE_FIELDS = ("connection", "correlation_id", "bytes", "window",
                  "read_us", "appended_us", "answered_us", "written_us")
FLUSH_FIELDS = ("partitions", "bytes", "in_flight", "taken_us", "built_us", "uploaded_us",
                "commit_started_us", "answered_us")


def parse(paths):
    """The produce events and the flush events of the logs at `paths`."""
    produces, flushes = [], []
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                for target, names, out in (("fjord::trace::produce", PRODUCE_FIELDS, produces),
                                           ("fjord::trace::flush", FLUSH_FIELDS, flushes)):
                    if target not in line:
                        continue
                    fields = dict(FIELD.findall(line.split(target, 1)[1]))
                    try:
                        event = {k: int(fields[k]) for k in names}
                    except (KeyError, ValueError):
                        continue
                    event["trigger"] = fields.get("trigger", "")
                    out.append(event)
    return produces, flushes


def report_flushes(flushes):
    by_trigger = defaultdict(list)
    for flush in flushes:
        by_trigger[flush["trigger"]].append(flush)
    print(f"\n{len(flushes)} flushes")
    stages = {
        "build (zstd, copies)": lambda f: f["built_us"] - f["taken_us"],
        "PUT": lambda f: f["uploaded_us"] - f["built_us"],
        "wait for earlier commits": lambda f: f["commit_started_us"] - f["uploaded_us"],
        "commit + answer": lambda f: f["answered_us"] - f["commit_started_us"],
    }
    for trigger, group in sorted(by_trigger.items(), key=lambda kv: -len(kv[1])):
        sizes = [f["bytes"] / 1e3 for f in group]
        in_flight = defaultdict(int)
        for f in group:
            in_flight[f["in_flight"]] += 1
        print(f"  {trigger}: {len(group)} flushes, size p50 {percentile(sizes, 0.5):.1f} KB "
              f"(mean {sum(sizes) / len(sizes):.1f} KB), partitions p50 "
              f"{percentile([f['partitions'] for f in group], 0.5)}; in flight when taken: "
              + ", ".join(f"{n}: {c}" for n, c in sorted(in_flight.items())))
        for name, stage in stages.items():
            values = [stage(f) / 1000 for f in group]
            print(f"    {name:26} p50 {percentile(values, 0.5):9.2f} ms  p99 {percentile(values, 0.99):9.2f} ms")


def busy_share(requests):
    """Time-weighted in-flight count and the share of time with none, over the
    connection's span (first read to last write)."""
    points = []
    for r in requests:
        points.append((r["read_us"], 1))
        points.append((r["written_us"], -1))
    points.sort()
    start, end = points[0][0], points[-1][0]
    level, last, weighted, idle = 0, start, 0, 0
    for at, delta in points:
        weighted += level * (at - last)
        if level == 0:
            idle += at - last
        level += delta
        last = at
    span = max(1, end - start)
    return weighted / span, idle / span, span


def main():
    events, flushes = parse(sys.argv[1:])
    if not events:
        sys.exit("no fjord::trace::produce events (was the agent run with RUST_LOG=warn,fjord::trace=debug?)")
    by_connection = defaultdict(list)
    for event in events:
        by_connection[event["connection"]].append(event)
    stages = {
        "read -> appended": lambda r: r["appended_us"] - r["read_us"],
        "appended -> committed": lambda r: r["answered_us"] - r["appended_us"],
        "committed -> written": lambda r: r["written_us"] - r["answered_us"],
        "read -> written": lambda r: r["written_us"] - r["read_us"],
    }
    print(f"{len(events)} produce requests over {len(by_connection)} connections")
    for connection, requests in sorted(by_connection.items(), key=lambda kv: -len(kv[1])):
        requests.sort(key=lambda r: r["read_us"])
        mean_in_flight, idle, span = busy_share(requests)
        total = sum(r["bytes"] for r in requests)
        windows = defaultdict(int)
        for r in requests:
            windows[r["window"]] += 1
        print(f"\nconnection {connection}: {len(requests)} requests, {total / 1e6:.1f} MB in "
              f"{span / 1e6:.2f} s ({total / max(1, span):.1f} MB/s), mean request "
              f"{total / len(requests) / 1e3:.1f} KB")
        print(f"  in flight at the agent: time-weighted mean {mean_in_flight:.2f}; none in flight "
              f"{idle * 100:.1f}% of the time (the agent waiting for the client)")
        print("  earlier requests in flight at arrival: " + ", ".join(
            f"{w}: {n}" for w, n in sorted(windows.items())))
        for name, stage in stages.items():
            values = [stage(r) / 1000 for r in requests]
            print(f"  {name:24} p50 {percentile(values, 0.5):9.2f} ms  p99 {percentile(values, 0.99):9.2f} ms  "
                  f"max {max(values):9.2f} ms")
        gaps = []
        for previous, current in zip(requests, requests[1:]):
            gaps.append((current["read_us"] - previous["read_us"]) / 1000)
        if gaps:
            print(f"  between reads            p50 {percentile(gaps, 0.5):9.2f} ms  p99 {percentile(gaps, 0.99):9.2f} ms")
    if flushes:
        report_flushes(flushes)


if __name__ == "__main__":
    main()
