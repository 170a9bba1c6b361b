"""Feed subscribers in their own process: `python -m bench.subscribers URL KEY sse|ws COUNT TIMEOUT_S [MODE]`.

Opens COUNT subscribers to the all-runs feed (SSE `/v1/events` or WebSocket `/v1/ws`) before the
measured run exists, prints `ready`, reads the run id from stdin, and records the arrival time of
every event of that run until each subscriber has seen `run.finished` (or the time limit passes).
Then it prints one JSON line: what each event's latency was, measured from the commit proxy (the
k-th child's `completed_at`, where k is the finished count the event carries) or from the event's
own `ts` when the feed provides one. Loopback only; every loop is bounded by the time limit.

The clock: `ts` is the server's commit time (time.time() at publish, right after the commit) and the
arrival is time.time() here, when the chunk holding the event was read; both processes run on the same
machine, so they share the wall clock and `arrival - ts` needs no synchronisation. MODE is `all` (every
event, in batched frames: `?batch=1`) or `progress` (`?mode=progress`: coalesced run state, at most one
event per run per 100 ms).
"""

from __future__ import annotations

import math
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import orjson

from bench.stats import percentile

CONNECT_PARALLEL = 50
LIVE_TYPES = frozenset({"progress", "child.finished", "run.finished"})


@dataclass
class Sub:
    arrivals: array[float] = field(default_factory=lambda: array("d"))
    finished_counts: array[int] = field(default_factory=lambda: array("q"))
    stamps: array[float] = field(default_factory=lambda: array("d"))
    run_ids: list[str] = field(default_factory=list)
    finished_runs: set[str] = field(default_factory=set)
    lagged: int = 0
    other: int = 0
    connected: bool = False
    done: bool = False
    error: str | None = None


def finished_count(event: dict[str, Any]) -> int:
    """Children finished (completed + error + cancelled) in the run state an event carries."""
    run = event.get("run")
    if not isinstance(run, dict):
        body = event.get("body")
        run = body.get("run") if isinstance(body, dict) else None
    if not isinstance(run, dict):
        return -1
    if "c_completed" in run:
        return int(run["c_completed"] or 0) + int(run.get("c_error") or 0) + int(run.get("c_cancelled") or 0)
    counts = (run.get("counts") or {}).get("lifecycle_counts") if isinstance(run.get("counts"), dict) else None
    if isinstance(counts, dict):
        return int(counts.get("completed", 0)) + int(counts.get("error", 0)) + int(counts.get("cancelled", 0))
    return -1


def event_stamp(event: dict[str, Any]) -> float:
    """The server's commit/publish time of the event when the feed carries one (`ts`), else NaN."""
    ts = event.get("ts")
    if isinstance(ts, int | float):
        return float(ts) / (1000 if ts > 1e11 else 1)
    if isinstance(ts, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return math.nan
    return math.nan


class Followers:
    def __init__(self, url: str, key: str, transport: str, count: int, mode: str = "all") -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.transport = transport
        self.mode = mode
        # Every-event subscribers take batched frames (one message per commit slice), as the page and
        # the Python client do.
        self.query = "?mode=progress" if mode == "progress" else "?batch=1"
        self.subs = [Sub() for _ in range(count)]
        self.target: str | None = None
        self.all_done = anyio.Event()
        self.all_connected = anyio.Event()
        self.settled = 0

    def record(self, sub: Sub, message: Any, arrival: float) -> None:
        """One feed message: an event, or a batch of them (a JSON array)."""
        for event in message if isinstance(message, list) else (message,):
            self.record_one(sub, event, arrival)

    def record_one(self, sub: Sub, event: dict[str, Any], arrival: float) -> None:
        kind = event.get("type")
        if kind == "lagged":
            sub.lagged += 1
            return
        if kind not in LIVE_TYPES:
            sub.other += 1
            return
        run_id = str(event.get("run_id"))
        sub.arrivals.append(arrival)
        sub.finished_counts.append(finished_count(event))
        sub.stamps.append(event_stamp(event))
        sub.run_ids.append(run_id)
        if kind == "run.finished":
            sub.finished_runs.add(run_id)
            self.check(sub)

    def check(self, sub: Sub) -> None:
        if self.target is not None and self.target in sub.finished_runs:
            sub.done = True
        if all(s.done or s.error for s in self.subs):
            self.all_done.set()

    async def follow_sse(self, session: aiohttp.ClientSession, sub: Sub, ready: anyio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "text/event-stream"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(self.url + "/v1/events" + self.query, headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                raise RuntimeError(f"SSE status {resp.status}")
            sub.connected = True
            ready.set()
            pending = b""
            async for chunk in resp.content.iter_any():
                arrival = time.time()
                pending += chunk
                *blocks, pending = pending.split(b"\n\n")
                for block in blocks:
                    for line in block.split(b"\n"):
                        if line.startswith(b"data:"):
                            self.record(sub, orjson.loads(line[5:]), arrival)
                if sub.done:
                    return

    async def follow_ws(self, session: aiohttp.ClientSession, sub: Sub, ready: anyio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with session.ws_connect(self.url + "/v1/ws" + self.query, headers=headers, heartbeat=None) as ws:
            sub.connected = True
            ready.set()
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                self.record(sub, orjson.loads(msg.data), time.time())
                if sub.done:
                    return

    async def one(self, session: aiohttp.ClientSession, sub: Sub, gate: anyio.Semaphore) -> None:
        ready = anyio.Event()

        async def release_when_ready() -> None:
            await ready.wait()
            settled()

        def settled() -> None:
            gate.release()
            self.settled += 1
            if self.settled == len(self.subs):
                self.all_connected.set()

        await gate.acquire()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(release_when_ready)
                follow = self.follow_sse if self.transport == "sse" else self.follow_ws
                try:
                    await follow(session, sub, ready)
                finally:
                    ready.set()
        except Exception as exc:  # one broken subscriber is data, not a crash of the measurement
            sub.error = repr(exc)[:200]
            self.check(sub)


async def completion_times(url: str, key: str, run_id: str) -> list[float]:
    from bench.server import Api

    async with aiohttp.ClientSession() as session:
        api = Api(url, session)
        api.headers["Authorization"] = f"Bearer {key}"
        return await api.completion_times(run_id)


def summarise(f: Followers, times: list[float], connect_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    stamped: list[float] = []
    for sub in f.subs:
        for arrival, k, ts, rid in zip(sub.arrivals, sub.finished_counts, sub.stamps, sub.run_ids, strict=True):
            if rid != f.target:
                continue
            if 0 < k <= len(times):
                latencies.append((arrival - times[k - 1]) * 1000)
            if not math.isnan(ts):
                stamped.append((arrival - ts) * 1000)
    return {
        "subscribers": len(f.subs),
        "transport": f.transport,
        "mode": f.mode,
        "connected": sum(s.connected for s in f.subs),
        "finished": sum(s.done for s in f.subs),
        "errors": sorted({s.error for s in f.subs if s.error})[:3],
        "lagged": sum(s.lagged for s in f.subs),
        "events": len(latencies),
        "connect_s": connect_s,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else math.nan,
        "ts_events": len(stamped),
        "ts_p50_ms": percentile(stamped, 50),
        "ts_p99_ms": percentile(stamped, 99),
        "ts_max_ms": max(stamped) if stamped else math.nan,
    }


async def main(url: str, key: str, transport: str, count: int, timeout_s: float, mode: str = "all") -> None:
    f = Followers(url, key, transport, count, mode)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = anyio.Semaphore(CONNECT_PARALLEL)
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for sub in f.subs:
                tg.start_soon(f.one, session, sub, gate)
            with anyio.fail_after(120):
                await f.all_connected.wait()
            connect_s = time.perf_counter() - t0
            print("ready", flush=True)
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            f.target = line.strip()
            for sub in f.subs:  # a short run may have finished before its id arrived here
                f.check(sub)
            with anyio.move_on_after(timeout_s):
                await f.all_done.wait()
            tg.cancel_scope.cancel()
    times = await completion_times(url, key, f.target or "")
    print(orjson.dumps(summarise(f, times, connect_s)).decode(), flush=True)


if __name__ == "__main__":
    mode = sys.argv[6] if len(sys.argv) > 6 else "all"
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), mode)
