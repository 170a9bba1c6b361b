"""`python -m bench [--quick] [--peers] [--workers 1,2] [--db postgresql://…] [--only a,b] [--out DIR]`: run
the measurements, write the report."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from bench import cluster, efficiency, fairness, latency, metrics_readers, peers, report, rerun, throughput
from bench.stats import SCALES, Scale

SECTIONS = ("throughput", "latency", "stuck", "fairness", "efficiency", "metrics", "rerun", "peers", "cluster")
Measure = Callable[[Scale, Callable[[str], None]], Awaitable[Any]]


def _measures(db: str = "") -> dict[str, Measure]:
    async def lat(scale: Scale, log: Callable[[str], None]) -> dict[str, Any]:
        return {"rows": await latency.measure_latency(scale, log)}

    async def pg(scale: Scale, log: Callable[[str], None]) -> dict[str, Any]:
        return await cluster.measure(scale, db, log)

    return {
        "throughput": throughput.measure,
        "latency": lat,
        "stuck": latency.measure_stuck,
        "fairness": fairness.measure,
        "efficiency": efficiency.measure,
        "rerun": rerun.measure,
        "peers": peers.measure,
        "cluster": pg,
        "metrics": metrics_readers.measure,
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a small version that finishes in about a minute")
    p.add_argument("--peers", action="store_true", help="also run Inspect AI and promptfoo on the same workload")
    p.add_argument("--only", default="", help=f"comma-separated sections to run: {', '.join(SECTIONS)}")
    p.add_argument("--scale", choices=sorted(SCALES), help=argparse.SUPPRESS)
    p.add_argument(
        "--workers",
        default="1,2",
        help="comma-separated runner process counts (`serve --workers W`): throughput, feed latency, fairness"
        " and efficiency are reported for each; the stuck-subscriber and peers sections use the largest",
    )
    p.add_argument("--reps", type=int, default=0, help="repetitions per figure (default: the scale's)")
    p.add_argument("--out", default="bench-results", help="folder for latest.md and latest.json")
    p.add_argument(
        "--db",
        default="",
        help="a postgresql:// URL (a user that may create databases): adds the `cluster` section — throughput"
        " with 1, 2, 4 workers next to SQLite, feed latency across API nodes, kill -9 of a worker",
    )
    return p.parse_args(argv)


def chosen(args: argparse.Namespace) -> list[str]:
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(SECTIONS))
        if unknown:
            raise SystemExit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
        if "cluster" in names and not getattr(args, "db", ""):
            raise SystemExit("the cluster section needs --db postgresql://…")
        return names
    return [n for n in SECTIONS if (n != "peers" or args.peers) and (n != "cluster" or getattr(args, "db", ""))]


def worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise SystemExit(f"--workers takes comma-separated counts, like 1,2 (got {text!r})") from None
    if not counts or min(counts) < 1:
        raise SystemExit("--workers needs at least one count, each ≥ 1")
    return counts


async def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    scale = SCALES[args.scale or ("quick" if args.quick else "full")]
    from dataclasses import replace

    if args.reps:
        scale = replace(scale, reps=args.reps)
    scale = replace(scale, workers=worker_counts(getattr(args, "workers", "1,2")))
    measures = _measures(getattr(args, "db", ""))
    results: dict[str, Any] = {}
    for name in chosen(args):
        print(f"== {name} ({scale.name})", flush=True)
        cond = report.conditions(command)
        t0 = time.perf_counter()
        section = await measures[name](scale, lambda line: print(line, flush=True))
        if isinstance(section, list):
            section = {"rows": section}
        cond["load_avg_end"] = round(os.getloadavg()[0], 2)
        cond["seconds"] = round(time.perf_counter() - t0, 1)
        section["conditions"] = cond
        section["reps"] = scale.reps
        results[name] = section
        if getattr(args, "out", ""):  # each section as it ends: a later one failing loses nothing measured
            report.write(Path(args.out), scale.name, {name: section})
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "scripts/bench" + ("".join(" " + shlex.quote(a) for a in sys.argv[1:]) if argv is None else "")
    command = re.sub(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@", r"\1***@", command)  # no password in the report
    sections = anyio.run(run, args, command)
    scale = args.scale or ("quick" if args.quick else "full")
    results = report.write(Path(args.out), scale, sections)
    print()
    print(report.markdown(results))
    print(f"wrote {Path(args.out) / 'latest.md'} and latest.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
