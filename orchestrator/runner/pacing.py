"""How long a worker's event-loop turns are, and keeping them short.

Every step of every child — a small run's too — waits one loop turn in the ready queue, so a small
run's chain of steps (its claim, each child, its commit, the wake-ups between) is as slow as the
turns are long. Two measures keep them short: a lag monitor (a short sleep's overshoot measures a
turn) that lets admission hold back runs that already have children in flight, and a budget of
child work per turn, past which coroutines yield to the next turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from orchestrator.store import Store

LAG_PROBE_S = 0.005  # the lag monitor sleeps this long and records how late it wakes up
# The most child work one loop turn does. A child on an engine that never waits runs start to end in
# one step (~0.1–0.3 ms): 64 of them made a 10–15 ms turn. Past the budget, coroutines yield to the
# next turn, after the loop has polled its sockets and run what they woke.
TURN_BUDGET_S = 0.002


class Pacer:
    def __init__(self, max_lag_ms: float, store: Store) -> None:
        self.max_lag_ms = max_lag_ms
        self.store = store
        self.lag_s = 0.0  # last overshoot of the lag monitor's sleep: how long one loop turn takes
        self.throttled = False  # admission held a run back for lag: wake the workers when lag drops
        self._turn_t0 = 0.0  # when the current loop turn's child work began (see TURN_BUDGET_S)
        self._turn_reset = False  # a reset of _turn_t0 is scheduled for the next turn

    @property
    def saturated(self) -> bool:
        """The event loop is late: one turn takes longer than `max_loop_lag_ms`. Even for a run
        alone: the next run's creation (its claim, preparation, first writes) goes through the same
        loop, and finds it short only if it was kept short before that run existed."""
        return self.max_lag_ms > 0 and self.lag_s * 1000 > self.max_lag_ms

    async def monitor(
        self, busy: Callable[[], bool], until_busy: Callable[[], Awaitable[object]], unthrottled: Callable[[], None]
    ) -> None:
        """Measure the loop's lag while `busy()`; sleep in `until_busy()` otherwise (no wake-ups while
        idle); call `unthrottled()` when a run held back for lag may start children again."""
        loop = asyncio.get_running_loop()
        while True:
            if not busy():
                self.lag_s = 0.0
                await until_busy()
                continue
            t0 = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.lag_s = max(0.0, loop.time() - t0 - LAG_PROBE_S)
            if self.throttled and not self.saturated:
                self.throttled = False
                unthrottled()

    async def within_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """Before a child's work: wait for the next loop turn when this one has done TURN_BUDGET_S of
        child work already (the first coroutine past the budget schedules the reset of the turn's
        clock, which then runs in the next turn before the coroutines that yielded: the ready queue is
        FIFO); and wait while this process's write transaction holds the store's lock (measured: a
        group commit held it 6 ms at the median and 25 ms at p90 while it fought the loop for the GIL,
        2 and 6 ms when the loop stands aside; every writer of every process queues on that lock)."""
        while time.perf_counter() - self._turn_t0 > TURN_BUDGET_S:
            if not self._turn_reset:
                self._turn_reset = True
                loop.call_soon(self._new_turn)
            await asyncio.sleep(0)
        if self.store.writing:
            await self.store.until_written()

    def _new_turn(self) -> None:
        self._turn_reset = False
        self._turn_t0 = time.perf_counter()
