"""One pool of pass slots shared by every run, handed out between the runs that wait, fewest held first.

A FIFO limiter would make a 5-check run's passes queue behind every pass a 100,000-child run has
already asked for; here a freed slot goes to the waiting *run* that holds the fewest slots (in turn
among equals), so a small run gets the slots that free up until it holds as many as the big one.

It also keeps the scheduler from starting more children than its slots can serve: a started child
*reserves* the slots its passes will ask for, and the scheduler starts another only while slots in use,
queued and reserved leave room (`has_room`). Else every pool coroutine would hold a child whose passes
queue here: work that another worker, or a run created a moment later, could have had at once.

Acquired once per pass, so it is on the hottest path: plain asyncio futures, no anyio/sniffio call
per acquire (an anyio.Event looks the backend up on every construction), and no await at all when a
slot is free and nobody waits. anyio cancel scopes still reach a waiter: on asyncio they cancel the
task, which cancels the future it awaits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
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
        self._limiter.release(self._key)


class Reservation:
    """The slots a started child's passes will ask for, counted as demand until each pass first asks
    (`take`) or the child ends (`close`)."""

    __slots__ = ("_limiter", "left")

    def __init__(self, limiter: FairLimiter, n: int) -> None:
        self._limiter = limiter
        self.left = max(0, n)
        limiter.reserved += self.left

    def take(self) -> None:
        if self.left:
            self.left -= 1
            self._limiter.reserved -= 1

    def close(self) -> None:
        if self.left:
            self._limiter.reserved -= self.left
            self.left = 0
            self._limiter.room()


class FairLimiter:
    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.in_use = 0
        self.queued = 0  # waiters not yet served (cancelled ones leave at once)
        self.reserved = 0  # slots that started children will ask for (Reservation)
        self.on_room: Callable[[], None] | None = None  # a slot became free with nobody queued for it
        self._held: dict[str, int] = {}  # slots in use per key
        # Keys with waiters, in the order they will be served among equals (dicts keep insertion order).
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def waiting(self) -> int:
        return sum(1 for q in self._queues.values() for f in q if not f.done())

    def has_room(self) -> bool:
        """Another child may start: its passes would find slots that nobody holds, waits for or reserved."""
        return self.in_use + self.queued + self.reserved < self.total

    def reserve(self, n: int) -> Reservation:
        return Reservation(self, n)

    def room(self) -> None:
        if self.on_room is not None and self.has_room():
            self.on_room()

    def slot(self, key: str) -> _Slot:
        return _Slot(self, key)

    async def acquire(self, key: str) -> None:
        if self.in_use < self.total and not self._queues:
            self.in_use += 1
            self._held[key] = self._held.get(key, 0) + 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(fut)
        self.queued += 1
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(key)  # the slot reached us as we were cancelled: pass it on
            else:
                fut.cancel()
                self._forget(key, fut)
            raise

    def _forget(self, key: str, fut: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return  # _hand_over() already dropped it (it skips cancelled futures)
        try:
            queue.remove(fut)
        except ValueError:
            return
        self.queued -= 1
        if not queue:
            del self._queues[key]
        self.room()

    def resize(self, total: int) -> None:
        """A new number of slots (this worker's share changed): more slots go to waiters at once; fewer
        take effect as passes in flight finish."""
        self.total = max(1, total)
        while self.in_use < self.total and self._hand_over():
            self.in_use += 1
        self.room()

    def release(self, key: str) -> None:
        """Hand the slot straight to the next waiter (in_use unchanged), or free it."""
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)
        if self._hand_over():
            return
        self.in_use -= 1
        if self.on_room is not None and self.in_use + self.queued + self.reserved < self.total:
            self.on_room()

    def _hand_over(self) -> bool:
        """Give a slot to the waiting run that holds the fewest (the first of equals in turn, which then
        goes to the back): a small run beside a big one gets the slots that free up until it holds as
        many. False when nobody waits."""
        queues = self._queues
        while queues:
            if len(queues) == 1:
                key = next(iter(queues))
            else:
                held = self._held
                key = min(queues, key=lambda k: held.get(k, 0))
            queue = queues.pop(key)
            fut = queue.popleft()
            if queue:
                queues[key] = queue  # to the back of the turn
            self.queued -= 1
            if not fut.done():  # a waiter cancelled before its task resumed is skipped
                self._held[key] = self._held.get(key, 0) + 1
                fut.set_result(None)
                return True
        return False
