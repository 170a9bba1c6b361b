"""Throughput against the floor, and the server's memory, at several experiment sizes.

Each repetition starts a fresh server (so its peak RSS belongs to that size alone), creates the
experiment over HTTP, then times from `POST …/runs` to the arrival of `run.finished` on the feed.
The floor runs in this process right after, on the same machine, so each ratio is same-invocation.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anyio

from bench.floor import run_floor
from bench.server import Api, BenchError, ServerProc, run_status, running_server, wait_run
from bench.stats import Scale, median, percentile, ratio


async def _probe_api(api: Api, stop: anyio.Event, samples: list[float]) -> None:
    """GET /v1/health every 50 ms while the run goes: how long the busy server takes to answer."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await api.call("GET", "/v1/health")
        samples.append((time.perf_counter() - t0) * 1000)
        with anyio.move_on_after(0.05):
            await stop.wait()


async def one_run(
    srv: ServerProc, api: Api, n_docs: int, passes: int, *, simulation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Create an experiment of `n_docs`, run it, await it: timings, CPU and memory of the server."""
    t0 = time.perf_counter()
    exp = await api.experiment(n_docs, n_consensus=passes, simulation=simulation)
    create_s = time.perf_counter() - t0
    peak_after_create = srv.peak_rss_mb()
    srv.reset_peak()
    cpu0 = srv.cpu_s()
    probes: list[float] = []
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_probe_api, api, stop, probes)
        t1 = time.perf_counter()
        run_id = await api.start_run(exp)
        run, via = await wait_run(api, run_id)
        seconds = time.perf_counter() - t1
        stop.set()
    if run_status(run) != "completed" or run.get("completed_document_count") != n_docs:
        raise BenchError(f"run {run_id} ended {run_status(run)} with {run.get('counts')}")
    return {
        "n_docs": n_docs,
        "run_id": run_id,
        "seconds": seconds,
        "passes_per_s": n_docs * passes / seconds,
        "create_s": create_s,
        "server_cpu_s": srv.cpu_s() - cpu0,
        "peak_rss_mb_run": srv.peak_rss_mb(),
        "peak_rss_mb_create": peak_after_create,
        "api_p50_ms": percentile(probes, 50),
        "api_p99_ms": percentile(probes, 99),
        "awaited_via": via,
    }


async def measure(scale: Scale, log: Any = print) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for n in scale.throughput_ns:
        reps: list[dict[str, Any]] = []
        floors: list[float] = []
        for rep in range(scale.reps):
            async with running_server(scale.concurrency) as srv, aiohttp.ClientSession() as session:
                api = Api(srv.url, session)
                r = await one_run(srv, api, n, scale.passes)
                r["peak_rss_mb"] = max(srv.peak_rss_mb(), r["peak_rss_mb_create"])
                reps.append(r)
            floor = await run_floor(n, scale.passes, scale.concurrency)
            floors.append(floor.passes_per_s)
            log(
                f"  throughput N={n} rep {rep + 1}/{scale.reps}: ours {r['passes_per_s']:,.0f} passes/s"
                f" ({r['seconds']:.2f} s, via {r['awaited_via']}), floor {floor.passes_per_s:,.0f} passes/s,"
                f" peak RSS {r['peak_rss_mb']:.0f} MB"
            )
        ours = median([r["passes_per_s"] for r in reps])
        floor_med = median(floors)
        rows.append(
            {
                "n_docs": n,
                "passes": n * scale.passes,
                "ours_passes_per_s": ours,
                "floor_passes_per_s": floor_med,
                "ratio": ratio(ours, floor_med),
                "seconds": median([r["seconds"] for r in reps]),
                "create_s": median([r["create_s"] for r in reps]),
                "server_cpu_s": median([r["server_cpu_s"] for r in reps]),
                "peak_rss_mb": median([r["peak_rss_mb"] for r in reps]),
                "peak_rss_mb_run": median([r["peak_rss_mb_run"] for r in reps]),
                "api_p50_ms": median([r["api_p50_ms"] for r in reps]),
                "api_p99_ms": median([r["api_p99_ms"] for r in reps]),
                "awaited_via": reps[0]["awaited_via"],
                "reps": reps,
                "floor_reps": floors,
            }
        )
    small, big = rows[0], rows[-1]
    return {
        "rows": rows,
        "memory": {
            "small_n": small["n_docs"],
            "big_n": big["n_docs"],
            "small_peak_mb": small["peak_rss_mb"],
            "big_peak_mb": big["peak_rss_mb"],
            "ratio": ratio(big["peak_rss_mb"], small["peak_rss_mb"]),
            "run_phase_ratio": ratio(big["peak_rss_mb_run"], small["peak_rss_mb_run"]),
        },
    }
