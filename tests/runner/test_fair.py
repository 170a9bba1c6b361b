"""FairLimiter: slots handed out in turn between runs, never more than the total, cancellation-safe."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from orchestrator.runner.fair import FairLimiter


async def _settle() -> None:
    for _ in range(10):
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        ({"big": 6, "small": 2}, ["big", "small", "big", "small", "big", "big", "big", "big"]),
        ({"a": 2, "b": 2, "c": 2}, ["a", "b", "c", "a", "b", "c"]),
        ({"solo": 3}, ["solo", "solo", "solo"]),
    ],
)
async def test_freed_slots_go_to_the_waiting_runs_in_turn(waiting: dict[str, int], expected: list[str]) -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    gate = anyio.Event()

    async def holder() -> None:
        async with limiter.slot("holder"):
            await gate.wait()

    async def waiter(key: str) -> None:
        async with limiter.slot(key):
            order.append(key)

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await _settle()
        for key, count in waiting.items():  # all of one run queue first, then the next run
            for _ in range(count):
                tg.start_soon(waiter, key)
                await _settle()
        assert limiter.waiting == sum(waiting.values())
        gate.set()
    assert order == expected
    assert limiter.in_use == 0 and limiter.waiting == 0


async def test_never_more_than_the_total_in_use() -> None:
    limiter = FairLimiter(3)
    peak = 0

    async def work(key: str) -> None:
        nonlocal peak
        async with limiter.slot(key):
            peak = max(peak, limiter.in_use)
            await _settle()

    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(work, f"run{i % 4}")
    assert peak == 3 and limiter.in_use == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    limiter = FairLimiter(1)
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        await limiter.acquire("holder")

        async def waiter(key: str) -> None:
            async with limiter.slot(key):
                got.append(key)

        with anyio.CancelScope() as doomed:
            tg.start_soon(lambda: _cancel_after_queued(limiter, doomed))
            await limiter.acquire("cancelled")  # never granted: cancelled while queued
            got.append("not reached")
        tg.start_soon(waiter, "later")
        await _settle()
        limiter.release("holder")
    assert got == ["later"] and limiter.in_use == 0 and limiter.waiting == 0


async def _cancel_after_queued(limiter: FairLimiter, scope: anyio.CancelScope) -> None:
    while limiter.waiting == 0:
        await anyio.lowlevel.checkpoint()
    scope.cancel()


async def test_a_slot_granted_to_a_cancelled_waiter_is_passed_on() -> None:
    limiter = FairLimiter(1)
    got: list[str] = []
    await limiter.acquire("holder")

    async def waiter(key: str) -> None:
        async with limiter.slot(key):
            got.append(key)

    # Native asyncio tasks: Task.cancel() can land after the slot was handed over but before the
    # waiter resumed, the window the limiter must survive.
    loop = asyncio.get_running_loop()
    doomed = loop.create_task(waiter("doomed"))
    await _settle()
    later = loop.create_task(waiter("later"))
    await _settle()
    limiter.release("holder")  # hands the slot to "doomed"...
    doomed.cancel()  # ...which is cancelled before it resumes, and must pass it on
    with anyio.fail_after(5):
        await later
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert got == ["later"] and limiter.in_use == 0 and limiter.waiting == 0


async def test_a_freed_slot_goes_to_the_waiting_run_that_holds_the_fewest() -> None:
    """The big run holds all 4 slots and waits for more; a small run arrives: the slots the big run
    frees go to the small run until it holds as many, then to the one that holds fewer."""
    limiter = FairLimiter(4)
    for _ in range(4):
        await limiter.acquire("big")
    order: list[str] = []

    async def waiter(key: str) -> None:
        await limiter.acquire(key)
        order.append(key)

    async with anyio.create_task_group() as tg:
        for key in ("big", "big", "small", "small"):
            tg.start_soon(waiter, key)
            await _settle()
        for _ in range(3):  # big frees three slots: small takes two (0 < 3, 1 < 2), then big (1 < 2)
            limiter.release("big")
            await _settle()
        assert order == ["small", "small", "big"]
        limiter.release("small")
        await _settle()
    assert order == ["small", "small", "big", "big"]
    assert limiter.queued == 0 and limiter.in_use == 4
