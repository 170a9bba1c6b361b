"""Metrics readers against a run (issue 15): the same experiment run on one server (the pass cache off, so
every run does the same work): once to warm up, alone, then with 50 readers polling as fast as they are
answered, pausing 0.2 s between requests like a dashboard (up to 250 requests/s in all) — 12 ask for the
summary metrics, 38 for the run — then alone again; the ratio of the throughput
with readers to the mean of the two alone. Before, each summary of a 20,000-document run cost 0.57 s
of CPU and the run fell to 0.46×; the target is ≥ 0.9×. Also the readers' metrics latency."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anyio

from bench.server import Api, BenchError, run_status, running_server, wait_run
from bench.stats import Scale, median, percentile, ratio

READERS, METRICS_READERS = 50, 12
PAUSE_S = 0.2  # each reader's pause between two answers
SIZES = {"full": 20_000, "quick": 3_000}


async def _reader(api: Api, path: str, stop: anyio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await api.call("GET", path)
        samples.append((time.perf_counter() - t0) * 1000)
        with anyio.move_on_after(PAUSE_S):
            await stop.wait()


async def _timed_run(api: Api, experiment_id: str, n_docs: int, readers: int) -> dict[str, Any]:
    metrics_ms: list[float] = []
    run_ms: list[float] = []
    stop = anyio.Event()
    t0 = time.perf_counter()
    run_id = await api.start_run(experiment_id)
    async with anyio.create_task_group() as tg:
        for i in range(readers):
            if i < METRICS_READERS:
                tg.start_soon(_reader, api, f"/v1/workflows/experiments/metrics?run_id={run_id}", stop, metrics_ms)
            else:
                tg.start_soon(_reader, api, f"/v1/workflows/experiments/runs/{run_id}", stop, run_ms)
        run, _ = await wait_run(api, run_id)
        seconds = time.perf_counter() - t0
        stop.set()
    if run_status(run) != "completed" or run.get("completed_document_count") != n_docs:
        raise BenchError(f"run {run_id} ended {run_status(run)} with {run.get('counts')}")
    return {
        "seconds": seconds,
        "metrics_requests": len(metrics_ms),
        "metrics_p50_ms": percentile(metrics_ms, 50),
        "metrics_p99_ms": percentile(metrics_ms, 99),
        "run_p50_ms": percentile(run_ms, 50),
    }


async def measure(scale: Scale, log: Any = print) -> dict[str, Any]:
    n = SIZES.get(scale.name, 300)
    reps: list[dict[str, Any]] = []
    for rep in range(scale.reps):
        async with (
            running_server(scale.concurrency, extra=("--no-cache",)) as srv,
            aiohttp.ClientSession() as session,
        ):
            api = Api(srv.url, session)
            exp = await api.experiment(n, n_consensus=scale.passes)
            await _timed_run(api, exp, n, 0)  # warm-up: the first run of a fresh server is slower
            before = await _timed_run(api, exp, n, 0)
            read = await _timed_run(api, exp, n, READERS)
            after = await _timed_run(api, exp, n, 0)
        alone = {"seconds": (before["seconds"] + after["seconds"]) / 2}
        row = {"alone_s": alone["seconds"], "with_readers_s": read["seconds"], **read}
        row["ratio"] = ratio(alone["seconds"], read["seconds"])
        log(
            f"  rep {rep + 1}: {n:,} docs alone {alone['seconds']:.2f}s, with {READERS} readers "
            f"{read['seconds']:.2f}s ({row['ratio']:.2f}×), metrics p50 {read['metrics_p50_ms']:.0f} ms"
        )
        reps.append(row)
    return {
        "n_docs": n,
        "readers": READERS,
        "metrics_readers": METRICS_READERS,
        "alone_s": median([r["alone_s"] for r in reps]),
        "with_readers_s": median([r["with_readers_s"] for r in reps]),
        "ratio": median([r["ratio"] for r in reps]),
        "metrics_p50_ms": median([r["metrics_p50_ms"] for r in reps]),
        "metrics_p99_ms": median([r["metrics_p99_ms"] for r in reps]),
        "metrics_requests": median([r["metrics_requests"] for r in reps]),
    }
