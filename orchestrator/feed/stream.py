"""One subscriber's feed, independent of the transport: snapshot or replay first, then live, gapless.

The order that makes it exact: register the hub subscription FIRST, then read the snapshot (or replay
from memory/SQLite), then deliver live events from the subscription, skipping any whose cursor was already
delivered. Every event committed before the subscription existed is in the snapshot or the replay; every
later one is in the subscription's ring. A reader that lagged (fell out of the ring) skips to the ring's
end and replays from its last cursor (skipping before each read, so nothing falls between the two).

Per-run feeds count with the run's `seq`, the all-runs feed with `gseq`. Frames come in batches (one
batch per wake-up, or per page of a replay) so a transport can write a batch at once; an empty batch
means "idle for ping_s: send a keep-alive". A batch holds at most `batch` events and about `batch_bytes`
bytes, so a reader that fell behind catches up in bounded writes.

Each event is encoded ONCE per scope (per run / all runs) into a Frame holding its JSON, its SSE frame and
its WebSocket frame, memoised on the hub's ring entry (or in the hub's small cache for events read back
from the store): every subscriber shares the same bytes and nothing is rendered per subscriber. Every
event's JSON carries `ts`, the server's commit time in epoch seconds (float).

Mode `progress` (for watchers that only need state): the snapshot, then at most one `progress` event per
run per hub interval (100 ms) carrying the newest seq/gseq it covers and the run state (no `child`), then
`run.finished`; no per-child events. It never replays: a resumed or lagging progress reader gets a fresh
snapshot instead, which is all the state it needs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

import anyio
import orjson

from orchestrator.core.lifecycle import TERMINAL
from orchestrator.errors import NotFound
from orchestrator.feed.hub import Event, Hub, Mode, Subscription
from orchestrator.feed.wsframe import ws_text
from orchestrator.ids import parse_iso, run_kind_of
from orchestrator.store import Store
from orchestrator.store.records import Record, RunRecord


class Frame(NamedTuple):
    cursor: int | None  # the SSE id: seq (per run) or gseq (all runs); None for control events
    type: str
    data: bytes  # the event as JSON
    sse: bytes = b""  # the whole SSE frame, when encoded in advance (shared by every subscriber)
    ws: bytes = b""  # the whole WebSocket text frame, likewise


def sse_frame(cursor: int | None, type_: str, data: bytes) -> bytes:
    head = b"id: %d\n" % cursor if cursor is not None else b""
    return b"%sevent: %s\ndata: %s\n\n" % (head, type_.encode(), data)


def make_frame(cursor: int | None, type_: str, data: bytes) -> Frame:
    return Frame(cursor, type_, data, sse_frame(cursor, type_, data), ws_text(data))


class Renderer(Protocol):
    def run(self, row: Record) -> dict[str, Any]: ...

    def child(self, child: Record) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Feed:
    store: Store
    hub: Hub
    render: Renderer
    ping_s: float = 15.0
    page: int = 500
    batch: int = 256  # events per write: bounds what one stuck socket can hold in its transport buffer
    # what one write may queue past the transport's high-water mark, per subscriber: a subscriber that stops
    # reading holds about this much (256 KB made 400 stuck subscribers cost 150 MB, 64 KB 85 MB)
    batch_bytes: int = 64 * 1024
    snapshot_recent: int = 20
    snapshot_limit: int = 500

    async def run(self, run_id: str, kinds: tuple[str, ...]) -> RunRecord:
        """A run of one of these kinds (NotFound otherwise): what a per-run feed is opened on."""
        return await self.store.runs.get(run_id, kinds)

    async def static_row(self, run_id: str) -> Record:
        """The run's immutable columns (cached); an event's body supplies the state on top."""
        row = self.hub.rows.get(run_id)
        if row is None:
            try:
                row = await self.store.runs.get(run_id)
            except NotFound:  # the run was deleted after the event: render what the event knows
                gone = {"id": run_id, "kind": run_kind_of(run_id), "workflow_id": None, "workflow_version_id": None}
                gone |= {"workflow_name": None, "experiment_id": None, "block_id": None, "block_type": None}
                row = gone | {"n_consensus": None, "fingerprints": {}, "created_at": None}
            self.hub.rows.put(run_id, row)
        return row

    async def encode(self, event: Event) -> bytes:
        """The wire JSON of a stored event, encoded once and shared by every subscriber."""
        return (await self.frame(event, per_run=False)).data

    async def frame(self, event: Event, *, per_run: bool) -> Frame:
        """The event's Frame for one scope, built once: memoised on the ring entry, else in a small cache."""
        memo = "_frame_run" if per_run else "_frame_all"
        found: Frame | None = event.get(memo)
        if found is not None:
            return found
        other: Frame | None = event.get("_frame_all" if per_run else "_frame_run")
        coalesced = bool(event.get("_progress"))
        data = other.data if other is not None else None
        if data is None and not coalesced:
            data = self.hub.encoded.get(event["gseq"])
        if data is None:
            data = await self._json(event)
            if not coalesced:
                self.hub.encoded.put(event["gseq"], data)
        cursor = int(event["seq"] if per_run else event["gseq"])
        sse = sse_frame(cursor, event["type"], data)
        found = Frame(cursor, event["type"], data, sse, other.ws if other is not None else ws_text(data))
        event[memo] = found
        return found

    async def _json(self, event: Event) -> bytes:
        body = event["body"]
        out: dict[str, Any] = {
            "seq": event["seq"],
            "gseq": event["gseq"],
            "run_id": event["run_id"],
            "type": event["type"],
            "ts": event.get("ts"),
            "run": self.render.run({**await self.static_row(event["run_id"]), **body["run"]}),
        }
        if body.get("child") is not None:
            out["child"] = self.render.child(body["child"])
        # A compact copy: orjson's result keeps slack behind it, and this one is kept a while.
        return bytes(memoryview(orjson.dumps(out)))

    def stream(
        self, run_id: str | None, after: int | None, mode: Mode = "all", *, batched: bool = False
    ) -> AsyncGenerator[list[Frame], None]:
        return _Reader(self, run_id, after, mode, batched=batched).frames()

    def batch_frame(self, frames: list[Frame], *, per_run: bool, run_id: str | None) -> Frame:
        """Consecutive event frames as ONE `batch` message (a JSON array of the events), built once per
        scope and range and shared by every subscriber that delivers the same range."""
        first, last = frames[0].cursor, frames[-1].cursor
        key = (per_run, run_id, first, last)
        found = self.hub.batches.get(key)
        if found is None:
            data = b"[" + b",".join(f.data for f in frames) + b"]"
            found = make_frame(last, "batch", data)
            self.hub.batches.put(key, found)
        return found


def _control(type_: str, run_id: str | None, **extra: Any) -> Frame:
    body = {"seq": None, "gseq": None, "run_id": run_id, "type": type_, "ts": time.time(), **extra}
    return make_frame(None, type_, orjson.dumps(body))


def by_bytes(frames: list[Frame], limit: int) -> list[list[Frame]]:
    """Frames split into consecutive batches of about `limit` bytes (at least one frame each)."""
    out: list[list[Frame]] = []
    cur: list[Frame] = []
    size = 0
    for f in frames:
        if cur and size + len(f.data) > limit:
            out.append(cur)
            cur, size = [], 0
        cur.append(f)
        size += len(f.data)
    if cur:
        out.append(cur)
    return out


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
    def __init__(
        self, feed: Feed, run_id: str | None, after: int | None, mode: Mode = "all", *, batched: bool = False
    ) -> None:
        self.feed = feed
        self.batched = batched and mode == "all"  # progress mode is coalesced already
        self.run_id = run_id
        self.mode: Mode = mode
        self.progress = mode == "progress"
        self.after = None if self.progress else after  # progress mode starts from a snapshot, always
        self.key = "seq" if run_id is not None else "gseq"
        self.last = 0
        self.floor = 0  # progress mode, all runs: gseq the snapshot already covers
        self.seen: dict[str, int] = {}  # progress mode, all runs: newest seq delivered per run
        self.finished = False

    async def frames(self) -> AsyncGenerator[list[Frame], None]:
        with self.feed.hub.subscribe(self.run_id, self.mode) as sub:
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
                    if self.progress:  # state is all it needs: a fresh snapshot instead of a replay
                        self.seen.clear()
                        first, _ = await self._start()
                        yield first
                        if self.finished:
                            return
                    else:
                        replay = True
                    continue
                events = sub.read_slices(self.feed.batch) if self.batched else sub.read(self.feed.batch)
                if not events:
                    with anyio.move_on_after(self.feed.ping_s) as scope:
                        await sub.wait()
                    if scope.cancelled_caught:
                        yield []
                    continue
                if not self.progress:
                    events = coalesce(await self._fill_gaps(events))
                for batch in by_bytes(await self._deliver(events), self.feed.batch_bytes):
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
            oldest = await store.events.first_gseq()
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
            rows = await store.events.snapshot_runs(self.feed.snapshot_recent, self.feed.snapshot_limit)
            runs = [self.feed.render.run(r) for r in rows]
            snap = {"seq": None, "gseq": last, "run_id": None, "type": "snapshot", "ts": time.time(), "runs": runs}
            out.append(make_frame(last, "snapshot", orjson.dumps(snap)))
            self.last = self.floor = last
            return out, False
        out.append(await self._snapshot(row))
        if row["status"] in TERMINAL:
            out.append(await self._finished(row))
        return out, False

    async def _snapshot(self, row: Record) -> Frame:
        assert self.run_id is not None
        seq = int(row["last_seq"])
        gseq = await self.feed.store.events.gseq_of(self.run_id, seq)
        self.feed.hub.rows.put(self.run_id, row)
        body = {"seq": seq, "gseq": gseq, "run_id": self.run_id, "type": "snapshot", "ts": time.time()}
        self.last = seq
        return make_frame(seq, "snapshot", orjson.dumps({**body, "run": self.feed.render.run(row)}))

    async def _finished(self, row: Record) -> Frame:
        """A terminal run seen at (re)subscription: its state as a closing `run.finished`."""
        assert self.run_id is not None
        seq = int(row["last_seq"])
        gseq = await self.feed.store.events.gseq_of(self.run_id, seq)
        ts = _epoch(row.get("completed_at"))
        body = {"seq": seq, "gseq": gseq, "run_id": self.run_id, "type": "run.finished", "ts": ts or time.time()}
        self.finished = True
        self.last = seq
        return make_frame(seq, "run.finished", orjson.dumps({**body, "run": self.feed.render.run(row)}))

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
            page = self.feed.page
            events = self.feed.hub.history_after(self.last, self.run_id, page)
            final = events is not None and len(events) < page
            if events is None:
                events, final = await self._page(self.last)
            events = coalesce(events)
            for i in range(0, len(events), self.feed.batch):
                for batch in by_bytes(await self._deliver(events[i : i + self.feed.batch]), self.feed.batch_bytes):
                    yield batch
                if self.finished:
                    return
            if self.finished or (final and not sub.lagged):
                return

    async def _read(self, after: int, limit: int) -> list[Event]:
        return cast(list[Event], await self.feed.store.events.after(self.run_id, after, limit))

    async def _page(self, after: int) -> tuple[list[Event], bool]:
        """Stored events after `after`, and whether that reached the end of the store.

        Reads go by pages aligned on multiples of `page`, and full pages are kept in the hub's small page
        cache: lagging readers replaying the same stretch share one read, one decode and (through the
        frames memoised on the shared entries) one encoding, instead of one each.
        """
        size = self.feed.page
        base = (after // size) * size
        key = (self.run_id, base)
        events = self.feed.hub.pages.get(key)
        if events is None:
            events = await self._read(base, size)
            if len(events) == size:  # a full page never changes: later readers can share it
                self.feed.hub.pages.put(key, events)
        cursor = self.key
        return [e for e in events if e[cursor] > after], len(events) < size

    async def _deliver(self, events: list[Event]) -> list[Frame]:
        out: list[Frame] = []
        slices: list[Any] = []  # the publish slice of each frame in `out`, for batching
        key, last = self.key, self.last
        per_run = self.run_id is not None
        memo = "_frame_run" if per_run else "_frame_all"
        by_run = self.progress and not per_run
        for ev in events:
            cursor = ev[key]
            if by_run:  # coalesced entries of different runs need not ascend in gseq
                if cursor <= self.floor or ev["seq"] <= self.seen.get(ev["run_id"], 0):
                    continue
                self.seen[ev["run_id"]] = ev["seq"]
            elif cursor <= last:
                continue
            out.append(ev.get(memo) or await self.feed.frame(ev, per_run=per_run))
            slices.append(ev.get("_slice"))
            last = max(last, cursor)
            if per_run and ev["type"] == "run.finished":
                self.finished = True
                break
        self.last = last
        if not self.batched or not out:
            return out
        # One frame per publish slice (or per stored page): subscribers in step share each of them.
        batches: list[Frame] = []
        start = 0
        for i in range(1, len(out) + 1):
            if i == len(out) or slices[i] != slices[start]:
                batches.append(self.feed.batch_frame(out[start:i], per_run=per_run, run_id=self.run_id))
                start = i
        return batches

    def _shutdown(self, sub: Subscription) -> Frame:
        return _control("shutdown", self.run_id, after=self.last, reason=sub.reason or "shutdown")


def _epoch(iso: Any) -> float | None:
    """A stored ISO timestamp (UTC) as epoch seconds, like the `ts` of a live event."""
    try:
        return parse_iso(iso).timestamp() if isinstance(iso, str) and iso else None
    except ValueError:
        return None
