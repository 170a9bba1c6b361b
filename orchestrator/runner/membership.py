"""A worker's place among the workers of one store: it joins and leaves, beats (renewing its leases and
learning who else is alive), finds runs to work on, and notices runs that ended elsewhere.

All of it goes through the store, so it holds across processes and machines: the live set and the
leases are rows, wake-ups are the store's `runs` signal, and polling every `poll_s` covers a lost one.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Protocol

import anyio

from orchestrator.core.lifecycle import TERMINAL
from orchestrator.errors import StorageFull
from orchestrator.settings import Settings
from orchestrator.store import Store

log = logging.getLogger("orchestrator.runner")


def share(total: int, live: list[str], me: str) -> int:
    """This worker's part of a global limit split among the live workers (at least 1): `total // k`,
    plus one for the first `total % k` workers in id order, so the parts add up to `total`."""
    workers = sorted(set(live) | {me})
    base, extra = divmod(max(1, total), len(workers))
    return max(1, base + (1 if workers.index(me) < extra else 0))


class Runner(Protocol):
    """What membership needs of the scheduler it serves."""

    worker_id: str

    @property
    def capacity(self) -> int: ...
    def active_run_ids(self) -> list[str]: ...
    def submit(self, run_id: str) -> None: ...
    def resume(self, run_id: str) -> bool: ...
    def stop_feeding(self, run_id: str) -> None: ...
    def rebalance(self, live: list[str]) -> None: ...
    def storage_full(self) -> None: ...
    def storage_ok(self) -> None: ...


class Membership:
    def __init__(self, settings: Settings, store: Store, runner: Runner) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.live: list[str] = [runner.worker_id]
        self._poke = anyio.Event()
        self._beat = anyio.Event()

    @property
    def worker_id(self) -> str:
        return self.runner.worker_id

    async def join(self) -> None:
        await self.store.workers.register(
            self.worker_id, host=socket.gethostname(), pid=os.getpid(), capacity=self.runner.capacity
        )
        # The other workers beat at once and learn that their shares of the global limits shrank; else
        # they would each run at the whole limit until their next beat.
        self.store.signals.notify("workers")

    async def leave(self) -> None:
        """Children claimed but not finished go back to pending at once for the other workers (else
        they would wait for the lease to expire), and this worker leaves the live set."""
        try:
            released = await self.store.children.release(self.worker_id)
            await self.store.workers.stop(self.worker_id)
            self.store.signals.notify("runs")
        except Exception:  # the store is going away too: the leases expire by themselves
            log.exception("worker %s could not release its children", self.worker_id)
            return
        if released:
            log.info("worker %s released %d unfinished child(ren)", self.worker_id, released)

    def poke(self) -> None:
        """Look at the store again now (a run was created or cancelled in this process)."""
        self._poke.set()

    def beat_now(self) -> None:
        """The `workers` signal: a worker joined or left. Beat now, so the shares of the global limits
        follow the live set before more passes start."""
        self._beat.set()

    async def discover(self) -> None:
        """Find runs with children to hand out, and notice runs that ended elsewhere (cancelled through
        another process, or finished by another worker's commit): woken by the `runs` signal or a poke,
        else every `poll_s`."""
        listener = self.store.signals.listen("runs", self.poke)
        try:
            while True:
                try:
                    await self._look()
                except Exception:
                    log.exception("worker %s could not read the runs", self.worker_id)
                with anyio.move_on_after(self.settings.poll_s):
                    await self._poke.wait()
                self._poke = anyio.Event()
        finally:
            listener.close()

    async def _look(self) -> None:
        for run_id in await self.store.runs.claimable(1000):
            if not self.runner.resume(run_id):
                self.runner.submit(run_id)
        active = self.runner.active_run_ids()
        if active:
            for run_id, status in (await self.store.runs.statuses(active)).items():
                if status in TERMINAL:
                    self.runner.stop_feeding(run_id)

    async def heartbeat(self) -> None:
        """Renew this worker's leases, learn who else is alive (and so this worker's share of the global
        limits), and hand the children of dead workers and expired leases back to pending."""
        every = self.settings.heartbeat_s
        stale = max(3 * every, 1.0)
        listener = self.store.signals.listen("workers", self.beat_now)
        try:
            await self._beat_forever(every, stale)
        finally:
            listener.close()

    async def _beat_forever(self, every: float, stale: float) -> None:
        while True:
            try:
                live = await self.store.workers.heartbeat(
                    self.worker_id, lease_s=self.settings.lease_s, stale_s=stale, capacity=self.runner.capacity
                )
                if live != self.live:
                    self.live = live
                    self.runner.rebalance(live)
                self.runner.storage_ok()  # the beat was a write: the store accepts them (again)
                dead = await self.store.workers.reap(stale)
                if await self.store.children.reclaim(time.time(), dead):
                    self.store.signals.notify("runs")
                    self.poke()
            except StorageFull:
                self.runner.storage_full()  # logged by the store, once per 30 s
            except Exception:
                log.exception("worker %s heartbeat failed", self.worker_id)
            with anyio.move_on_after(every):
                await self._beat.wait()
            self._beat = anyio.Event()
