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
    "throughput": "ours ≥ 0.5 × floor",
    "memory": "peak RSS ratio ≤ 1.5",
    "latency": "p99 < 250 ms at 1,000 subscribers",
    "stuck": "run time ratio ≤ 1.05",
    "fairness": "ratio < 2",
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


def verdicts(sections: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, met) for every target whose section is present."""
    out: list[tuple[str, str, str, bool | None]] = []
    if "throughput" in sections:
        rows = sections["throughput"]["rows"]
        worst = min(rows, key=lambda r: _num(r["ratio"]))
        out.append(
            ("throughput vs floor", f"{_f(worst['ratio'], 2)}× (N={worst['n_docs']:,})", TARGETS["throughput"], None)
        )
        out[-1] = (*out[-1][:3], all(_num(r["ratio"]) >= 0.5 for r in rows))
        mem = sections["throughput"]["memory"]
        out.append(
            (
                f"memory N={mem['small_n']:,} → {mem['big_n']:,}",
                f"{_f(mem['ratio'], 2)}×",
                TARGETS["memory"],
                _num(mem["ratio"]) <= 1.5,
            )
        )
    if "latency" in sections:
        rows = sections["latency"]["rows"]
        top = max(r["subscribers"] for r in rows)
        for r in (r for r in rows if r["subscribers"] == top):
            out.append(
                (
                    f"feed p99, {r['transport'].upper()} {r.get('mode', 'all')} × {top:,}",
                    _f(r["p99_ms"], 0, " ms"),
                    "p99 < 250 ms",
                    _num(r["p99_ms"]) < 250 and bool(r["all_finished"]),
                )
            )
    if "stuck" in sections:
        s = sections["stuck"]
        out.append(("stuck subscriber", f"{_f(s['ratio'], 2)}×", TARGETS["stuck"], _num(s["ratio"]) <= 1.05))
    if "fairness" in sections:
        s = sections["fairness"]
        out.append(("fairness", f"{_f(s['ratio'], 2)}×", TARGETS["fairness"], _num(s["ratio"]) < 2))
    return out


def _throughput(s: dict[str, Any]) -> list[str]:
    lines = [
        "| N documents | passes | ours passes/s | floor passes/s | ours / floor | run s | server CPU s"
        " | peak RSS MB | API p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['n_docs']:,} | {r['passes']:,} | {_f(r['ours_passes_per_s'])} | {_f(r['floor_passes_per_s'])}"
            f" | {_f(r['ratio'], 2)} | {_f(r['seconds'], 2)} | {_f(r['server_cpu_s'], 1)} | {_f(r['peak_rss_mb'])}"
            f" | {_f(r['api_p50_ms'])} / {_f(r['api_p99_ms'])} |"
        )
    m = s["memory"]
    lines += [
        "",
        f"Memory: peak RSS {_f(m['small_peak_mb'])} MB at N={m['small_n']:,}, {_f(m['big_peak_mb'])} MB at"
        f" N={m['big_n']:,}: ratio {_f(m['ratio'], 2)} (run phase alone: {_f(m['run_phase_ratio'], 2)}).",
    ]
    return lines


def _latency(s: dict[str, Any]) -> list[str]:
    lines = [
        "| transport | mode | subscribers | events read each | p50 ms | p99 ms | max ms | lagged | all saw the end"
        " | server peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in s["rows"]:
        # Cut off by the time limit: what was still undelivered would only raise the figures.
        at_least = "" if r["all_finished"] else "≥ "
        ended = "yes" if r["all_finished"] else f"no (limit {_f(r.get('timeout_s'))} s)"
        lines.append(
            f"| {r['transport'].upper()} | {r.get('mode', 'all')} | {r['subscribers']:,}"
            f" | {_f(r['events_per_subscriber'])}"
            f" | {at_least}{_f(r['p50_ms'])} | {at_least}{_f(r['p99_ms'])} | {at_least}{_f(r['max_ms'])}"
            f" | {_f(r['lagged'])} | {ended} | {_f(r.get('server_peak_rss_mb'))} |"
        )
    return lines


def _stuck(s: dict[str, Any]) -> list[str]:
    return [
        "| children | no subscriber s | one stuck SSE s | one stuck WS s | worst ratio |",
        "|---:|---:|---:|---:|---:|",
        f"| {s['children']:,} | {_f(s['none_s'], 2)} | {_f(s['sse_s'], 2)} | {_f(s['ws_s'], 2)}"
        f" | {_f(s['ratio'], 2)} |",
    ]


def _fairness(s: dict[str, Any]) -> list[str]:
    return [
        "| small run | alone ms | during big run ms | ratio | big run |",
        "|---:|---:|---:|---:|---:|",
        f"| {s['small']} children | {_f(s['solo_ms'])} | {_f(s['loaded_ms'])} | {_f(s['ratio'], 2)}"
        f" | {s['big']:,} children, {_f(s['big_run_s'], 1)} s |",
    ]


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


RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "throughput": ("Throughput and memory (N documents × 5 passes, zero-latency simulated engine)", _throughput),
    "latency": ("Feed latency (child finished → event read by a subscriber in another process)", _latency),
    "stuck": ("One subscriber that never reads", _stuck),
    "fairness": ("Fairness", _fairness),
    "peers": ("Peers (same workload: N items × 5 repetitions, instant fake model, concurrency 64)", _peers),
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
