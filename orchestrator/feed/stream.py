"""One subscriber's feed, independent of the transport: snapshot or replay first, then live, gapless.

The order that makes it exact: register the hub subscription FIRST, then read the snapshot (or replay
from memory/SQLite), then deliver live events from the subscription, skipping any whose cursor was already
delivered. Every event committed before the subscription existed is in the snapshot or the replay; every
later one is in the subscription's ring. A reader that lagged (fell out of the ring) skips to the ring's
end and replays from its last cursor (skipping before each read, so nothing falls between the two).

Per-run feeds count with the run's `seq`, the all-runs feed with `gseq`. Frames come in batches (one
batch per wake-up, or per page of a replay) so a transport can write a batch at once; an empty batch
means "idle for ping_s: send a keep-alive".
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import anyio
import orjson

from orchestrator.errors import NotFound
from orchestrator.feed.hub import Event, Hub, Subscription
from orchestrator.store import Store, feed_reads

TERMINAL = frozenset({"completed", "error", "cancelled"})


class Frame(NamedTuple):
    cursor: int | None  # the SSE id: seq (per run) or gseq (all runs); None for control events
    type: str
    data: bytes  # the event as JSON


class Renderer(Protocol):
    def run(self, row: dict[str, Any]) -> dict[str, Any]: ...

    def child(self, child: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Feed:
    store: Store
    hub: Hub
    render: Renderer
    ping_s: float = 15.0
    page: int = 500
    batch: int = 256  # events per write: bounds what one stuck socket can hold in its transport buffer
    snapshot_recent: int = 20
    snapshot_limit: int = 500

    async def static_row(self, run_id: str) -> dict[str, Any]:
        """The run's immutable columns (cached); an event's body supplies the state on top."""
        row = self.hub.rows.get(run_id)
        if row is None:
            try:
                row = await self.store.runs.get(run_id)
            except NotFound:  # the run was deleted after the event: render what the event knows
                kind = "experiment" if run_id.startswith("exprun_") else "eval"
                row = {"id": run_id, "kind": kind, "workflow_id": None, "workflow_version_id": None}
                row |= {"workflow_name": None, "experiment_id": None, "block_id": None, "block_type": None}
                row |= {"n_consensus": None, "fingerprints": {}, "created_at": None}
            self.hub.rows.put(run_id, row)
        return row

    async def encode(self, event: Event) -> bytes:
        """The wire JSON of a stored event, encoded once and shared by every subscriber (LRU)."""
        cached = self.hub.encoded.get(event["gseq"])
        if cached is not None:
            return cached
        body = event["body"]
        out: dict[str, Any] = {
            "seq": event["seq"],
            "gseq": event["gseq"],
            "run_id": event["run_id"],
            "type": event["type"],
            "run": self.render.run({**await self.static_row(event["run_id"]), **body["run"]}),
        }
        if body.get("child") is not None:
            out["child"] = self.render.child(body["child"])
        # A compact copy: orjson's result keeps slack behind it, and this one is kept a while.
        data = bytes(memoryview(orjson.dumps(out)))
        self.hub.encoded.put(event["gseq"], data)
        return data

    def stream(self, run_id: str | None, after: int | None) -> AsyncGenerator[list[Frame], None]:
        return _Reader(self, run_id, after).frames()


def _control(type_: str, run_id: str | None, **extra: Any) -> Frame:
    return Frame(None, type_, orjson.dumps({"seq": None, "gseq": None, "run_id": run_id, "type": type_, **extra}))


def coalesce(events: list[Event]) -> list[Event]:
    """Drop a `progress` event when a later event of the same run follows in the same page."""
    later: set[str] = set()
    kept: list[Event] = []
    for ev in reversed(events):
        if ev["type"] == "progress" and ev["run_id"] in later:
            continue
        later.add(ev["run_id"])
        kept.append(ev)
    kept.reverse()
    return kept


class _Reader:
    def __init__(self, feed: Feed, run_id: str | None, after: int | None) -> None:
        self.feed = feed
        self.run_id = run_id
        self.after = after
        self.key = "seq" if run_id is not None else "gseq"
        self.last = 0
        self.finished = False

    async def frames(self) -> AsyncGenerator[list[Frame], None]:
        with self.feed.hub.subscribe(self.run_id) as sub:
            if sub.closed:
                yield [self._shutdown(sub)]
                return
            first, replay = await self._start()
            if first:
                yield first
            if self.finished:
                return
            while True:
                if replay:
                    async for page in self._replay(sub):
                        yield page
                    if self.finished:
                        return
                    replay = False
                    tail = await self._finished_if_over()
                    if tail:
                        yield tail
                        return
                if sub.closed:
                    yield [self._shutdown(sub)]
                    return
                if sub.lagged:
                    yield [_control("lagged", self.run_id, after=self.last, reason="subscriber fell behind")]
                    sub.rearm()
                    replay = True
                    continue
                events = sub.read(self.feed.batch)
                if not events:
                    with anyio.move_on_after(self.feed.ping_s) as scope:
                        await sub.wait()
                    if scope.cancelled_caught:
                        yield []
                    continue
                batch = await self._deliver(coalesce(await self._fill_gaps(events)))
                if batch:
                    yield batch
                if self.finished:
                    return

    async def _fill_gaps(self, events: list[Event]) -> list[Event]:
        """Live events after the cursor, with any gap (an out-of-order publish) filled from the store."""
        seen = self.last
        out: list[Event] = []
        for ev in events:
            cursor = int(ev[self.key])
            if cursor <= seen:
                continue
            if cursor > seen + 1:
                out += [e for e in await self._read(seen, cursor - seen - 1) if e[self.key] < cursor]
            out.append(ev)
            seen = cursor
        return out

    async def _start(self) -> tuple[list[Frame], bool]:
        """The opening frames, and whether a replay from `self.last` must follow."""
        store = self.feed.store
        out: list[Frame] = []
        if self.run_id is None:
            last = await store.events.last_gseq()
            oldest = await feed_reads.first_gseq(store.db)
        else:
            row = await store.runs.get(self.run_id)
            last = int(row["last_seq"])
            oldest = await store.events.first_seq(self.run_id)
        floor = (oldest if oldest is not None else last + 1) - 1
        if self.after is not None:
            if floor <= self.after <= last:
                self.last = self.after
                return out, True
            why = "is newer than the feed" if self.after > last else "is older than the events kept"
            out.append(_control("reset", self.run_id, after=self.after, reason=f"cursor {self.after} {why}"))
        if self.run_id is None:
            rows = await feed_reads.snapshot_runs(store.db, self.feed.snapshot_recent, self.feed.snapshot_limit)
            runs = [self.feed.render.run(r) for r in rows]
            snap = {"seq": None, "gseq": last, "run_id": None, "type": "snapshot", "runs": runs}
            out.append(Frame(last, "snapshot", orjson.dumps(snap)))
            self.last = last
            return out, False
        out.append(await self._snapshot(row))
        if row["status"] in TERMINAL:
            out.append(await self._finished(row))
        return out, False

    async def _snapshot(self, row: dict[str, Any]) -> Frame:
        assert self.run_id is not None
        seq = int(row["last_seq"])
        gseq = await feed_reads.gseq_of(self.feed.store.db, self.run_id, seq)
        self.feed.hub.rows.put(self.run_id, row)
        body = {"seq": seq, "gseq": gseq, "run_id": self.run_id, "type": "snapshot", "run": self.feed.render.run(row)}
        self.last = seq
        return Frame(seq, "snapshot", orjson.dumps(body))

    async def _finished(self, row: dict[str, Any]) -> Frame:
        """A terminal run seen at (re)subscription: its state as a closing `run.finished`."""
        assert self.run_id is not None
        seq = int(row["last_seq"])
        gseq = await feed_reads.gseq_of(self.feed.store.db, self.run_id, seq)
        body = {"seq": seq, "gseq": gseq, "run_id": self.run_id, "type": "run.finished"}
        self.finished = True
        self.last = seq
        return Frame(seq, "run.finished", orjson.dumps({**body, "run": self.feed.render.run(row)}))

    async def _finished_if_over(self) -> list[Frame]:
        if self.run_id is None:
            return []
        try:
            row = await self.feed.store.runs.get(self.run_id)
        except NotFound:  # deleted with its workflow while we replayed
            self.finished = True
            return [_control("gone", self.run_id, after=self.last, reason="the run was deleted")]
        if row["status"] in TERMINAL and int(row["last_seq"]) <= self.last:
            return [await self._finished(row)]
        return []

    async def _replay(self, sub: Subscription) -> AsyncGenerator[list[Frame], None]:
        while True:
            if sub.closed:
                return
            if sub.lagged:
                sub.rearm()  # before the read below, so the ring keeps whatever the read misses
            events = self.feed.hub.history_after(self.last, self.run_id)
            final = events is not None
            if events is None:
                events = await self._read(self.last, self.feed.page)
                final = len(events) < self.feed.page
            events = coalesce(events)
            for i in range(0, len(events), self.feed.batch):
                batch = await self._deliver(events[i : i + self.feed.batch])
                if batch:
                    yield batch
                if self.finished:
                    return
            if self.finished or (final and not sub.lagged):
                return

    async def _read(self, after: int, limit: int) -> list[Event]:
        store = self.feed.store
        if self.run_id is None:
            return await store.events.all_after(after, limit)
        return await store.events.run_after(self.run_id, after, limit)

    async def _deliver(self, events: list[Event]) -> list[Frame]:
        out: list[Frame] = []
        key, last, cached = self.key, self.last, self.feed.hub.encoded.get
        per_run = self.run_id is not None
        for ev in events:
            cursor = ev[key]
            if cursor <= last:
                continue
            data = cached(ev["gseq"]) or await self.feed.encode(ev)
            out.append(Frame(cursor, ev["type"], data))
            last = cursor
            if per_run and ev["type"] == "run.finished":
                self.finished = True
                break
        self.last = last
        return out

    def _shutdown(self, sub: Subscription) -> Frame:
        return _control("shutdown", self.run_id, after=self.last, reason=sub.reason or "shutdown")
