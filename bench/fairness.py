"""Fairness: a small run created while a big one is in progress, against the same small run alone.

Each probe creates a run of an already-created small experiment and times `POST …/runs` → arrival of
`run.finished` on that run's feed. Solo probes run first on the idle server; loaded probes are spread
over the big run while it is in progress (a probe that ends after the big run does not count). Measured
for each worker count, with a zero-latency engine (a user's Python function: pure CPU) and with a 50 ms
one (a model). With an engine that waits, the big run is cancelled once the probes are done: its whole
length (50,000 × 5 passes × 50 ms / 64 slots ≈ 3 minutes) would measure nothing more.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anyio

from bench.server import API_KEY, Api, BenchError, run_status, running_server, wait_run
from bench.stats import Scale, median, ratio
from orchestrator.cli.client import Client


async def _probe(api: Api, experiment_id: str) -> float:
    t0 = time.perf_counter()
    run_id = await api.start_run(experiment_id)
    run, _via = await wait_run(api, run_id, timeout_s=300)
    if run_status(run) != "completed":
        raise BenchError(f"small run {run_id} ended {run_status(run)}")
    return time.perf_counter() - t0


async def measure(scale: Scale, log: Any = print) -> dict[str, Any]:
    rows = []
    for latency_ms in scale.fairness_latency_ms:
        for w in scale.workers:
            rows.append(await _one(scale, w, latency_ms, log))
    return {"rows": rows}


async def _one(scale: Scale, workers: int, latency_ms: int, log: Any) -> dict[str, Any]:
    simulation = {"latency_ms": latency_ms} if latency_ms else None
    # The pass cache off: the probes run the same small experiments again, which would be served from the
    # cache after the first run (and the big run's documents include theirs), measuring no work at all.
    async with (
        running_server(scale.concurrency, extra=("--no-cache",), workers=workers) as srv,
        aiohttp.ClientSession() as session,
    ):
        api = Api(srv.url, session)
        # One experiment per probe: an experiment accepts one in-flight run at a time.
        smalls = [
            await api.experiment(scale.fairness_small, n_consensus=scale.passes, simulation=simulation)
            for _ in range(2)
        ]
        solo: list[float] = []
        for i in range(scale.fairness_probes + 1):
            s = await _probe(api, smalls[i % 2])
            if i:  # the first run warms caches and code paths
                solo.append(s)
        big_exp = await api.experiment(scale.fairness_big, n_consensus=scale.passes, simulation=simulation)
        t0 = time.perf_counter()
        big_id = await api.start_run(big_exp)
        loaded: list[float] = []
        big_done_at: float | None = None
        async with anyio.create_task_group() as tg:
            under_way = anyio.Event()

            async def await_big() -> None:
                nonlocal big_done_at
                threshold = max(1, scale.fairness_big // 20)
                async with Client(api.base, API_KEY, idle_timeout_s=1800) as client:
                    async for event in client.run_events(big_id):
                        counts = event["run"]["counts"]["lifecycle_counts"]
                        if counts["completed"] + counts["error"] >= threshold:
                            under_way.set()
                        if event["type"] == "run.finished":
                            break
                big_done_at = time.perf_counter()
                under_way.set()

            tg.start_soon(await_big)
            # Probe while the big run is in progress: from 5 % done on, spaced out.
            await under_way.wait()
            for i in range(scale.fairness_probes):
                if big_done_at is not None:
                    break
                s = await _probe(api, smalls[i % 2])
                if big_done_at is None:
                    loaded.append(s)
                await anyio.sleep(0.5)
            if latency_ms and big_done_at is None:
                await api.call("POST", f"/v1/workflows/experiments/runs/{big_id}/cancel")
        big_s = (big_done_at or time.perf_counter()) - t0
    solo_med, loaded_med = median(solo), median(loaded)
    log(
        f"  fairness workers={workers} engine {latency_ms} ms: {scale.fairness_small}-child run alone"
        f" {solo_med * 1000:.0f} ms, during a {scale.fairness_big:,}-child run {loaded_med * 1000:.0f} ms"
        f" (x{ratio(loaded_med, solo_med):.2f}); big run {big_s:.1f} s{' (cancelled)' if latency_ms else ''}"
    )
    return {
        "workers": workers,
        "latency_ms": latency_ms,
        "big_cancelled": bool(latency_ms),
        "small": scale.fairness_small,
        "big": scale.fairness_big,
        "solo_ms": solo_med * 1000,
        "loaded_ms": loaded_med * 1000,
        "ratio": ratio(loaded_med, solo_med),
        "solo_samples_ms": [s * 1000 for s in solo],
        "loaded_samples_ms": [s * 1000 for s in loaded],
        "big_run_s": big_s,
        "note": "" if loaded else "the big run ended before any probe: no loaded sample",
    }
