"""Throughput against the floor, the API's latency while a run goes, and memory, at several experiment
sizes and worker counts.

Each repetition starts a fresh server with W runner processes (`serve --workers W`, so the peak RSS of
every process belongs to that size alone), creates the experiment over HTTP, then times from
`POST …/runs` to the arrival of `run.finished` on the feed. Meanwhile a prober asks the API for the
run and for the runs list, 20 requests/s in all. The floor runs in this process right after, on the
same machine, so each ratio is same-invocation.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anyio

from bench.floor import run_floor
from bench.server import Api, BenchError, ServerProc, run_status, running_server, wait_run
from bench.stats import Scale, median, percentile, ratio

PROBE_EVERY_S = 0.05  # 20 requests/s, alternating GET the run and GET the runs list


async def _probe_api(api: Api, run_id: str, stop: anyio.Event, samples: list[float]) -> None:
    """What a user polling the busy server sees: GET the run, then GET /v1/runs, one every 50 ms."""
    paths = (f"/v1/workflows/experiments/runs/{run_id}", "/v1/runs?limit=20")
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        await api.call("GET", paths[i % 2])
        samples.append((time.perf_counter() - t0) * 1000)
        i += 1
        with anyio.move_on_after(max(0.0, PROBE_EVERY_S - (time.perf_counter() - t0))):
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
    srv.reset_workers_peak()
    cpu0 = srv.cpu_s()
    probes: list[float] = []
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        t1 = time.perf_counter()
        run_id = await api.start_run(exp)
        tg.start_soon(_probe_api, api, run_id, stop, probes)
        run, via = await wait_run(api, run_id)
        seconds = time.perf_counter() - t1
        stop.set()
    if run_status(run) != "completed" or run.get("completed_document_count") != n_docs:
        raise BenchError(f"run {run_id} ended {run_status(run)} with {run.get('counts')}")
    return {
        "n_docs": n_docs,
        "workers": srv.workers,
        "run_id": run_id,
        "seconds": seconds,
        "passes_per_s": n_docs * passes / seconds,
        "create_s": create_s,
        "server_cpu_s": srv.cpu_s() - cpu0,
        "peak_rss_mb_run": srv.peak_rss_mb(),
        "peak_rss_mb_create": peak_after_create,
        "worker_peak_rss_mb": srv.workers_peak_rss_mb(),
        "api_p50_ms": percentile(probes, 50),
        "api_p99_ms": percentile(probes, 99),
        "api_probes": len(probes),
        "awaited_via": via,
    }


def _row(n: int, workers: int, passes: int, reps: list[dict[str, Any]], floors: list[float]) -> dict[str, Any]:
    ours = median([r["passes_per_s"] for r in reps])
    floor_med = median(floors)
    return {
        "n_docs": n,
        "workers": workers,
        "passes": n * passes,
        "ours_passes_per_s": ours,
        "floor_passes_per_s": floor_med,
        "ratio": ratio(ours, floor_med),
        "seconds": median([r["seconds"] for r in reps]),
        "create_s": median([r["create_s"] for r in reps]),
        "server_cpu_s": median([r["server_cpu_s"] for r in reps]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in reps]),
        "peak_rss_mb_run": median([r["peak_rss_mb_run"] for r in reps]),
        "worker_peak_rss_mb": median([r["worker_peak_rss_mb"] for r in reps]),
        "api_p50_ms": median([r["api_p50_ms"] for r in reps]),
        "api_p99_ms": median([r["api_p99_ms"] for r in reps]),
        "awaited_via": reps[0]["awaited_via"],
        "reps": reps,
        "floor_reps": floors,
    }


async def measure(scale: Scale, log: Any = print) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for n in scale.throughput_ns:
        reps: dict[int, list[dict[str, Any]]] = {w: [] for w in scale.workers}
        floors: list[float] = []
        for rep in range(scale.reps):
            for w in scale.workers:
                async with running_server(scale.concurrency, workers=w) as srv, aiohttp.ClientSession() as session:
                    r = await one_run(srv, Api(srv.url, session), n, scale.passes)
                    r["peak_rss_mb"] = max(srv.peak_rss_mb(), r["peak_rss_mb_create"])
                    reps[w].append(r)
                log(
                    f"  throughput N={n:,} workers={w} rep {rep + 1}/{scale.reps}: {r['passes_per_s']:,.0f} passes/s"
                    f" ({r['seconds']:.2f} s, via {r['awaited_via']}), API p99 {r['api_p99_ms']:.1f} ms,"
                    f" peak RSS API {r['peak_rss_mb']:.0f} MB / worker {r['worker_peak_rss_mb']:.0f} MB"
                )
            floor = await run_floor(n, scale.passes, scale.concurrency)
            floors.append(floor.passes_per_s)
            log(f"  floor N={n:,} rep {rep + 1}/{scale.reps}: {floor.passes_per_s:,.0f} passes/s")
        for w in scale.workers:
            rows.append(_row(n, w, scale.passes, reps[w], floors))
    return {"rows": rows, "memory": _memory(rows), "scaling": _scaling(rows)}


def _memory(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per worker count: peak RSS of the API process and of the largest worker, smallest N → largest."""
    out = []
    for w in sorted({r["workers"] for r in rows}):
        mine = sorted((r for r in rows if r["workers"] == w), key=lambda r: r["n_docs"])
        small, big = mine[0], mine[-1]
        out.append(
            {
                "workers": w,
                "small_n": small["n_docs"],
                "big_n": big["n_docs"],
                "api_small_mb": small["peak_rss_mb"],
                "api_big_mb": big["peak_rss_mb"],
                "api_ratio": ratio(big["peak_rss_mb"], small["peak_rss_mb"]),
                "worker_small_mb": small["worker_peak_rss_mb"],
                "worker_big_mb": big["worker_peak_rss_mb"],
                "worker_ratio": ratio(big["worker_peak_rss_mb"], small["worker_peak_rss_mb"]),
            }
        )
    return out


def _scaling(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per N: throughput with the most workers over throughput with the fewest."""
    out = []
    for n in sorted({r["n_docs"] for r in rows}):
        mine = sorted((r for r in rows if r["n_docs"] == n), key=lambda r: r["workers"])
        if len(mine) > 1:
            lo, hi = mine[0], mine[-1]
            out.append(
                {
                    "n_docs": n,
                    "from_workers": lo["workers"],
                    "to_workers": hi["workers"],
                    "ratio": ratio(hi["ours_passes_per_s"], lo["ours_passes_per_s"]),
                }
            )
    return out
