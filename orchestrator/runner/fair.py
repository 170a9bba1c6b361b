"""One pool of pass slots shared by every run, handed out round-robin between the runs that wait.

A FIFO limiter would make a 5-check run's passes queue behind every pass a 100,000-child run has
already asked for; here a freed slot goes to the next *run* in turn, so a small run waits for at
most one slot per other waiting run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass(eq=False)
class _Waiter:
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class FairLimiter:
    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.in_use = 0
        self._queues: dict[str, deque[_Waiter]] = {}
        self._turns: deque[str] = deque()  # keys with waiters, in the order they will be served

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, key: str) -> None:
        if self.in_use < self.total and not self._turns:
            self.in_use += 1
            return
        waiter = _Waiter()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        queue.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release()  # the slot reached us as we were cancelled: pass it on
            else:
                queue.remove(waiter)
                if not queue:
                    del self._queues[key]
                    self._turns.remove(key)
            raise

    def release(self) -> None:
        """Hand the slot straight to the next run in turn (in_use unchanged), or free it."""
        if not self._turns:
            self.in_use -= 1
            return
        key = self._turns.popleft()
        queue = self._queues[key]
        waiter = queue.popleft()
        if queue:
            self._turns.append(key)
        else:
            del self._queues[key]
        waiter.granted = True
        waiter.event.set()
