"""Departed subscribers' memory goes back to the system: one trim per burst of departures, rate-limited."""

from __future__ import annotations

import asyncio
import time

import anyio

from orchestrator.feed.hub import Hub
from orchestrator.feed.trim import Trimmer


async def test_a_burst_of_departures_trims_once_then_waits_its_turn() -> None:
    calls: list[float] = []
    trimmed = [asyncio.Event(), asyncio.Event()]

    def trim() -> None:
        calls.append(time.monotonic())
        trimmed[len(calls) - 1].set()

    hub = Hub()
    hub.trimmer = Trimmer(trim=trim, every_s=0.2)
    for sub in [hub.subscribe(None) for _ in range(50)]:
        hub.unsubscribe(sub)
    with anyio.fail_after(5):
        await trimmed[0].wait()
    assert len(calls) == 1, "one trim for the whole burst"
    hub.unsubscribe(hub.subscribe(None))  # another departure: trimmed again, but not before every_s
    with anyio.fail_after(5):
        await trimmed[1].wait()
    assert calls[1] - calls[0] >= 0.2


def test_without_a_running_loop_it_does_nothing() -> None:
    trimmer = Trimmer(trim=lambda: 1 / 0)
    trimmer.departed()  # a tool or a test without a loop: nothing scheduled, nothing raised
    assert trimmer.trims == 0
