"""In-process fan-out of committed feed events. Publishing never blocks and never waits on a subscriber.

Published events go into bounded rings shared by every reader (one ring across all runs, and one per
run that has per-run subscribers); a subscriber is a position in a ring. A reader that falls more than
a ring behind is *lagged*: what it missed is gone from memory and it resynchronises from the store.
So publishing costs O(events + waiting readers), not O(events x readers), and a stuck reader holds no
memory of its own. `progress` events are coalesced to the latest when a reader reads (feed/stream.py).

Progress mode (watchers that only need state) reads separate rings that the hub fills itself: the newest
event of each run that changed, at most once per `progress_interval_s` for all runs together (one timer,
not one per reader), as a `progress` entry carrying that event's seq/gseq and run state without the
child; `run.finished` goes through at once. Each entry is built once and shared by every progress reader.

Every published event gets `ts` (epoch seconds) at publish, which follows its commit immediately.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Generic, Literal, TypeVar, cast

import anyio

from orchestrator.feed.trim import Trimmer
from orchestrator.store.records import FeedEvent

Event = dict[str, Any]
Mode = Literal["all", "progress"]
MODES: tuple[Mode, ...] = ("all", "progress")
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

    def at(self, pos: int) -> Event:
        return self._items[pos % self.size] if len(self._items) == self.size else self._items[pos]

    def find_after(self, key: str, cursor: int) -> int:
        """The first position whose event[key] > cursor, by bisection (keys ascend in a ring)."""
        lo, hi = self.start, self.end
        while lo < hi:
            mid = (lo + hi) // 2
            if self.at(mid)[key] > cursor:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def __iter__(self) -> Any:
        return iter(self.read(self.start, self.size))


class Subscription:
    """One reader's position in a ring: every run (run_id None) or one run."""

    def __init__(self, hub: Hub, run_id: str | None, ring: Ring, mode: Mode = "all") -> None:
        self.hub = hub
        self.run_id = run_id
        self.mode: Mode = mode
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

    def read_slices(self, limit: int) -> list[Event]:
        """Like read(), but ending where a publish slice ends (unless one slice alone is longer than
        `limit`): readers in step then read the same ranges, and share one batch frame per range."""
        events = self.ring.read(self.pos, limit)
        end = self.pos + len(events)
        if events and end < self.ring.end and self.ring.at(end).get("_slice") == events[-1].get("_slice"):
            cut = len(events)
            while cut > 0 and events[cut - 1].get("_slice") == events[-1].get("_slice"):
                cut -= 1
            if cut:
                events = events[:cut]
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
    def __init__(self, capacity: int = 1024, history: int | None = None, progress_interval_s: float = 0.1) -> None:
        self.capacity = capacity
        self.published = 0
        self.closing = False
        self.progress_interval_s = progress_interval_s
        size = history if history is not None else 4 * capacity
        self.logs: dict[Mode, Ring] = {"all": Ring(size), "progress": Ring(size)}
        self._rings: dict[tuple[Mode, str], Ring] = {}
        self._by_run: dict[tuple[Mode, str | None], set[Subscription]] = {}
        self.encoded: Fifo[int, bytes] = Fifo(max(256, 2 * capacity))
        self.rows: Fifo[str, Mapping[str, Any]] = Fifo(256)  # runs' immutable columns, by id
        self.batches: Fifo[tuple[Any, ...], Any] = Fifo(64)  # batch frames by (scope, range): feed/stream.py
        self.slices = 0  # publish calls so far: the events of one call form a slice
        self.trimmer = Trimmer()  # departed subscribers' buffers go back to the system
        # Aligned pages of stored events replayed by lagging readers, shared by all of them (stream.py).
        self.pages: Fifo[tuple[str | None, int], list[Event]] = Fifo(8)
        self._closed: anyio.Event | None = None
        self._pending: dict[str, Event] = {}  # run_id → newest event not yet in the progress rings
        self._flush: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_flush = 0.0

    @property
    def log(self) -> Ring:
        return self.logs["all"]

    @property
    def closed(self) -> anyio.Event:
        """Set by close_all(); created lazily because the hub is built before the event loop runs."""
        if self._closed is None:
            self._closed = anyio.Event()
            if self.closing:
                self._closed.set()
        return self._closed

    def subscribe(self, run_id: str | None, mode: Mode = "all") -> Subscription:
        ring = self.logs[mode] if run_id is None else self._rings.get((mode, run_id))
        if ring is None:
            ring = self._rings[(mode, str(run_id))] = Ring(self.capacity)
        sub = Subscription(self, run_id, ring, mode)
        if self.closing:
            sub.close()
        self._by_run.setdefault((mode, run_id), set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        key = (sub.mode, sub.run_id)
        subs = self._by_run.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_run[key]
                if sub.run_id is not None:
                    self._rings.pop((sub.mode, sub.run_id), None)
        sub.closed = True
        self.trimmer.departed()

    def publish(self, events: Iterable[FeedEvent] | Iterable[Event]) -> None:
        """The broker of the API process: committed events, in commit order as far as the caller knows."""
        touched: set[str] = set()
        finished: list[Event] = []
        now = time.time()
        self.slices += 1
        for committed in events:
            event = cast(Event, committed)  # the rings add memo keys (encoded frames) to the same dict
            event["_slice"] = self.slices
            self.published += 1
            event.setdefault("ts", now)
            run_id = event["run_id"]
            self.log.append(event)
            ring = self._rings.get(("all", run_id))
            if ring is not None:
                ring.append(event)
                touched.add(run_id)
            if event["type"] == "run.finished":
                self._pending.pop(run_id, None)  # it carries the final state: nothing to coalesce
                finished.append(event)
            else:
                self._pending[run_id] = event
        self._notify("all", touched)
        if finished:
            self._append_progress(finished)
        if self._pending:
            self._schedule()

    def _notify(self, mode: Mode, run_ids: Iterable[str]) -> None:
        for sub in self._by_run.get((mode, None), ()):
            sub.notify()
        for run_id in run_ids:
            for sub in self._by_run.get((mode, run_id), ()):
                sub.notify()

    def _append_progress(self, entries: list[Event]) -> None:
        touched: set[str] = set()
        for entry in entries:
            self.logs["progress"].append(entry)
            ring = self._rings.get(("progress", entry["run_id"]))
            if ring is not None:
                ring.append(entry)
                touched.add(entry["run_id"])
        self._notify("progress", touched)

    def _schedule(self) -> None:
        if self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): nothing to wait with
            self.flush_progress()
            return
        delay = self._last_flush + self.progress_interval_s - time.monotonic()
        self._flush = loop.call_later(delay, self.flush_progress) if delay > 0 else loop.call_soon(self.flush_progress)

    def flush_progress(self) -> None:
        """Move the newest pending state of each run into the progress rings, as one `progress` entry each."""
        self._flush = None
        self._last_flush = time.monotonic()
        pending, self._pending = self._pending, {}
        entries = [
            {
                "gseq": ev["gseq"],
                "run_id": ev["run_id"],
                "seq": ev["seq"],
                "type": "progress",
                "body": {"run": (ev.get("body") or {}).get("run") or {}},
                "ts": ev["ts"],
                "_progress": True,  # built here: its encoding must not be cached under the event's gseq
            }
            for ev in sorted(pending.values(), key=lambda e: int(e["gseq"]))
        ]
        if entries:
            self._append_progress(entries)

    def close_all(self, reason: str = "shutdown") -> None:
        """Every reader sends a last event and ends; later subscriptions are closed at once."""
        self.closing = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._closed is not None:
            self._closed.set()
        for subs in list(self._by_run.values()):
            for sub in list(subs):
                sub.close(reason)

    def history_after(self, cursor: int, run_id: str | None, limit: int | None = None) -> list[Event] | None:
        """Up to `limit` published events after `cursor` (seq of run_id, or gseq) if memory holds them all.

        None when the history does not reach back to cursor + 1: the caller reads the store instead.
        Found by bisection and sliced: a replaying reader never copies or scans a whole ring.
        """
        limit = limit or self.capacity
        if run_id is None:
            rings = [(self.log, "gseq")]
        else:
            own = self._rings.get(("all", run_id))
            rings = [(own, "seq")] if own is not None else []
        for ring, key in rings:
            if ring.end == ring.start:
                continue
            pos = ring.find_after(key, cursor)
            found = ring.read(pos, limit)
            if found and all(e[key] == cursor + 1 + i for i, e in enumerate(found)):
                return found
        if run_id is not None:  # the run's events in the shared log, if contiguous
            found = []
            log = self.log
            for ev in (log.at(p) for p in range(log.start, log.end)):
                if ev["run_id"] == run_id and ev["seq"] > cursor:
                    if ev["seq"] != cursor + 1 + len(found):
                        return None
                    found.append(ev)
                    if len(found) >= limit:
                        break
            return found or None
        return None

    def subscriptions(self) -> list[Subscription]:
        return [s for subs in self._by_run.values() for s in subs]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_run.values())
