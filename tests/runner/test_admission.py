"""Hot-path and admission details: asyncio-native passes still obey anyio cancel scopes, the limiter
skips waiters cancelled before they resumed, a saturated loop admits only runs with nothing in
flight, and the committer serves the runs closest to their end first in short shared batches."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from orchestrator.engines.base import PassRequest
from orchestrator.runner.commit import SHARED_BATCH, Item
from orchestrator.runner.context import RunContext
from orchestrator.runner.executor import Executor
from orchestrator.runner.fair import FairLimiter
from orchestrator.runner.pages import ActiveRun
from orchestrator.runner.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store.records import ChildFinish, ChildStart, ClaimedChild, RunRecord


async def _settle() -> None:
    for _ in range(10):
        await anyio.lowlevel.checkpoint()


class _Hanging:
    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0

    async def run_pass(self, request: PassRequest) -> Any:
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class _Router:
    def __init__(self, engine: _Hanging) -> None:
        self.engine = engine

    def resolve(self, model: str) -> _Hanging:
        return self.engine


async def test_an_anyio_cancel_scope_cancels_every_pass_in_flight() -> None:
    engine = _Hanging()
    limiter = FairLimiter(8)
    ex = Executor(Settings(), router=_Router(engine), cache=None, limiter=limiter)  # type: ignore[arg-type]
    block = {"id": "b1", "type": "extract", "config": {}}
    with anyio.CancelScope() as scope:

        async def cancel_when_all_started() -> None:
            while engine.started < 3:
                await anyio.lowlevel.checkpoint()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when_all_started)
            await ex._passes("run", block, {}, 3, 0, Counter(), None)
    assert scope.cancelled_caught
    assert engine.cancelled == 3 and limiter.in_use == 0 and limiter.waiting == 0


async def test_release_skips_a_waiter_cancelled_before_it_resumed() -> None:
    limiter = FairLimiter(1)
    await limiter.acquire("holder")
    loop = asyncio.get_running_loop()
    got: list[str] = []

    async def waiter(key: str) -> None:
        async with limiter.slot(key):
            got.append(key)

    doomed = loop.create_task(waiter("doomed"))
    later = loop.create_task(waiter("later"))
    await _settle()
    doomed.cancel()  # its future is cancelled now; its task cleans up only when it next runs
    limiter.release("holder")  # must go past "doomed" to "later"
    with anyio.fail_after(5):
        await later
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert got == ["later"] and limiter.in_use == 0 and limiter.waiting == 0


async def test_a_free_slot_is_taken_without_suspending() -> None:
    limiter = FairLimiter(2)
    coro = limiter.acquire("a")
    with pytest.raises(StopIteration):  # finished on its first step: no await, no future
        coro.send(None)
    assert limiter.in_use == 1


def _scheduler(**settings: Any) -> Scheduler:
    return Scheduler(Settings(**settings), store=None, router=None)  # type: ignore[arg-type]


def _active(
    s: Scheduler, run_id: str, children: int, in_flight: int = 0, exhausted: bool = True, n: int = 1
) -> ActiveRun:
    run = cast(RunRecord, {"id": run_id, "kind": "experiment", "n_consensus": n})
    ctx = RunContext(run=run, blocks={"blk": {"id": "blk", "type": "extract", "config": {}}}, draft_fp="")
    buffer = deque(cast(ClaimedChild, {"id": f"{run_id}-{i}", "block_id": "blk"}) for i in range(children))
    active = ActiveRun(ctx, buffer=buffer, exhausted=exhausted)
    active.in_flight = in_flight
    s._runs[run_id] = active
    s._order.append(run_id)
    return active


@pytest.mark.parametrize(
    ("lag_ms", "limit_ms", "picked"),
    [
        (50.0, 3.0, ["small"]),  # saturated: only the run with nothing in flight starts a child
        (1.0, 3.0, ["small", "big", "big"]),  # not saturated: the run with fewer in flight first
        (50.0, 0.0, ["small", "big", "big"]),  # admission control off
    ],
)
def test_a_saturated_loop_admits_only_runs_with_nothing_in_flight(
    lag_ms: float, limit_ms: float, picked: list[str]
) -> None:
    s = _scheduler(max_loop_lag_ms=limit_ms)
    _active(s, "big", 100, in_flight=40)
    _active(s, "small", 1)
    s.pacer.lag_s = lag_ms / 1000
    got: list[str] = []
    for _ in range(3):
        p = s._pick()
        if p is None:
            break
        got.append(p[0].id)
    assert got == picked
    assert s.pacer.throttled is (picked == ["small"])


def test_children_start_only_while_their_passes_would_find_room() -> None:
    """Each started child reserves its passes' slots: with 10 slots and 5 passes a child, two children
    start and the third waits in the buffer (not in the limiter's queue) until one ends."""
    s = _scheduler(max_concurrency=10)
    _active(s, "run", 5, n=5)
    first, second = s._pick(), s._pick()
    assert first is not None and second is not None
    assert s.limiter.reserved == 10 and s._pick() is None and s._room_wanted
    woken: list[bool] = []
    s._wake_one = lambda: woken.append(True)  # type: ignore[method-assign]
    first[2].take()  # one pass reached the limiter: still no room (it is queued or in use)
    assert s.limiter.reserved == 9 and not woken
    second[2].close()  # the child ended before its passes asked: its slots are free again
    assert woken == [True] and not s._room_wanted
    third = s._pick()
    assert third is not None and third[1]["id"] == "run-2"


def _finish(run_id: str, i: int) -> Item:
    return ("finish", ChildFinish(child_id=f"{run_id}-{i}", run_id=run_id, status="completed", started_at=""))


def test_the_committer_serves_the_runs_closest_to_their_end_first() -> None:
    s = _scheduler()
    _active(s, "big", 1000, exhausted=False)
    _active(s, "small", 0, in_flight=1)
    backlog: deque[Item] = deque()
    for i in range(100):
        backlog.append(("start", ChildStart(f"big-{i}", "big", "")))
        backlog.append(_finish("big", i))
    backlog.append(("start", ChildStart("small-0", "small", "")))
    backlog.append(_finish("small", 0))
    batch = s._next_batch(backlog, 500)
    assert len(batch) == SHARED_BATCH
    assert batch[:2] == [("start", ChildStart("small-0", "small", "")), _finish("small", 0)]
    assert batch[2:4] == [("start", ChildStart("big-0", "big", "")), _finish("big", 0)]  # a run's own order is kept
    assert len(backlog) == 202 - SHARED_BATCH


def test_a_run_alone_commits_in_full_batches() -> None:
    s = _scheduler()
    _active(s, "big", 1000, exhausted=False)
    backlog: deque[Item] = deque(_finish("big", i) for i in range(300))
    assert len(s._next_batch(backlog, 200)) == 200 and len(backlog) == 100
