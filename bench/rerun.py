"""The pass cache: the second run of an unchanged experiment against the first, same server, same documents.

Each repetition starts a fresh server (an empty cache), creates an experiment of N documents over HTTP and
runs it twice, each timed from `POST …/runs` to `run.finished` on the feed. Engine calls and cache hits
are the runs' own `usage` counters. With the zero-latency simulated engine the first run is pure
orchestration, so the ratio is what a cache hit costs against an (instant) call; with an engine that takes
L per pass it is what a user waiting on a model saves.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from bench.server import Api, BenchError, run_status, running_server, wait_run
from bench.stats import Scale, median, ratio


async def _timed_run(api: Api, exp: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    run_id = await api.start_run(exp)
    run, _via = await wait_run(api, run_id)
    seconds = time.perf_counter() - t0
    if run_status(run) != "completed":
        raise BenchError(f"run {run_id} ended {run_status(run)} with {run.get('counts')}")
    usage = run.get("usage") or {}
    return {
        "seconds": seconds,
        "engine_calls": usage.get("engine_calls"),
        "cache_hits": usage.get("cache_hits"),
        "score": run.get("score"),
    }


async def measure(scale: Scale, log: Any = print) -> dict[str, Any]:
    n = scale.rerun_n
    rows = []
    for latency_ms in (0, scale.efficiency_latency_ms):
        simulation = {"latency_ms": latency_ms} if latency_ms else None
        for w in scale.workers:
            reps: list[tuple[dict[str, Any], dict[str, Any]]] = []
            for rep in range(scale.reps):
                async with running_server(scale.concurrency, workers=w) as srv, aiohttp.ClientSession() as session:
                    api = Api(srv.url, session)
                    exp = await api.experiment(n, n_consensus=scale.passes, simulation=simulation)
                    first = await _timed_run(api, exp)
                    second = await _timed_run(api, exp)
                if second["score"] != first["score"]:
                    raise BenchError(f"the cached re-run scored {second['score']}, the first run {first['score']}")
                reps.append((first, second))
                log(
                    f"  rerun N={n:,} engine {latency_ms} ms workers={w} rep {rep + 1}/{scale.reps}: first"
                    f" {first['seconds']:.2f} s ({first['engine_calls']:,} engine calls), second"
                    f" {second['seconds']:.2f} s ({second['engine_calls']:,} calls, {second['cache_hits']:,} hits)"
                )
            first_s = median([a["seconds"] for a, _ in reps])
            second_s = median([b["seconds"] for _, b in reps])
            rows.append(
                {
                    "n_docs": n,
                    "passes": n * scale.passes,
                    "latency_ms": latency_ms,
                    "workers": w,
                    "first_s": first_s,
                    "second_s": second_s,
                    "speedup": ratio(first_s, second_s),
                    "first_calls": median([a["engine_calls"] for a, _ in reps]),
                    "second_calls": max(b["engine_calls"] for _, b in reps),
                    "second_hits": median([b["cache_hits"] for _, b in reps]),
                    "reps": [{"first": a, "second": b} for a, b in reps],
                }
            )
    return {"rows": rows}
