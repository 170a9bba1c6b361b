"""In-process fan-out of committed feed events. Publishing never blocks and never waits on a subscriber.

Published events go into bounded rings shared by every reader (one ring across all runs, and one per
run that has per-run subscribers); a subscriber is a position in a ring. A reader that falls more than
a ring behind is *lagged*: what it missed is gone from memory and it resynchronises from the store.
So publishing costs O(events + waiting readers), not O(events x readers), and a stuck reader holds no
memory of its own. `progress` events are coalesced to the latest when a reader reads (feed/stream.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Any, Generic, TypeVar

import anyio

Event = dict[str, Any]
K = TypeVar("K")
V = TypeVar("V")


class Fifo(Generic[K, V]):
    """A bounded cache that forgets the oldest insertion (events are read roughly in order)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        while len(self._data) > self.size:
            del self._data[next(iter(self._data))]

    def __len__(self) -> int:
        return len(self._data)


class Ring:
    """A bounded log with absolute positions (0, 1, 2, …), so a reader can tell it fell out of it."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: list[Event] = []
        self.end = 0

    @property
    def start(self) -> int:
        return max(0, self.end - self.size)

    def append(self, event: Event) -> None:
        if len(self._items) < self.size:
            self._items.append(event)
        else:
            self._items[self.end % self.size] = event
        self.end += 1

    def read(self, pos: int, limit: int) -> list[Event]:
        """Events at positions [pos, pos + limit), clipped to what the ring holds."""
        pos = max(pos, self.start)
        stop = min(self.end, pos + limit)
        if pos >= stop:
            return []
        if len(self._items) < self.size:
            return self._items[pos:stop]
        i, j = pos % self.size, stop % self.size
        return self._items[i:j] if i < j else self._items[i:] + self._items[:j]

    def __iter__(self) -> Any:
        return iter(self.read(self.start, self.size))


class Subscription:
    """One reader's position in a ring: every run (run_id None) or one run."""

    def __init__(self, hub: Hub, run_id: str | None, ring: Ring) -> None:
        self.hub = hub
        self.run_id = run_id
        self.ring = ring
        self.pos = ring.end
        self.lag_count = 0
        self.closed = False
        self.reason: str | None = None
        self._waiting = False
        self._wakeup: anyio.Event | None = None

    @property
    def lagged(self) -> bool:
        return self.pos < self.ring.start

    @property
    def pending(self) -> int:
        """Events published but not yet read, as far as memory holds them (never more than the ring)."""
        return self.ring.end - max(self.pos, self.ring.start)

    def read(self, limit: int) -> list[Event]:
        events = self.ring.read(self.pos, limit)
        self.pos += len(events)
        return events

    def rearm(self) -> None:
        """Skip to the newest event; the reader replays what it missed from history or the store."""
        if self.lagged:
            self.lag_count += 1
        self.pos = self.ring.end

    def notify(self) -> None:
        if self._waiting and self._wakeup is not None:
            self._waiting = False
            self._wakeup.set()

    def close(self, reason: str = "shutdown") -> None:
        if not self.closed:
            self.closed = True
            self.reason = reason
        self._waiting = True
        self.notify()

    async def wait(self) -> None:
        """Wait until there is something to read (or the reader lagged), or the subscription closed."""
        if self.pos < self.ring.end or self.closed:
            return
        self._wakeup = anyio.Event()
        self._waiting = True
        await self._wakeup.wait()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.unsubscribe(self)


class Hub:
    def __init__(self, capacity: int = 1024, history: int | None = None) -> None:
        self.capacity = capacity
        self.published = 0
        self.closing = False
        self.log = Ring(history if history is not None else 4 * capacity)
        self._rings: dict[str, Ring] = {}
        self._by_run: dict[str | None, set[Subscription]] = {}
        self.encoded: Fifo[int, bytes] = Fifo(max(256, 2 * capacity))
        self.rows: Fifo[str, dict[str, Any]] = Fifo(256)
        self._closed: anyio.Event | None = None

    @property
    def closed(self) -> anyio.Event:
        """Set by close_all(); created lazily because the hub is built before the event loop runs."""
        if self._closed is None:
            self._closed = anyio.Event()
            if self.closing:
                self._closed.set()
        return self._closed

    def subscribe(self, run_id: str | None) -> Subscription:
        ring = self.log if run_id is None else self._rings.get(run_id)
        if ring is None:
            ring = self._rings[str(run_id)] = Ring(self.capacity)
        sub = Subscription(self, run_id, ring)
        if self.closing:
            sub.close()
        self._by_run.setdefault(run_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._by_run.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_run[sub.run_id]
                if sub.run_id is not None:
                    self._rings.pop(sub.run_id, None)
        sub.closed = True

    def publish(self, events: Iterable[Event]) -> None:
        touched: set[str] = set()
        for event in events:
            self.published += 1
            self.log.append(event)
            ring = self._rings.get(event["run_id"])
            if ring is not None:
                ring.append(event)
                touched.add(event["run_id"])
        for sub in self._by_run.get(None, ()):
            sub.notify()
        for run_id in touched:
            for sub in self._by_run.get(run_id, ()):
                sub.notify()

    def close_all(self, reason: str = "shutdown") -> None:
        """Every reader sends a last event and ends; later subscriptions are closed at once."""
        self.closing = True
        if self._closed is not None:
            self._closed.set()
        for subs in list(self._by_run.values()):
            for sub in list(subs):
                sub.close(reason)

    def history_after(self, cursor: int, run_id: str | None) -> list[Event] | None:
        """Published events after `cursor` (seq of run_id, or gseq) if memory still holds all of them.

        None when the history does not reach back to cursor + 1: the caller reads the store instead.
        """
        key = "gseq" if run_id is None else "seq"
        rings = [self.log] if run_id is None else [r for r in (self._rings.get(run_id), self.log) if r is not None]
        for ring in rings:
            found = [e for e in ring if (run_id is None or e["run_id"] == run_id) and e[key] > cursor]
            if found and found[0][key] == cursor + 1 and all(b[key] == a[key] + 1 for a, b in pairwise(found)):
                return found
        return None

    def subscriptions(self) -> list[Subscription]:
        return [s for subs in self._by_run.values() for s in subs]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_run.values())
