"""Feed latency with 1…1,000 subscribers, and the cost of one subscriber that never reads.

Subscribers live in another process (`bench.subscribers`) so their work does not share this
process's event loop; both processes talk to the server over loopback only.

Latency is `arrival - ts`: `ts` is the server's commit time carried by every event, the arrival is
the subscriber's wall clock when it read the event; same machine, so one clock (see bench.subscribers).
The older proxy (the k-th child's `completed_at`, which adds the group-commit wait) is kept as
`proxy_p50_ms` / `proxy_p99_ms`. Each count is measured in both feed modes: `all` (every event) and
`progress` (`?mode=progress`, coalesced run state); each row says which in `mode`.
"""

from __future__ import annotations

import math
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import orjson

from bench.server import API_KEY, ROOT, Api, BenchError, running_server
from bench.stats import Scale, median, ratio
from bench.throughput import one_run

TRANSPORTS = ("sse", "ws")
MODES = ("all", "progress")


async def _latency_once(
    scale: Scale, transport: str, count: int, timeout_s: float, mode: str = "all", workers: int | None = None
) -> dict[str, Any]:
    async with running_server(scale.concurrency, workers=workers) as srv, aiohttp.ClientSession() as session:
        api = Api(srv.url, session)
        exp = await api.experiment(scale.latency_children, n_consensus=scale.passes)
        proc = await anyio.open_process(
            [sys.executable, "-m", "bench.subscribers", srv.url, API_KEY, transport, str(count), str(timeout_s), mode],
            cwd=ROOT,
        )
        async with proc:
            assert proc.stdout is not None and proc.stdin is not None
            lines = _lines(proc.stdout)
            with anyio.fail_after(180):
                first = await anext(lines)
            if first.strip() != "ready":
                raise BenchError(f"subscribers said {first!r}")
            t0 = time.perf_counter()
            run_id = await api.start_run(exp)
            await proc.stdin.send((run_id + "\n").encode())
            with anyio.fail_after(timeout_s + 120):
                summary = orjson.loads(await anext(lines))
            seconds = time.perf_counter() - t0
            await proc.wait()
        # The reported figure is measured from the server's commit stamp; the proxy stays for comparison.
        summary["proxy_p50_ms"], summary["proxy_p99_ms"] = summary["p50_ms"], summary["p99_ms"]
        summary["proxy_max_ms"] = summary["max_ms"]
        if summary.get("ts_events"):
            summary["p50_ms"], summary["p99_ms"] = summary["ts_p50_ms"], summary["ts_p99_ms"]
            summary["max_ms"] = summary["ts_max_ms"]
        summary["run_s_upper_bound"] = seconds
        summary["server_peak_rss_mb"] = srv.peak_rss_mb()
        return dict(summary)


async def _lines(stream: Any) -> Any:
    buf = b""
    async for chunk in stream:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode()


async def measure_latency(scale: Scale, log: Any = print) -> list[dict[str, Any]]:
    rows = []
    for workers in scale.workers:
        for mode in MODES:
            for count in scale.subscriber_counts:
                for transport in TRANSPORTS:
                    rows.append(await _row(scale, transport, count, mode, workers, log))
    return rows


async def _row(scale: Scale, transport: str, count: int, mode: str, workers: int, log: Any) -> dict[str, Any]:
    label = (transport if mode == "all" else f"{transport} progress") + f" workers={workers}"
    reps = []
    for rep in range(scale.reps):
        r = await _latency_once(scale, transport, count, scale.latency_timeout_s, mode, workers)
        reps.append(r)
        log(
            f"  latency {label} x{count} rep {rep + 1}/{scale.reps}: p50 {r['p50_ms']:.1f} ms,"
            f" p99 {r['p99_ms']:.1f} ms (proxy p99 {r['proxy_p99_ms']:.1f} ms), events {r['events']:,},"
            f" lagged {r['lagged']}, finished {r['finished']}/{count}, errors {r['errors']}"
        )
        if r["finished"] < count:
            # Cut off by the time limit: the figures are lower bounds, and repeating costs minutes.
            log(f"  latency {label} x{count}: not every subscriber saw the end within the limit")
            break
    return {
        "workers": workers,
        "transport": transport,
        "mode": mode,
        "subscribers": count,
        "children": scale.latency_children,
        "p50_ms": median([r["p50_ms"] for r in reps]),
        "p99_ms": median([r["p99_ms"] for r in reps]),
        "max_ms": median([r["max_ms"] for r in reps]),
        "ts_p99_ms": median([r["ts_p99_ms"] for r in reps]),
        "proxy_p50_ms": median([r["proxy_p50_ms"] for r in reps]),
        "proxy_p99_ms": median([r["proxy_p99_ms"] for r in reps]),
        "events_per_subscriber": median([r["events"] / max(1, r["subscribers"]) for r in reps]),
        "lagged": median([r["lagged"] for r in reps]),
        "all_finished": all(r["finished"] == count for r in reps),
        "timeout_s": scale.latency_timeout_s,
        "server_peak_rss_mb": median([r["server_peak_rss_mb"] for r in reps]),
        "reps": reps,
    }


@contextmanager
def stuck_client(url: str, transport: str) -> Iterator[socket.socket]:
    """A client that subscribes to the all-runs feed and never reads a byte (its receive buffer is tiny)."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    auth = f"Authorization: Bearer {API_KEY}\r\n"
    if transport == "sse":
        request = f"GET /v1/events HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}Accept: text/event-stream\r\n\r\n"
    else:
        request = (
            f"GET /v1/ws HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    sock.sendall(request.encode())
    try:
        yield sock
    finally:
        sock.close()


async def measure_stuck(scale: Scale, log: Any = print) -> dict[str, Any]:
    """Run time of the same run with no subscriber, then with one SSE / one WS client that never reads."""
    times: dict[str, list[float]] = {"none": [], "sse": [], "ws": []}
    modes = ["none", "sse", "ws"]
    for rep in range(scale.reps):
        # Rotate the order each repetition so that drift in the machine's load does not favour one mode.
        for mode in modes[rep % 3 :] + modes[: rep % 3]:
            workers = max(scale.workers)
            async with running_server(scale.concurrency, workers=workers) as srv, aiohttp.ClientSession() as session:
                api = Api(srv.url, session)
                if mode == "none":
                    r = await one_run(srv, api, scale.stuck_children, scale.passes)
                else:
                    with stuck_client(srv.url, mode):
                        await anyio.sleep(0.2)  # let the server register the subscription
                        r = await one_run(srv, api, scale.stuck_children, scale.passes)
                times[mode].append(r["seconds"])
                log(f"  stuck subscriber rep {rep + 1}/{scale.reps} {mode}: {r['seconds']:.2f} s")
    memory = await _stuck_memory(scale, log)
    base = median(times["none"])
    return {
        "memory": memory,
        "workers": max(scale.workers),
        "children": scale.stuck_children,
        "none_s": base,
        "sse_s": median(times["sse"]),
        "ws_s": median(times["ws"]),
        "sse_ratio": ratio(median(times["sse"]), base),
        "ws_ratio": ratio(median(times["ws"]), base),
        "ratio": max(ratio(median(times["sse"]), base), ratio(median(times["ws"]), base)),
        "times": times,
    }


async def _stuck_memory(scale: Scale, log: Any) -> dict[str, Any]:
    """The API process's RSS after a run followed by N SSE subscribers that never read, and once they have
    dropped (against the same run with none): what they cost, and what is given back."""
    rss: dict[str, float] = {}
    count = scale.stuck_memory_subscribers
    for label, n in (("none", 0), ("stuck", count)):
        async with (
            running_server(scale.concurrency, workers=max(scale.workers)) as srv,
            aiohttp.ClientSession() as session,
        ):
            api = Api(srv.url, session)
            with ExitStack() as stack:
                for _ in range(n):
                    stack.enter_context(stuck_client(srv.url, "sse"))
                await anyio.sleep(0.5)  # let the server register the subscriptions
                await one_run(srv, api, scale.stuck_children, scale.passes)
                rss[f"{label}_with"] = srv.rss_mb()
            rss[f"{label}_after"] = await _settled_rss(srv)
    log(
        f"  stuck memory: API RSS after the run {rss['none_after']:.0f} MB with no subscriber;"
        f" {rss['stuck_with']:.0f} MB with {count} stuck SSE subscribers,"
        f" {rss['stuck_after']:.0f} MB after they dropped"
    )
    return {"subscribers": count, **rss}


async def _settled_rss(srv: Any, within_s: float = 10.0) -> float:
    """The server's RSS once it stops falling (the feed trims freed memory a moment after departures)."""
    last = srv.rss_mb()
    with anyio.move_on_after(within_s):
        while True:
            await anyio.sleep(1.0)
            now = srv.rss_mb()
            if now >= last - 0.5:
                return float(now)
            last = now
    return float(srv.rss_mb())


def finite(x: float) -> bool:
    return not math.isnan(x) and not math.isinf(x)
