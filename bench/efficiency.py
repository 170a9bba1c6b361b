"""Efficiency against the concurrency limit: with an engine that takes L per pass and C pass slots, no
scheduler can finish P passes faster than P × L / C. The ratio of that bound to the measured run time
(`POST …/runs` → `run.finished` on the feed, so start-up and the last commit count against us) says how
much of the time the slots sat idle: dead time between a pass ending and the next one starting, claims
that come late, a worker that runs out of children while another still has some.

The same bound is also measured for bare asyncio in this process — a semaphore of C and P sleeps of L,
nothing else — because asyncio's timers themselves overshoot (epoll waits in whole milliseconds, and a
busy loop wakes late): that is the best any asyncio program can do with a sleeping engine, and `vs bare`
is our dead time alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.server import Api, running_server
from bench.stats import Scale, median, ratio
from bench.throughput import one_run


async def bare(passes: int, latency_ms: int, concurrency: int) -> float:
    """Seconds for bare asyncio to sleep `latency_ms` `passes` times, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await asyncio.sleep(latency_ms / 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(passes)))
    return time.perf_counter() - t0


async def measure(scale: Scale, log: Any = print) -> dict[str, Any]:
    latency_ms = scale.efficiency_latency_ms
    n = scale.efficiency_n
    passes = n * scale.passes
    bound_s = passes * latency_ms / 1000 / scale.concurrency
    bare_times = [await bare(passes, latency_ms, scale.concurrency) for _ in range(scale.reps)]
    bare_s = median(bare_times)
    log(f"  efficiency bare asyncio: {bare_s:.3f} s against a bound of {bound_s:.3f} s ({ratio(bound_s, bare_s):.3f})")
    rows = []
    for w in scale.workers:
        times: list[float] = []
        for rep in range(scale.reps):
            async with running_server(scale.concurrency, workers=w) as srv, aiohttp.ClientSession() as session:
                r = await one_run(srv, Api(srv.url, session), n, scale.passes, simulation={"latency_ms": latency_ms})
            times.append(r["seconds"])
            log(
                f"  efficiency workers={w} rep {rep + 1}/{scale.reps}: {r['seconds']:.3f} s against a bound of"
                f" {bound_s:.3f} s ({ratio(bound_s, r['seconds']):.3f})"
            )
        seconds = median(times)
        rows.append(
            {
                "workers": w,
                "n_docs": n,
                "passes": passes,
                "latency_ms": latency_ms,
                "concurrency": scale.concurrency,
                "bound_s": bound_s,
                "seconds": seconds,
                "efficiency": ratio(bound_s, seconds),
                "bare_s": bare_s,
                "bare_efficiency": ratio(bound_s, bare_s),
                "vs_bare": ratio(bare_s, seconds),
                "times": times,
            }
        )
    return {"rows": rows}
