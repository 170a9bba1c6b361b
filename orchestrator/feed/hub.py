"""In-process fan-out of committed feed events. Publishing never blocks the runner."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import anyio

Event = dict[str, Any]


class Subscription:
    """A bounded buffer of events for one subscriber (one run, or every run when run_id is None).

    `progress` events coalesce to the latest per run; when a `child.finished` would overflow the
    buffer the subscription is marked lagged and the reader must resynchronise from the store.
    """

    def __init__(self, hub: Hub, run_id: str | None, capacity: int) -> None:
        self.hub = hub
        self.run_id = run_id
        self.capacity = capacity
        self.buffer: deque[Event] = deque()
        self.lagged = False
        self.closed = False
        self._wakeup = anyio.Event()

    def offer(self, event: Event) -> None:
        if self.closed or self.lagged:
            return
        if (
            event["type"] == "progress"
            and self.buffer
            and self.buffer[-1]["type"] == "progress"
            and self.buffer[-1]["run_id"] == event["run_id"]
        ):
            self.buffer[-1] = event
        elif len(self.buffer) >= self.capacity:
            self.lagged = True
            self.buffer.clear()
        else:
            self.buffer.append(event)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def wait(self) -> None:
        """Wait until there is something to read, the subscription lagged, or it closed."""
        if self.buffer or self.lagged or self.closed:
            return
        self._wakeup = anyio.Event()
        await self._wakeup.wait()

    def drain(self) -> list[Event]:
        items = list(self.buffer)
        self.buffer.clear()
        return items

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.unsubscribe(self)


class Hub:
    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._by_run: dict[str | None, set[Subscription]] = {}
        self.published = 0

    def subscribe(self, run_id: str | None) -> Subscription:
        sub = Subscription(self, run_id, self.capacity)
        self._by_run.setdefault(run_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._by_run.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_run[sub.run_id]
        sub.closed = True

    def publish(self, events: Iterable[Event]) -> None:
        everyone = self._by_run.get(None, ())
        for event in events:
            self.published += 1
            for sub in self._by_run.get(event["run_id"], ()):
                sub.offer(event)
            for sub in everyone:
                sub.offer(event)

    def close_all(self) -> None:
        for subs in list(self._by_run.values()):
            for sub in list(subs):
                sub.close()

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_run.values())
