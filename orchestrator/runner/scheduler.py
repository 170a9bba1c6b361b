"""The only place that spawns tasks for runs.

A fixed pool of worker coroutines (never one task per child) pulls children round-robin across
active runs, so a 10-child run created during a 100,000-child run starts at once. Passes share one
CapacityLimiter, acquired inside each pass. Finished children are group-committed by a single
committer coroutine, then published to the feed (persist, then publish).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator.core.lifecycle import experiment_final_status
from orchestrator.engines.router import EngineRouter
from orchestrator.feed.hub import Hub
from orchestrator.ids import now_iso
from orchestrator.runner.context import DocumentCache, RunContext, RunSetupError, prepare
from orchestrator.runner.executor import Executor
from orchestrator.settings import Settings
from orchestrator.store import ChildFinish, Store
from orchestrator.store.db import Row

log = logging.getLogger("orchestrator.runner")
PAGE = 256


@dataclass
class ActiveRun:
    ctx: RunContext
    buffer: deque[Row] = field(default_factory=deque)
    exhausted: bool = False
    in_flight: int = 0
    scopes: set[anyio.CancelScope] = field(default_factory=set)
    refilling: bool = False
    cancelled: bool = False

    @property
    def id(self) -> str:
        return str(self.ctx.run["id"])


Item = tuple[str, Any]  # ("start", (child_id, run_id, ts)) | ("finish", ChildFinish)


class Scheduler:
    def __init__(self, settings: Settings, store: Store, router: EngineRouter, hub: Hub) -> None:
        self.settings = settings
        self.store = store
        self.router = router
        self.hub = hub
        self.limiter = anyio.CapacityLimiter(max(1, settings.max_concurrency))
        self.executor = Executor(settings, router, DocumentCache(store), self.limiter)
        self._runs: dict[str, ActiveRun] = {}
        self._order: deque[str] = deque()
        self._work = anyio.Event()
        self._gen = 0
        self._tg: TaskGroup | None = None
        self._send: MemoryObjectSendStream[Item] | None = None
        self._recv: MemoryObjectReceiveStream[Item] | None = None
        self._starting: set[str] = set()

    # -- lifecycle of the scheduler itself
    async def __aenter__(self) -> Scheduler:
        self._send, self._recv = anyio.create_memory_object_stream[Item](math.inf)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        workers = max(1, self.settings.max_concurrency)
        for _ in range(workers):
            self._tg.start_soon(self._worker)
        self._tg.start_soon(self._committer)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._tg is not None
        # Work in flight is abandoned, not failed: recovery re-runs it at the next start.
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(*exc)

    # -- public API
    def submit(self, run_id: str) -> None:
        """Returns at once; the run is prepared and fed to the workers in the background."""
        if self._tg is None or run_id in self._runs or run_id in self._starting:
            return
        self._starting.add(run_id)
        self._tg.start_soon(self._start_run, run_id)

    async def cancel(self, run_id: str, reason: str) -> bool:
        """Persist the cancellation (shielded), then stop in-flight work. False if already terminal."""
        event = await self.store.runs.finish(run_id, "cancelled", reason=reason)
        active = self._runs.pop(run_id, None)
        if active is not None:
            active.cancelled = True
            active.buffer.clear()
            for scope in list(active.scopes):
                scope.cancel()
        if event is None:
            return False
        self.hub.publish([event])
        return True

    def _notify(self) -> None:
        """Wake every idle worker; waiters of the old event wake, later ones wait on a fresh one."""
        self._gen += 1
        self._work.set()
        self._work = anyio.Event()

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    # -- internals
    async def _start_run(self, run_id: str) -> None:
        try:
            run = await self.store.runs.get(run_id)
            if run["status"] not in ("pending", "queued", "running"):
                return
            try:
                ctx = await prepare(self.store, run)
            except RunSetupError as exc:
                event = await self.store.runs.finish(run_id, "error", error={"message": exc.message, **exc.details})
                if event:
                    self.hub.publish([event])
                return
            event = await self.store.runs.set_status(run_id, "queued")
            if event:
                self.hub.publish([event])
            self._runs[run_id] = ActiveRun(ctx)
            self._order.append(run_id)
            if run["total"] == 0:
                await self._maybe_finish(run_id)
            self._notify()
        finally:
            self._starting.discard(run_id)

    async def _refill(self, active: ActiveRun) -> None:
        if active.refilling or active.exhausted:
            return
        active.refilling = True
        try:
            rows = await self.store.children.claim(active.id, PAGE)
            if active.cancelled:
                return
            active.buffer.extend(rows)
            if len(rows) < PAGE:
                active.exhausted = True
        finally:
            active.refilling = False

    def _cap(self) -> int:
        return self.settings.per_run_concurrency or 1 << 30

    async def _next(self) -> tuple[ActiveRun, Row] | None:
        """Round-robin: each call serves the next run that has a child ready."""
        for _ in range(len(self._order)):
            run_id = self._order[0]
            self._order.rotate(-1)
            active = self._runs.get(run_id)
            if active is None:
                self._order.remove(run_id)
                continue
            if active.in_flight >= self._cap():
                continue
            if not active.buffer and not active.exhausted:
                await self._refill(active)
            if active.buffer and not active.cancelled:
                active.in_flight += 1
                return active, active.buffer.popleft()
        return None

    async def _worker(self) -> None:
        assert self._send is not None
        while True:
            gen = self._gen
            picked = await self._next()
            if picked is None:
                if gen == self._gen:
                    await self._work.wait()
                continue
            active, child = picked
            await self._send.send(("start", (child["id"], active.id, now_iso())))
            finish: ChildFinish | None = None
            with anyio.CancelScope() as scope:
                active.scopes.add(scope)
                try:
                    finish = await self.executor.execute(active.ctx, child)
                except Exception as exc:  # an executor bug must not kill the worker or leave a child open
                    log.exception("child %s crashed", child["id"])
                    finish = ChildFinish(
                        child_id=child["id"],
                        run_id=active.id,
                        status="error",
                        error={"message": f"internal error: {exc!r}", "error_code": "internal"},
                        completed_at=now_iso(),
                    )
                finally:
                    active.scopes.discard(scope)
                    active.in_flight -= 1
            if finish is not None and not active.cancelled:
                await self._send.send(("finish", finish))
            self._notify()

    async def _committer(self) -> None:
        assert self._recv is not None
        interval = self.settings.commit_interval_ms / 1000
        async with self._recv:
            while True:
                first = await self._recv.receive()
                batch = [first]
                with anyio.move_on_after(interval):
                    while len(batch) < self.settings.commit_batch:
                        batch.append(await self._recv.receive())
                while len(batch) < self.settings.commit_batch:  # drain what is already queued
                    try:
                        batch.append(self._recv.receive_nowait())
                    except anyio.WouldBlock:
                        break
                await self._commit(batch)

    async def _commit(self, batch: list[Item]) -> None:
        starts = [v for k, v in batch if k == "start"]
        finishes = [v for k, v in batch if k == "finish"]
        events = await self.store.children.apply(starts, finishes)
        self.hub.publish(events)
        done = {e["run_id"] for e in events if _open(e["body"]["run"]) == 0}
        for run_id in done:
            await self._maybe_finish(run_id)

    async def _maybe_finish(self, run_id: str) -> None:
        active = self._runs.get(run_id)
        if active is None or active.in_flight or active.buffer or not active.exhausted:
            if active is not None and not active.exhausted:
                return
            if active is not None and (active.in_flight or active.buffer):
                return
        run = await self.store.runs.get(run_id)
        if run["c_pending"] + run["c_queued"] + run["c_running"]:
            return
        status, message = ("completed", None)
        if run["kind"] == "experiment":
            status, message = experiment_final_status(run)
        event = await self.store.runs.finish(
            run_id, status, error={"message": message, "error_code": "all_documents_failed"} if message else None
        )
        self._runs.pop(run_id, None)
        if event:
            self.hub.publish([event])


def _open(state: dict[str, Any]) -> int:
    return int(state["c_pending"]) + int(state["c_queued"]) + int(state["c_running"])
