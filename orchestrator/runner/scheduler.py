"""A runner: the claim loop of one worker (a worker process, or the API process with `--workers 0`).

It talks to nothing but the store. It finds open runs in the store (woken by the `runs` signal, polling
as a fallback), claims their children in pages under a lease in its own name, renewed by a heartbeat
while it lives, and runs them with a fixed pool of coroutines (never one task per child) that pick
children round-robin across runs, so a 10-child run created during a 100,000-child run starts at once.
Passes share one FairLimiter (this worker's share of the global limits), acquired inside each pass.
Finished children are group-committed under the lease by one committer coroutine; the store publishes
the committed events. A run ends when its committed counts show no open child, whichever worker
commits last. A worker that dies loses nothing: its leases expire and other workers claim again; its
late commits are refused because the lease is no longer its.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator.core.lifecycle import TERMINAL, open_count
from orchestrator.engines.router import EngineRouter
from orchestrator.errors import NotFound, StorageFull
from orchestrator.ids import new_id, now_iso
from orchestrator.runner.commit import Item, choose_batch, commit_until_stored, group_commit
from orchestrator.runner.context import DocumentCache, RunSetupError, prepare
from orchestrator.runner.executor import Executor
from orchestrator.runner.fair import FairLimiter, Reservation
from orchestrator.runner.maintenance import maintenance_loop
from orchestrator.runner.membership import Membership, share
from orchestrator.runner.pacing import Pacer
from orchestrator.runner.pages import ActiveRun, min_page, next_page
from orchestrator.runner.passcache import PassCache, Trimmer
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.records import ChildFinish, ChildStart, ClaimedChild

log = logging.getLogger("orchestrator.runner")
DRAIN_S = 10.0  # at shutdown, how long finished children may take to be committed


class Scheduler:
    def __init__(self, settings: Settings, store: Store, router: EngineRouter, *, worker_id: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.router = router
        self.worker_id = worker_id or new_id("wrk")
        self.limiter = FairLimiter(settings.max_concurrency)
        self.membership = Membership(settings, store, self)
        self.passes = PassCache(store, router, enabled=settings.cache)
        self.trimmer = Trimmer(store, settings.cache_max_mb << 20)
        self.executor = Executor(
            settings, router, DocumentCache.from_settings(store, settings), self.limiter, passes=self.passes
        )
        self._runs: dict[str, ActiveRun] = {}
        self._order: deque[str] = deque()
        self._work = anyio.Event()  # the lag monitor's wake-up when a run arrives
        self._idle: deque[asyncio.Future[None]] = deque()  # pool coroutines with nothing to start
        self._room_wanted = False  # a coroutine found no room under the limiter: wake one when there is
        self.limiter.on_room = self._on_room
        self._starting: set[str] = set()
        self._cancelled_starting: set[str] = set()  # cancelled before they were registered
        self._work_tg: TaskGroup | None = None
        self._commit_tg: TaskGroup | None = None
        self._send: MemoryObjectSendStream[Item] | None = None
        self._recv: MemoryObjectReceiveStream[Item] | None = None
        self.pacer = Pacer(settings.max_loop_lag_ms, store)
        self._run_cap = settings.per_run_concurrency or 1 << 30  # this worker's share of the per-run cap
        # The store refused a write for lack of space: no child starts until a write succeeds again (a
        # commit, a claim or the heartbeat); finished children wait in the committer, which retries.
        self.paused = False

    # -- lifecycle of the scheduler itself
    async def __aenter__(self) -> Scheduler:
        await self.membership.join()
        # Bounded: when the writer falls behind, workers wait instead of piling results up in memory.
        self._send, self._recv = anyio.create_memory_object_stream[Item](max(64, self.settings.commit_batch))
        self._commit_tg = anyio.create_task_group()
        await self._commit_tg.__aenter__()
        self._commit_tg.start_soon(self._committer)
        self._work_tg = anyio.create_task_group()
        await self._work_tg.__aenter__()
        for _ in range(max(1, self.settings.max_concurrency)):
            self._work_tg.start_soon(self._worker)
        if self.settings.max_loop_lag_ms > 0:
            self._work_tg.start_soon(self.pacer.monitor, lambda: bool(self._runs), self._until_work, self._notify)
        self._work_tg.start_soon(maintenance_loop, self.store, self.settings.event_retention_days)
        if self.settings.cache:
            self._work_tg.start_soon(self.trimmer.run)
        self._work_tg.start_soon(self.membership.heartbeat)
        self._work_tg.start_soon(self.membership.discover)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._work_tg is not None and self._commit_tg is not None and self._send is not None
        work_tg, self._work_tg = self._work_tg, None
        # Work in flight is abandoned, not failed: recovery re-runs it at the next start. Children
        # that already finished are still committed (the committer drains, then sees end of stream).
        work_tg.cancel_scope.cancel()
        try:
            await work_tg.__aexit__(None, None, None)
        finally:
            await self._send.aclose()
            self._commit_tg.cancel_scope.deadline = anyio.current_time() + DRAIN_S
            suppress = await self._commit_tg.__aexit__(*exc)
            with anyio.CancelScope(shield=True):
                await self.membership.leave()
        return suppress

    # -- public API
    def submit(self, run_id: str) -> None:
        """Returns at once; the run is prepared and fed to the workers in the background. Runs created
        elsewhere are found in the store; this only saves the discovery loop a turn."""
        if self._work_tg is None or run_id in self._runs or run_id in self._starting:
            return
        self._starting.add(run_id)
        self._work_tg.start_soon(self._start_run, run_id)

    def poke(self) -> None:
        self.membership.poke()

    # -- what membership drives
    @property
    def capacity(self) -> int:
        return self.limiter.total

    def active_run_ids(self) -> list[str]:
        return list(self._runs)

    def resume(self, run_id: str) -> bool:
        """A run this worker already feeds has children to hand out again (a dead worker's, reclaimed);
        False when this worker does not feed it."""
        active = self._runs.get(run_id)
        if active is None:
            return False
        if active.exhausted and not active.cancelled:
            active.exhausted = False
            self._refill_soon(active)
        return True

    def rebalance(self, live: list[str]) -> None:
        """This worker's shares of the global limits, now that `live` workers share them."""
        self.limiter.resize(share(self.settings.max_concurrency, live, self.worker_id))
        if self.settings.per_run_concurrency:
            self._run_cap = share(self.settings.per_run_concurrency, live, self.worker_id)
        self.router.set_share(1 / len(set(live) | {self.worker_id}))

    def stop_feeding(self, run_id: str) -> None:
        self._stop_feeding(run_id)

    def _stop_feeding(self, run_id: str) -> None:
        """No new child of this run starts, and its in-flight passes are cancelled."""
        if run_id in self._starting:
            self._cancelled_starting.add(run_id)
        active = self._runs.pop(run_id, None)
        if active is not None:
            active.cancelled = True
            active.buffer.clear()
            active.prepared.clear()
            for scope in list(active.scopes):
                scope.cancel()

    async def cancel(self, run_id: str, reason: str) -> bool:
        """Persist the cancellation (the store shields the write and publishes it), then stop feeding
        and cancel in-flight passes here; other workers see it in the store. False when the run was
        already terminal."""
        event = await self.store.runs.finish(run_id, "cancelled", reason=reason)
        self._stop_feeding(run_id)
        self.store.signals.notify("runs")
        return event is not None

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    def storage_full(self) -> None:
        self.paused = True

    def storage_ok(self) -> None:
        if self.paused:
            self.paused = False
            self._notify()

    # -- starting a run
    async def _start_run(self, run_id: str) -> None:
        try:
            await self._start(run_id)
        except StorageFull:
            self.storage_full()  # not the run's fault: discovery finds it again once writes succeed
        except Exception as exc:  # a bug here must fail this run, not the scheduler
            log.exception("run %s could not start", run_id)
            await self._fail_run(run_id, f"internal error while starting the run: {exc!r}", "internal")
        finally:
            self._starting.discard(run_id)
            self._cancelled_starting.discard(run_id)

    async def _start(self, run_id: str) -> None:
        try:
            run = await self.store.runs.get(run_id)
        except NotFound:
            return  # deleted (with its workflow) before it started
        if run["status"] in TERMINAL:
            return
        try:
            ctx = await prepare(self.store, run)
        except RunSetupError as exc:
            await self._fail_run(run_id, exc.message, str(exc.details.get("error_code", "run_setup")), exc.details)
            return
        page = min_page(self.limiter.total, ctx.passes_per_child)
        state, _event, rows = await self.store.children.start_run(
            run_id, page, owner=self.worker_id, lease_s=self.settings.lease_s
        )
        if state["status"] in TERMINAL or run_id in self._cancelled_starting:
            return  # cancelled while it was being prepared (the cancellation closed its children)
        if open_count(state) == 0:  # nothing to run: no children, or all committed before a restart
            await self._finish(run_id)
            return
        prepared = await self.passes.prepare(ctx, rows, self.executor.cache)
        active = ActiveRun(ctx, buffer=deque(rows), exhausted=len(rows) < page, page=page, claimed_at=time.monotonic())
        active.prepared = prepared
        self._runs[run_id] = active
        if run_id not in self._order:
            self._order.append(run_id)
        self._notify()

    async def _refill(self, active: ActiveRun) -> None:
        now = time.monotonic()
        smallest = min_page(self.limiter.total, active.ctx.passes_per_child)
        active.page = next_page(active.taken, now - active.claimed_at, smallest, active.page)
        active.claimed_at = now
        active.taken = 0
        try:
            rows = await self.store.children.claim(
                active.id, active.page, owner=self.worker_id, lease_s=self.settings.lease_s
            )
            active.prepared.update(await self.passes.prepare(active.ctx, rows, self.executor.cache))
        except StorageFull:
            self.storage_full()  # claimed again once writes succeed (the pause stops _pick meanwhile)
            return
        except Exception as exc:
            log.exception("claiming children of run %s failed", active.id)
            await self._fail_run(active.id, f"internal error while claiming children: {exc!r}", "internal")
            return
        finally:
            active.refilling = False
        if active.cancelled:
            return  # the cancellation's transaction marks claimed children cancelled
        active.buffer.extend(rows)
        if len(rows) < active.page:
            active.exhausted = True
        if rows:
            self._notify()

    def _refill_soon(self, active: ActiveRun) -> None:
        if active.refilling or active.exhausted or active.cancelled or self._work_tg is None:
            return
        active.refilling = True
        self._work_tg.start_soon(self._refill, active)

    # -- workers
    def _notify(self) -> None:
        """Work arrived: wake an idle coroutine (it passes the wake-up on while there is room; a wake-up
        per coroutine at once would be a thundering herd on every refill)."""
        self._work.set()
        self._work = anyio.Event()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            idle = self._idle.popleft()
            if not idle.done():
                idle.set_result(None)
                return

    def _on_room(self) -> None:
        """The limiter has room again (a pass ended with nobody queued): start a waiting child."""
        if self._room_wanted:
            self._room_wanted = False
            self._wake_one()

    async def _until_work(self) -> None:
        await self._work.wait()

    def _pick(self) -> tuple[ActiveRun, ClaimedChild, Reservation] | None:
        """Serve the run with the fewest children in flight among those with a child ready and room
        under their cap, round-robin among equals: a run created beside a big one gets the slots that
        free up first, until it holds as many as the big one.

        While the loop is saturated, a run that already has children in flight starts no new one:
        the loop's turns shorten as those finish, and a run with nothing in flight (a small run just
        submitted) still gets a child at once instead of queueing behind hundreds of others' steps.

        No child starts while the limiter has no room (its slots are in use, queued for or reserved by
        children already started): children wait in the buffer, where a run's cancellation, another
        worker or a newer run's turn can still reach them, not in the limiter's queue.

        Synchronous on purpose: no other worker can change the rotation while it runs."""
        if self.paused:
            return None  # storage_ok() wakes the workers
        if not self.limiter.has_room():
            self._room_wanted = True
            return None
        cap = self._run_cap
        saturated = self.pacer.saturated
        best: ActiveRun | None = None
        for _ in range(len(self._order)):
            run_id = self._order[0]
            self._order.rotate(-1)
            active = self._runs.get(run_id)
            if active is None or active.cancelled:
                self._order.pop()  # finished or cancelled: it was just rotated to the end
                continue
            if active.wants_more:
                self._refill_soon(active)
            if not active.buffer or active.in_flight >= cap:
                continue
            if saturated and active.in_flight:
                self.pacer.throttled = True
                continue
            if best is None or active.in_flight < best.in_flight:
                best = active
                if not active.in_flight:
                    break  # nobody has fewer
        if best is None:
            return None
        if len(self._order) > 1 and self._order[-1] != best.id:
            self._order.remove(best.id)  # its turn is taken: to the back of the rotation
            self._order.append(best.id)
        best.in_flight += 1
        best.taken += 1
        child = best.buffer.popleft()
        block = best.ctx.block(child["block_id"])
        n = best.ctx.n_for(block) if block else 1
        prep = best.prepared.get(child["id"])
        # Slots for the passes it will call: a child the pass cache answers whole reserves none.
        return best, child, self.limiter.reserve(prep.misses(n) if prep is not None else n)

    async def _worker(self) -> None:
        assert self._send is not None
        loop = asyncio.get_running_loop()
        while True:
            picked = self._pick()
            if picked is None:
                idle = loop.create_future()
                self._idle.append(idle)
                await idle
                continue
            # Pass the wake-up on: idle coroutines start one after the other while there is room.
            if self.limiter.has_room():
                self._wake_one()
            else:
                self._room_wanted = True
            active, child, ticket = picked
            try:
                await self.pacer.within_turn(loop)
                await self._to_commit(("start", ChildStart(child["id"], active.id, now_iso())))
                finish = await self._execute(active, child, ticket)
            finally:
                ticket.close()
            active.in_flight -= 1
            if finish is not None and not active.cancelled:
                await self._to_commit(("finish", finish))
            if self.settings.per_run_concurrency:
                self._notify()  # a slot under this run's cap opened for idle workers

    async def _to_commit(self, item: Item) -> None:
        """Hand an item to the committer without giving up the loop when there is room (anyio's send()
        always yields first: one more loop turn of dead time per child), waiting only when it is full."""
        assert self._send is not None
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            await self._send.send(item)

    async def _execute(self, active: ActiveRun, child: ClaimedChild, ticket: Reservation) -> ChildFinish | None:
        """None when the run was cancelled meanwhile (the cancellation already closed the child)."""
        with anyio.CancelScope() as scope:
            if active.cancelled:
                scope.cancel()
            active.scopes.add(scope)
            try:
                return await self.executor.execute(active.ctx, child, ticket, active.prepared.pop(child["id"], None))
            except Exception as exc:  # an executor bug must not kill the worker or leave a child open
                log.exception("child %s crashed", child["id"])
                return ChildFinish(
                    child_id=child["id"],
                    run_id=active.id,
                    status="error",
                    error={"message": f"internal error: {exc!r}", "error_code": "internal"},
                    check_id=child.get("check_id"),
                    attempt=int(child.get("attempt") or 0),
                    completed_at=now_iso(),
                )
            finally:
                active.scopes.discard(scope)
        return None

    # -- group commit
    async def _committer(self) -> None:
        assert self._recv is not None
        await group_commit(
            self._recv,
            interval_s=self.settings.commit_interval_ms / 1000,
            limit=max(1, self.settings.commit_batch),
            next_batch=self._next_batch,
            commit=self._commit,
        )

    def _next_batch(self, backlog: deque[Item], limit: int) -> list[Item]:
        return choose_batch(backlog, limit, shared=len(self._runs) > 1, remaining=self._remaining)

    def _remaining(self, run_id: str) -> int:
        """Children not yet finished in this process, about: how soon the run can end."""
        active = self._runs.get(run_id)
        if active is None:
            return 0  # cancelled or failed meanwhile: flush and forget
        return len(active.buffer) + active.in_flight + (0 if active.exhausted else 1 << 20)

    async def _commit(self, batch: list[Item]) -> None:
        async def fail(run_id: str, message: str) -> None:
            await self._fail_run(run_id, message, "internal")

        self.trimmer.note(sum(e.size for kind, f in batch if kind == "finish" for e in f.cache_puts))
        for e in await commit_until_stored(self.store, self.worker_id, batch, fail, self):
            if e["type"] == "run.finished":  # the last child's commit also ended its run
                self._runs.pop(e["run_id"], None)

    # -- ending a run
    async def _finish(self, run_id: str) -> None:
        """A run found with no open child when it starts: no children, or all committed before a restart."""
        await self.store.runs.complete_if_done(run_id)
        self._runs.pop(run_id, None)

    async def _fail_run(self, run_id: str, message: str, code: str, details: dict[str, Any] | None = None) -> None:
        self._stop_feeding(run_id)
        with anyio.CancelScope(shield=True):
            try:
                await self.store.runs.finish(
                    run_id, "error", error={"message": message, "error_code": code, **(details or {})}
                )
            except StorageFull:
                self.storage_full()
            except Exception:
                log.exception("run %s could not be marked as failed", run_id)
