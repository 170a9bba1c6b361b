"""The results as markdown tables and JSON (bench-results/latest.md, latest.json).

Sections measured in earlier invocations of the same scale are kept (each records when, how and
under what load it was measured), so `--only peers` adds its rows beside a previous full run.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

TARGETS = {
    "throughput": "≥ 0.5× floor (most workers)",
    "scaling": "≥ 1.6×",
    "memory": "≤ 1.5×",
    "api": "p99 < 50 ms",
    "feed_top": "p99 < 1 s, all see the end",
    "feed_100": "p99 < 250 ms",
    "stuck": "run time ratio ≤ 1.05",
    "metrics": "run throughput with 50 readers ≥ 0.9× alone",
    "fairness_0": "≤ 3×",
    "fairness_slow": "≤ 1.5×",
    "efficiency": "≥ 0.98",
    "rerun": "0 engine calls",
    "inspect": "≥ 250×",
    "promptfoo": "≥ 50×",
}


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def conditions(command: str) -> dict[str, Any]:
    return {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
        "load_avg_start": round(os.getloadavg()[0], 2),
    }


def _f(x: Any, digits: int = 0, suffix: str = "") -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "–"
    if isinstance(x, float | int):
        return f"{x:,.{digits}f}{suffix}"
    return str(x)


def _num(x: Any) -> float:
    """A number from the results (JSON null, for NaN, reads back as None)."""
    return float(x) if isinstance(x, int | float) else math.nan


def _met(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**not met**")


def _w(row: dict[str, Any]) -> str:
    return f", {row['workers']} worker{'s' if row['workers'] != 1 else ''}" if "workers" in row else ""


def _throughput_verdicts(s: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []
    rows = s["rows"]
    most = max(r.get("workers", 0) for r in rows)
    for r in rows:
        if r["n_docs"] < 10_000 and len({x["n_docs"] for x in rows}) > 2:
            continue  # the sizes are 10,000 and 50,000; smaller ones are in the table
        ok = _num(r["ratio"]) >= 0.5 if r.get("workers", 0) == most else None
        out.append(
            (
                f"throughput vs floor, N={r['n_docs']:,}{_w(r)}",
                f"{_f(r['ours_passes_per_s'])} vs {_f(r['floor_passes_per_s'])} passes/s ({_f(r['ratio'], 2)}×)",
                TARGETS["throughput"],
                ok,
            )
        )
    for sc in s.get("scaling", []):
        out.append(
            (
                f"{sc['to_workers']} workers / {sc['from_workers']}, N={sc['n_docs']:,}",
                f"{_f(sc['ratio'], 2)}×",
                TARGETS["scaling"],
                _num(sc["ratio"]) >= 1.6,
            )
        )
    big = max(r["n_docs"] for r in rows)
    for r in (r for r in rows if r["n_docs"] == big):
        out.append(
            (
                f"API p99 during a {big:,}-child run (GET run, GET /v1/runs, 20/s){_w(r)}",
                _f(r["api_p99_ms"], 1, " ms"),
                TARGETS["api"],
                _num(r["api_p99_ms"]) < 50,
            )
        )
    memory = s["memory"] if isinstance(s["memory"], list) else []
    for m in memory:
        w = _w(m)
        span = f"N={m['small_n']:,} → {m['big_n']:,}{w}"
        out.append(
            (
                f"peak RSS, API process, {span}",
                f"{_f(m['api_small_mb'])} → {_f(m['api_big_mb'])} MB ({_f(m['api_ratio'], 2)}×)",
                TARGETS["memory"],
                _num(m["api_ratio"]) <= 1.5,
            )
        )
        out.append(
            (
                f"peak RSS, each worker, {span}",
                f"{_f(m['worker_small_mb'])} → {_f(m['worker_big_mb'])} MB ({_f(m['worker_ratio'], 2)}×)",
                TARGETS["memory"],
                _num(m["worker_ratio"]) <= 1.5,
            )
        )
    return out


def _latency_verdicts(s: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []
    rows = s["rows"]
    top = max(r["subscribers"] for r in rows)
    for r in rows:
        if r["subscribers"] == top:
            target, ok = TARGETS["feed_top"], _num(r["p99_ms"]) < 1000 and bool(r["all_finished"])
        elif r["subscribers"] == 100:
            target, ok = TARGETS["feed_100"], _num(r["p99_ms"]) < 250 and bool(r["all_finished"])
        else:
            continue
        out.append(
            (
                f"feed p99, {r['transport'].upper()} {r.get('mode', 'all')} × {r['subscribers']:,}{_w(r)}",
                _f(r["p99_ms"], 0, " ms") + ("" if r["all_finished"] else " (not all saw the end)"),
                target,
                ok,
            )
        )
    return out


def verdicts(sections: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, met) for every target whose section is present."""
    out: list[tuple[str, str, str, bool | None]] = []
    if "throughput" in sections:
        out += _throughput_verdicts(sections["throughput"])
    if "latency" in sections:
        out += _latency_verdicts(sections["latency"])
    if "stuck" in sections:
        s = sections["stuck"]
        out.append(("stuck subscriber", f"{_f(s['ratio'], 2)}×", TARGETS["stuck"], _num(s["ratio"]) <= 1.05))
        if s.get("memory"):
            m = s["memory"]
            kept = _num(m["stuck_after"]) - _num(m["none_after"])
            out.append(
                (
                    f"memory kept after {m['subscribers']:,} stuck subscribers dropped",
                    f"{_f(kept, 0, ' MB')} ({_f(m['stuck_with'])} MB while they were there)",
                    "given back",
                    None,
                )
            )
    if "metrics" in sections:
        s = sections["metrics"]
        out.append(("metrics readers", f"{_f(s['ratio'], 2)}×", TARGETS["metrics"], _num(s["ratio"]) >= 0.9))
    for r in sections.get("fairness", {}).get("rows", []):
        slow = bool(r.get("latency_ms"))
        out.append(
            (
                f"{r['small']}-child run beside a {r['big']:,}-child run, engine {r.get('latency_ms', 0)} ms{_w(r)}",
                f"{_f(r['solo_ms'])} → {_f(r['loaded_ms'])} ms ({_f(r['ratio'], 2)}×)",
                TARGETS["fairness_slow" if slow else "fairness_0"],
                _num(r["ratio"]) <= (1.5 if slow else 3.0),
            )
        )
    for r in sections.get("rerun", {}).get("rows", []):
        out.append(
            (
                f"unchanged re-run of {r['n_docs']:,} documents, engine {r['latency_ms']} ms{_w(r)}",
                f"{_f(r['second_calls'])} engine calls (first run {_f(r['first_calls'])}),"
                f" {_f(r['second_s'], 2)} s vs {_f(r['first_s'], 2)} s",
                TARGETS["rerun"],
                _num(r["second_calls"]) == 0,
            )
        )
    for r in sections.get("efficiency", {}).get("rows", []):
        out.append(
            (
                f"efficiency vs C/L, {r['latency_ms']} ms engine, C={r['concurrency']}{_w(r)}",
                f"{_f(r['efficiency'], 3)} (bare asyncio {_f(r.get('bare_efficiency'), 3)};"
                f" ours / bare {_f(r.get('vs_bare'), 3)})",
                TARGETS["efficiency"],
                _num(r["efficiency"]) >= 0.98,
            )
        )
    if "peers" in sections:
        rows = sections["peers"]["rows"]
        ours = _num(rows[0].get("passes_per_s"))
        for r in rows[1:]:
            key = "inspect" if r["tool"].startswith("Inspect") else "promptfoo"
            times = ours / _num(r.get("passes_per_s"))
            out.append(
                (
                    f"ours / {r['tool']}",
                    f"{_f(times, 0)}×",
                    TARGETS[key],
                    None if math.isnan(times) else times >= (250 if key == "inspect" else 50),
                )
            )
    if "cluster" in sections:
        x, k = sections["cluster"]["cross_node"], sections["cluster"]["kill9"]
        out.append(
            (
                "feed p99 across nodes (subscriber on A, workers of B)",
                _f(x["p99_ms"], 0, " ms"),
                "p99 < 250 ms",
                _num(x["p99_ms"]) < 250 and bool(x["all_finished"]),
            )
        )
        out.append(
            (
                "kill -9 of a worker: results",
                f"re-claimed after {_f(k['reclaimed_s'], 2, ' s')}",
                "exactly once",
                bool(k["exactly_once"]),
            )
        )
    return out


def _throughput(s: dict[str, Any]) -> list[str]:
    lines = [
        "| N documents | workers | passes | ours passes/s | floor passes/s | ours / floor | run s | CPU s (all"
        " processes) | peak RSS MB API / worker | API p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['n_docs']:,} | {r.get('workers', '–')} | {r['passes']:,} | {_f(r['ours_passes_per_s'])}"
            f" | {_f(r['floor_passes_per_s'])} | {_f(r['ratio'], 2)} | {_f(r['seconds'], 2)}"
            f" | {_f(r['server_cpu_s'], 1)} | {_f(r['peak_rss_mb'])} / {_f(r.get('worker_peak_rss_mb'))}"
            f" | {_f(r['api_p50_ms'], 1)} / {_f(r['api_p99_ms'], 1)} |"
        )
    for sc in s.get("scaling", []):
        lines += ["", f"N={sc['n_docs']:,}: {sc['to_workers']} workers / {sc['from_workers']} = {_f(sc['ratio'], 2)}×."]
    return lines


def _latency(s: dict[str, Any]) -> list[str]:
    lines = [
        "| workers | transport | mode | subscribers | events read each | p50 ms | p99 ms | max ms | lagged"
        " | all saw the end | API peak RSS MB |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in s["rows"]:
        # Cut off by the time limit: what was still undelivered would only raise the figures.
        at_least = "" if r["all_finished"] else "≥ "
        ended = "yes" if r["all_finished"] else f"no (limit {_f(r.get('timeout_s'))} s)"
        lines.append(
            f"| {r.get('workers', '–')} | {r['transport'].upper()} | {r.get('mode', 'all')} | {r['subscribers']:,}"
            f" | {_f(r['events_per_subscriber'])}"
            f" | {at_least}{_f(r['p50_ms'])} | {at_least}{_f(r['p99_ms'])} | {at_least}{_f(r['max_ms'])}"
            f" | {_f(r['lagged'])} | {ended} | {_f(r.get('server_peak_rss_mb'))} |"
        )
    return lines


def _stuck(s: dict[str, Any]) -> list[str]:
    lines = [
        "| workers | children | no subscriber s | one stuck SSE s | one stuck WS s | worst ratio |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {s.get('workers', '–')} | {s['children']:,} | {_f(s['none_s'], 2)} | {_f(s['sse_s'], 2)}"
        f" | {_f(s['ws_s'], 2)} | {_f(s['ratio'], 2)} |",
    ]
    m = s.get("memory")
    if m:
        lines += [
            "",
            f"API process RSS after the same run: {_f(m['none_after'])} MB with no subscriber;"
            f" {_f(m['stuck_with'])} MB with {m['subscribers']:,} SSE subscribers that never read,"
            f" {_f(m['stuck_after'])} MB once they have dropped.",
        ]
    return lines


def _metrics(s: dict[str, Any]) -> list[str]:
    return [
        "| N documents | readers (on metrics) | alone s | with readers s | ratio | metrics requests"
        " | metrics p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['n_docs']:,} | {s['readers']} ({s['metrics_readers']}) | {_f(s['alone_s'], 2)}"
        f" | {_f(s['with_readers_s'], 2)} | {_f(s['ratio'], 2)} | {_f(s['metrics_requests'])}"
        f" | {_f(s['metrics_p50_ms'])} / {_f(s['metrics_p99_ms'])} |",
    ]


def _fairness(s: dict[str, Any]) -> list[str]:
    lines = [
        "| workers | engine | small run | alone ms | during big run ms | ratio | big run |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in s["rows"]:
        big = f"{r['big']:,} children, " + (
            "cancelled after the probes" if r.get("big_cancelled") else f"{_f(r['big_run_s'], 1)} s"
        )
        lines.append(
            f"| {r['workers']} | {r['latency_ms']} ms | {r['small']} children | {_f(r['solo_ms'])}"
            f" | {_f(r['loaded_ms'])} | {_f(r['ratio'], 2)} | {big} |"
        )
    return lines


def _efficiency(s: dict[str, Any]) -> list[str]:
    lines = [
        "| workers | N documents | passes | engine | C | bound P·L/C s | run s | efficiency | bare asyncio s"
        " | bare efficiency | ours / bare |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['workers']} | {r['n_docs']:,} | {r['passes']:,} | {r['latency_ms']} ms | {r['concurrency']}"
            f" | {_f(r['bound_s'], 3)} | {_f(r['seconds'], 3)} | {_f(r['efficiency'], 3)}"
            f" | {_f(r.get('bare_s'), 3)} | {_f(r.get('bare_efficiency'), 3)} | {_f(r.get('vs_bare'), 3)} |"
        )
    return lines


def _rerun(s: dict[str, Any]) -> list[str]:
    lines = [
        "| N documents | passes | engine | workers | first run s | engine calls | second run s | engine calls"
        " | cache hits | first / second |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['n_docs']:,} | {r['passes']:,} | {r['latency_ms']} ms | {r['workers']} | {_f(r['first_s'], 2)}"
            f" | {_f(r['first_calls'])} | {_f(r['second_s'], 2)} | {_f(r['second_calls'])} | {_f(r['second_hits'])}"
            f" | {_f(r['speedup'], 1)}× |"
        )
    return lines


def _peers(s: dict[str, Any]) -> list[str]:
    lines = [
        "| tool | version | N × 5 | passes/s | vs ours | peak RSS MB | wall s | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['tool']} | {r.get('version') or '–'} | {r['n_docs']:,} | {_f(r.get('passes_per_s'))}"
            f" | {_f(r.get('vs_ours'), 3)} | {_f(r.get('peak_rss_mb'))} | {_f(r.get('wall_s'), 1)}"
            f" | {r.get('note') or ''} |"
        )
    return lines


def _cluster(s: dict[str, Any]) -> list[str]:
    lines = [
        f"Store: {s['db']}; the SQLite rows are measured in the same invocation.",
        "",
        "| workers | N documents | SQLite passes/s | PostgreSQL passes/s | PostgreSQL / SQLite |",
        "|---:|---:|---:|---:|---:|",
    ]
    rows = {(r["store"], r["workers"]): r for r in s["throughput"]}
    for w in sorted({r["workers"] for r in s["throughput"]}):
        lite, pg = rows[("sqlite", w)], rows[("postgres", w)]
        lines.append(
            f"| {w} | {pg['n_docs']:,} | {_f(lite['passes_per_s'])} | {_f(pg['passes_per_s'])}"
            f" | {_f(pg['vs_sqlite'], 2)} |"
        )
    x, k = s["cross_node"], s["kill9"]
    lines += [
        "",
        "| feed across nodes | children | events | p50 ms | p99 ms | max ms | saw the end |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| SSE on node A, committed by node B's 2 workers | {x['children']:,} | {_f(x['events'])}"
        f" | {_f(x['p50_ms'])} | {_f(x['p99_ms'])} | {_f(x['max_ms'])} | {'yes' if x['all_finished'] else 'no'} |",
        "",
        "| kill -9 of 1 of 2 workers | children | orphaned | released after | re-claimed after | run again"
        " | results exactly once |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| lease 10 s, heartbeat 1 s | {k['children']:,} | {_f(k['orphans'])} | {_f(k['released_s'], 2, ' s')}"
        f" | {_f(k['reclaimed_s'], 2, ' s')} | {_f(k['rerun'])} | {'yes' if k['exactly_once'] else '**no**'} |",
    ]
    return lines


RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "throughput": ("Throughput and memory (N documents × 5 passes, zero-latency simulated engine)", _throughput),
    "latency": ("Feed latency (child finished → event read by a subscriber in another process)", _latency),
    "stuck": ("One subscriber that never reads", _stuck),
    "fairness": ("Fairness: a small run beside a big one", _fairness),
    "efficiency": ("Efficiency against the concurrency limit (an engine that waits L per pass)", _efficiency),
    "metrics": ("Metrics readers: one run alone, then with 50 readers (12 on the summary metrics)", _metrics),
    "rerun": ("Pass cache: the second run of an unchanged experiment against the first", _rerun),
    "peers": ("Peers (same workload: N items × 5 repetitions, instant fake model, concurrency 64)", _peers),
    "cluster": ("PostgreSQL: several workers, several API nodes, a worker killed (`--db postgresql://…`)", _cluster),
}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    sections = results["sections"]
    out = [
        f"# orchestrator bench ({results['scale']})",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, {m['platform']}.",
        "",
        "| target | measured | wanted | |",
        "|---|---|---|---|",
    ]
    for what, measured, target, ok in verdicts(sections):
        out.append(f"| {what} | {measured} | {target} | {_met(ok)} |")
    for name, (title, render) in RENDERERS.items():
        if name not in sections:
            continue
        s = sections[name]
        c = s.get("conditions", {})
        out += [
            "",
            f"## {title}",
            "",
            *render(s),
            "",
            f"_`{c.get('command', '?')}` at {c.get('measured_at', '?')}, load average"
            f" {c.get('load_avg_start', '?')} → {c.get('load_avg_end', '?')}; medians of {s.get('reps', '?')}"
            " repetitions._",
        ]
    return "\n".join(out) + "\n"


def write(out_dir: Path, scale: str, new_sections: dict[str, Any]) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "latest.json"
    sections: dict[str, Any] = {}
    if path.exists():
        try:
            old = orjson.loads(path.read_bytes())
            if old.get("scale") == scale:
                sections = dict(old.get("sections", {}))
        except orjson.JSONDecodeError:
            sections = {}
    sections.update(new_sections)
    results = {"scale": scale, "machine": machine(), "sections": sections}
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    (out_dir / "latest.md").write_text(markdown(results))
    return results
