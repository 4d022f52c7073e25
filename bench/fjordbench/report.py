"""What a run writes: the machine description, the JSON, the Markdown table and an
SVG plot (hand-written, so the benchmark needs no plotting package)."""

import json
import math
import os
import platform
import subprocess
import time
from html import escape

from . import cluster as cluster_mod


def _hedge(config):
    put, get = config.get("hedge_put_after_ms", 0), config.get("hedge_get_after_ms", 0)
    return f", hedged PUT {put} ms / GET {get} ms" if put or get else ""


def machine_description(repo_root, binary, profile):
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory_gib = int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    try:
        import confluent_kafka

        client = f"confluent-kafka {confluent_kafka.__version__}, librdkafka {confluent_kafka.libversion()[0]}"
    except ImportError:
        client = "confluent-kafka missing"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_gib, 1) if memory_gib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "client": client,
        "fjord_commit": _git(repo_root, "rev-parse", "--short=12", "HEAD"),
        "fjord_worktree_dirty": bool(_git(repo_root, "status", "--porcelain", "--untracked-files=no")),
        "agent_binary": os.path.relpath(binary, repo_root),
        "agent_profile": profile,
        "load_average_at_start": cluster_mod.load_average(),
        "busy_processes_at_start": busy_processes(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _git(repo_root, *args):
    try:
        return subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def busy_processes(interval_s=1.0, top=6):
    """Which commands used the CPU over ``interval_s`` (cores, summed by command
    name), so a result says what else was running."""

    def snapshot():
        out = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            out[int(entry)] = (name, int(fields[11]) + int(fields[12]))
        return out

    before = snapshot()
    time.sleep(interval_s)
    after = snapshot()
    by_name = {}
    for pid, (name, ticks) in after.items():
        used = ticks - before.get(pid, (name, 0))[1] if pid in before else 0
        if used > 0:
            by_name[name] = by_name.get(name, 0) + used
    ranked = sorted(by_name.items(), key=lambda item: -item[1])[:top]
    return [{"command": name, "cores": round(ticks / cluster_mod.CLOCK_TICKS / interval_s, 2)} for name, ticks in ranked]


def strip_private(value):
    if isinstance(value, dict):
        return {k: strip_private(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [strip_private(v) for v in value]
    return value


def write_json(path, document):
    with open(path, "w") as f:
        json.dump(strip_private(document), f, indent=2, sort_keys=False)
        f.write("\n")


# ----- Markdown -----


def _num(value, digits=1, suffix=""):
    if value is None:
        return "–"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "–"
    if abs(value) >= 1000 and digits <= 1:
        return f"{value:,.0f}{suffix}"
    return f"{value:,.{digits}f}{suffix}"


def _pcts(stats, keys=("p50", "p99", "p999")):
    if not stats or not stats.get("count"):
        return "–"
    return " / ".join(_num(stats.get(k)) for k in keys)


def markdown(document):
    machine = document["machine"]
    lines = [
        f"# Fjord benchmark: `{document['scenario']}`",
        "",
        document.get("description", ""),
        "",
        f"Command: `{document['command']}`",
        "",
        "## Machine",
        "",
        f"- {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB memory, Linux {machine['kernel']}",
        f"- client: {machine['client']} (Python {machine['python']})",
        f"- agent: `{machine['agent_binary']}` ({machine['agent_profile']} profile), Fjord commit "
        f"`{machine['fjord_commit']}`{' (uncommitted changes)' if machine['fjord_worktree_dirty'] else ''}",
        f"- started {machine['started_at']}; load average then {machine['load_average_at_start']}; "
        f"busiest commands then: "
        + (", ".join(f"{p['command']} {p['cores']}" for p in machine["busy_processes_at_start"]) or "none"),
        "- *others* columns below: cores used by processes outside the benchmark (agents, load generator, "
        "bucket server, driver) during that phase, measured from `/proc/stat`. The machine is shared; "
        "read every number with that column.",
        "",
    ]
    summaries = [r["summary"] for r in document["results"]]
    lines += [
        "## Produce (saturation: producers as fast as they can, no consumers)",
        "",
        "| configuration | MB/s | records/s | ack latency p50 / p99 / p99.9 (ms) | agent cores | load-generator cores | others (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['name']} | {_num(s.get('produce_mb_per_second'))} | {_num(s.get('produce_records_per_second'), 0)} | "
            f"{_pcts(s.get('ack_latency_saturation_ms'))} | {_num(s.get('agent_cores_saturation'), 2)} | "
            f"{_num(s.get('loadgen_cores_saturation'), 2)} | {_num(s.get('other_cores_saturation'), 2)} |"
        )
    lines += [
        "",
        "## Fixed rate (open loop) with tailing consumers",
        "",
        "| configuration | rate (records/s) | MB/s | ack latency p50 / p99 / p99.9 (ms) | end-to-end p50 / p99 (ms) | GETs by tailing reads (per GiB read) | others (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['name']} | {_num(s.get('fixed_rate_records_per_second'), 0)} | {_num(s.get('fixed_rate_mb_per_second'))} | "
            f"{_pcts(s.get('ack_latency_fixed_ms'))} | {_pcts(s.get('e2e_latency_ms'), ('p50', 'p99'))} | "
            f"{_num(s.get('tail_gets'), 0)} ({_num(s.get('tail_gets_per_gib_read'), 0)}) | {_num(s.get('other_cores_fixed_rate'), 2)} |"
        )
    lines += [
        "",
        "## Catch-up read (agents restarted, consumers from offset 0) and cost",
        "",
        "| configuration | catch-up MB/s | GETs per GiB read (MiB per GET) | PUTs per GiB written | agent CPU s per GiB: written / read / both | agent peak RSS (MiB) | verified | others (cores, catch-up) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in summaries:
        write = s.get("agent_cpu_seconds_per_gib_written")
        read = s.get("agent_cpu_seconds_per_gib_read")
        both = s.get("agent_cpu_seconds_per_gib_written_and_read")
        if s.get("verified"):
            verified = "yes"
        elif s.get("catchup_incomplete") and s.get("incomplete_reads") and not s.get("error"):
            verified = "**incomplete catch-up** (what was read is intact; the consumer stopped making progress)"
        elif s.get("incomplete_reads") and not s.get("error"):
            verified = "**incomplete** (what was read is intact; a consumer stopped making progress)"
        else:
            verified = "**no**" + (f" ({s['error']})" if s.get("error") else "")
        lines.append(
            f"| {s['name']} | {_num(s.get('catchup_mb_per_second'))} | {_num(s.get('catchup_gets_per_gib_read'), 0)} "
            f"({_num(s.get('catchup_mib_per_get'), 2)}) | {_num(s.get('puts_per_gib_written'), 0)} | "
            f"{_num(write, 2)} / {_num(read, 2)} / {_num(both, 2)} | {_num(s.get('agent_peak_rss_mib'), 0)} | {verified} | "
            f"{_num(s.get('other_cores_catchup'), 2)} |"
        )
    notes = [(r["config"]["name"], n) for r in document["results"] for n in r.get("notes", [])]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {name}: {note}" for name, note in notes]
    if document.get("targets"):
        lines += [
            "",
            "## Targets",
            "",
            "| target | measured | status |",
            "|---|---|---|",
        ]
        for t in document["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {t['status']} |")
    lines += [
        "",
        "## Configurations",
        "",
        "| configuration | partitions | record | acks | idempotence | compression | linger | request limit | producers / consumers | agents | bucket | latency model | flush interval |",
        "|---|---:|---:|---|---|---|---:|---:|---|---:|---|---|---:|",
    ]
    for r in document["results"]:
        c = r["config"]
        lines.append(
            f"| {c['name']} | {c['partitions']} | {c['message_size']} B ({c['payload']}) | {c['acks']} | "
            f"{'on' if c['idempotence'] else 'off'} | {c['compression']} | {c['linger_ms']} ms | "
            f"{c.get('message_max_bytes', 1_000_000) / 1e6:g} MB | "
            f"{c['producers']} / {c['consumers']} | {c['agents']} | {c['bucket']} | {c['latency_profile']} | "
            f"{c['flush_interval_ms']} ms{_hedge(c)} |"
        )
    phases = document["results"][0]["config"] if document["results"] else {}
    if phases:
        lines += [
            "",
            f"Phases: saturation {phases['saturation_s']} s, fixed rate {phases['fixed_s']} s "
            f"(first {phases['warmup_s']} s of each are warm-up, not measured)"
            + (f", {phases['messages']:,} records per producer per phase" if phases.get("messages") else "")
            + ". MB = 10^6 bytes; GiB = 2^30 bytes; bytes are record values.",
        ]
    return "\n".join(lines) + "\n"


# ----- SVG plot -----

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"]
PANEL_PLOT_HEIGHT = 220


def _legend_rows(series, width):
    rows, x = [[]], 0
    for si, (label, _) in enumerate(series):
        w = 14 + 6.5 * len(label) + 14
        if x + w > width and rows[-1]:
            rows.append([])
            x = 0
        rows[-1].append((si, label, x))
        x += w
    return rows


def _panel(x0, y0, width, title, categories, series, log_scale, unit):
    """A grouped bar chart (one group per category, one bar per series, values
    printed on the bars); returns (svg elements, height used)."""
    out = [f'<text x="{x0}" y="{y0 + 14}" font-size="14" font-weight="bold">{escape(title)}</text>']
    top = y0 + 26
    left = 60
    plot_w = width - left - 10
    plot_h = PANEL_PLOT_HEIGHT
    legend = _legend_rows(series, plot_w)
    used = 26 + plot_h + 22 + 16 * len(legend) + 24
    values = [v for _, vs in series for v in vs if v is not None and v > 0]
    if not values:
        out.append(f'<text x="{x0 + 10}" y="{top + 20}" font-size="12">not measured</text>')
        return out, 60
    if log_scale:
        lo = 10 ** math.floor(math.log10(min(values)))
        hi = 10 ** math.ceil(math.log10(max(values)))
        if hi <= lo:
            hi = lo * 10

        def scale(v):
            return (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

        ticks = []
        t = lo
        while t <= hi * 1.0001:
            ticks.append(t)
            t *= 10
    else:
        hi = max(values) * 1.15
        step = 10 ** math.floor(math.log10(hi))
        while hi / step < 4:
            step /= 2

        def scale(v):
            return v / hi

        ticks = [i * step for i in range(int(hi / step) + 1)]
    ox = x0 + left
    oy = top + plot_h
    for t in ticks:
        y = oy - scale(t) * plot_h
        out.append(f'<line x1="{ox}" y1="{y:.1f}" x2="{ox + plot_w}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{ox - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{t:g}</text>')
    out.append(f'<line x1="{ox}" y1="{top}" x2="{ox}" y2="{oy}" stroke="#333"/>')
    out.append(f'<line x1="{ox}" y1="{oy}" x2="{ox + plot_w}" y2="{oy}" stroke="#333"/>')
    mid = top + plot_h / 2
    out.append(
        f'<text x="{x0 + 12}" y="{mid}" font-size="11" transform="rotate(-90 {x0 + 12} {mid})" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )
    group_w = plot_w / max(1, len(categories))
    bar_w = min(30.0, group_w * 0.85 / max(1, len(series)))
    for ci, category in enumerate(categories):
        gx = ox + ci * group_w + (group_w - bar_w * len(series)) / 2
        for si, (label, vs) in enumerate(series):
            v = vs[ci]
            if v is None:
                continue
            if v <= 0:
                cx = gx + si * bar_w + (bar_w - 2) / 2
                out.append(f'<text x="{cx:.1f}" y="{oy - 3}" font-size="8" text-anchor="middle">0</text>')
                continue
            h = max(1.0, min(1.0, scale(v)) * plot_h)
            x = gx + si * bar_w
            color = PALETTE[si % len(PALETTE)]
            out.append(
                f'<rect x="{x:.1f}" y="{oy - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(category)}: {escape(label)} {v:,.2f} {escape(unit)}</title></rect>"
            )
            if bar_w >= 12:
                cx = x + (bar_w - 2) / 2
                ty = oy - h - 3
                out.append(
                    f'<text x="{cx:.1f}" y="{ty:.1f}" font-size="8" text-anchor="start" '
                    f'transform="rotate(-90 {cx:.1f} {ty:.1f})" dy="3">{_short(v)}</text>'
                )
        out.append(
            f'<text x="{ox + ci * group_w + group_w / 2:.1f}" y="{oy + 14}" font-size="10" '
            f'text-anchor="middle">{escape(category)}</text>'
        )
    for row_index, row in enumerate(legend):
        ly = oy + 28 + 16 * row_index
        for si, label, lx in row:
            out.append(f'<rect x="{ox + lx:.0f}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[si % len(PALETTE)]}"/>')
            out.append(f'<text x="{ox + lx + 14:.0f}" y="{ly}" font-size="10">{escape(label)}</text>')
    return out, used


def _short(v):
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def svg(document):
    summaries = [r["summary"] for r in document["results"]]
    names = [s["name"] for s in summaries]

    def pick(key, sub):
        return [((s.get(key) or {}).get(sub)) for s in summaries]

    def col(key):
        return [s.get(key) for s in summaries]

    width = max(800, 140 + 130 * len(names))
    panels = [
        (
            "Latency (ms, log scale)",
            [
                ("ack p50 (saturation)", pick("ack_latency_saturation_ms", "p50")),
                ("ack p99 (saturation)", pick("ack_latency_saturation_ms", "p99")),
                ("ack p50 (fixed rate)", pick("ack_latency_fixed_ms", "p50")),
                ("ack p99 (fixed rate)", pick("ack_latency_fixed_ms", "p99")),
                ("ack p99.9 (fixed rate)", pick("ack_latency_fixed_ms", "p999")),
                ("end-to-end p50 (fixed rate)", pick("e2e_latency_ms", "p50")),
                ("end-to-end p99 (fixed rate)", pick("e2e_latency_ms", "p99")),
            ],
            True,
            "ms",
        ),
        (
            "Throughput (MB/s)",
            [
                ("produce (saturation)", col("produce_mb_per_second")),
                ("produce (fixed rate)", col("fixed_rate_mb_per_second")),
                ("catch-up read", col("catchup_mb_per_second")),
            ],
            False,
            "MB/s",
        ),
        (
            "Agent CPU-seconds per GiB",
            [
                ("writing (saturation)", col("agent_cpu_seconds_per_gib_written")),
                ("reading (catch-up)", col("agent_cpu_seconds_per_gib_read")),
                ("written and read once", col("agent_cpu_seconds_per_gib_written_and_read")),
            ],
            False,
            "CPU s / GiB",
        ),
        (
            "Object-store requests per GiB (log scale)",
            [
                ("PUTs per GiB written (saturation)", col("puts_per_gib_written")),
                ("GETs per GiB read by tailing consumers", col("tail_gets_per_gib_read")),
                ("GETs per GiB read catching up", col("catchup_gets_per_gib_read")),
            ],
            True,
            "requests / GiB",
        ),
    ]
    body = []
    y = 40
    for title, series, log_scale, unit in panels:
        elements, used = _panel(20, y, width - 40, title, names, series, log_scale, unit)
        body += elements
        y += used
    title = escape(f"Fjord benchmark: {document['scenario']} ({document['machine']['started_at']})")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" font-family="sans-serif">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="20" y="24" font-size="16" font-weight="bold">{title}</text>' + "".join(body) + "</svg>\n"
    )
