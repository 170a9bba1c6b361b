"""Medians and percentiles (nearest rank), and the bench's scale presets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def _clean(values: Sequence[float | None]) -> list[float]:
    """JSON has no NaN (orjson writes null): both mean "no value" and are left out."""
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def median(values: Sequence[float | None]) -> float:
    clean = _clean(values)
    return float(statistics.median(clean)) if clean else math.nan


def percentile(values: Sequence[float | None], pct: float) -> float:
    """Nearest-rank percentile of an unsorted sample; NaN when empty."""
    ordered = sorted(_clean(values))
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


@dataclass(frozen=True)
class Scale:
    """How big each measurement is: `full` is the issue's workload, `quick` about a minute, `smoke` for tests."""

    name: str
    reps: int
    throughput_ns: tuple[int, ...]
    latency_children: int
    subscriber_counts: tuple[int, ...]
    stuck_children: int
    fairness_big: int
    fairness_small: int
    fairness_probes: int
    peers_n: int
    latency_timeout_s: float = 120.0
    concurrency: int = 64
    passes: int = 5
    # `--workers` (runner processes per server) and the engines the fairness and efficiency sections use
    workers: tuple[int, ...] = (1, 2)
    fairness_latency_ms: tuple[int, ...] = (0, 50)
    efficiency_n: int = 2_000
    efficiency_latency_ms: int = 20
    stuck_memory_subscribers: int = 400  # SSE clients that never read: the API's memory with them, and after
    # `--db postgresql://…` (bench.cluster): documents per throughput run, worker counts, kill -9 run size
    cluster_n: int = 10_000
    cluster_workers: tuple[int, ...] = (1, 2, 4)
    kill_n: int = 2_000
    rerun_n: int = 10_000  # documents of the experiment run twice (the pass cache section)


FULL = Scale(
    name="full",
    reps=3,
    throughput_ns=(1_000, 10_000, 50_000),
    latency_children=10_000,
    subscriber_counts=(1, 100, 1_000),
    stuck_children=10_000,
    fairness_big=50_000,
    fairness_small=10,
    fairness_probes=5,
    peers_n=1_000,
)
QUICK = Scale(
    name="quick",
    reps=3,
    throughput_ns=(1_000, 3_000),
    latency_children=1_000,
    subscriber_counts=(1, 50),
    stuck_children=1_000,
    fairness_big=5_000,
    fairness_small=10,
    fairness_probes=3,
    peers_n=200,
    latency_timeout_s=60.0,
    efficiency_n=500,
    stuck_memory_subscribers=100,
    cluster_n=1_000,
    kill_n=500,
    rerun_n=1_000,
)
SMOKE = Scale(
    name="smoke",
    reps=1,
    throughput_ns=(50,),
    latency_children=50,
    subscriber_counts=(2,),
    stuck_children=50,
    fairness_big=200,
    fairness_small=5,
    fairness_probes=1,
    peers_n=10,
    latency_timeout_s=60.0,
    efficiency_n=20,
    stuck_memory_subscribers=5,
    cluster_n=50,
    cluster_workers=(1, 2),
    kill_n=150,
    rerun_n=50,
)
SCALES = {s.name: s for s in (FULL, QUICK, SMOKE)}
