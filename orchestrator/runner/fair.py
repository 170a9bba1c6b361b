"""One pool of pass slots shared by every run, handed out round-robin between the runs that wait.

A FIFO limiter would make a 5-check run's passes queue behind every pass a 100,000-child run has
already asked for; here a freed slot goes to the next *run* in turn, so a small run waits for at
most one slot per other waiting run.

Acquired once per pass, so it is on the hottest path: plain asyncio futures, no anyio/sniffio call
per acquire (an anyio.Event looks the backend up on every construction), and no await at all when a
slot is free and nobody waits. anyio cancel scopes still reach a waiter: on asyncio they cancel the
task, which cancels the future it awaits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class _Slot:
    """`async with limiter.slot(key)`: a plain class, cheaper than an asynccontextmanager generator."""

    __slots__ = ("_key", "_limiter")

    def __init__(self, limiter: FairLimiter, key: str) -> None:
        self._limiter = limiter
        self._key = key

    async def __aenter__(self) -> None:
        await self._limiter.acquire(self._key)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._limiter.release()


class FairLimiter:
    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.in_use = 0
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._turns: deque[str] = deque()  # keys with waiters, in the order they will be served

    @property
    def waiting(self) -> int:
        return sum(1 for q in self._queues.values() for f in q if not f.done())

    def slot(self, key: str) -> _Slot:
        return _Slot(self, key)

    async def acquire(self, key: str) -> None:
        if self.in_use < self.total and not self._turns:
            self.in_use += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        queue.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot reached us as we were cancelled: pass it on
            else:
                fut.cancel()
                self._forget(key, fut)
            raise

    def _forget(self, key: str, fut: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return  # release() already dropped it (it skips cancelled futures)
        try:
            queue.remove(fut)
        except ValueError:
            return
        if not queue:
            del self._queues[key]
            self._turns.remove(key)

    def resize(self, total: int) -> None:
        """A new number of slots (this worker's share changed): more slots go to waiters at once; fewer
        take effect as passes in flight finish."""
        self.total = max(1, total)
        while self.in_use < self.total and self._turns:
            self.in_use += 1
            self.release()

    def release(self) -> None:
        """Hand the slot straight to the next run in turn (in_use unchanged), or free it."""
        while self._turns:
            key = self._turns.popleft()
            queue = self._queues[key]
            fut = queue.popleft()
            if queue:
                self._turns.append(key)
            else:
                del self._queues[key]
            if not fut.done():  # a waiter cancelled before its task resumed is skipped
                fut.set_result(None)
                return
        self.in_use -= 1
