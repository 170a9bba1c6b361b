"""The API process learns of committed events from the store, whoever committed them, and publishes them
to the hub in commit order (gseq).

It is the store's broker in the API process: a commit made here wakes it, and one made by a worker
process wakes it through the store's `events` signal; without a wake-up it looks every `poll_s`. Events
committed here arrive with the wake-up and are published at once when they follow the last one
published; anything else is read back from the store, so nothing is published twice or out of order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio

from orchestrator.feed.hub import Hub
from orchestrator.store import Store
from orchestrator.store.records import FeedEvent

log = logging.getLogger("orchestrator.feed")
READ = 1000  # events per read of the store


class FeedTail:
    def __init__(self, store: Store, hub: Hub, *, poll_s: float = 0.25) -> None:
        self.store = store
        self.hub = hub
        self.poll_s = poll_s
        self.last: int | None = None  # gseq of the newest event published; None until run() starts
        self._wake: anyio.Event | None = None

    def publish(self, events: Sequence[FeedEvent]) -> None:
        """The broker hook: events this process has just committed."""
        if self.last is not None and events and events[0]["gseq"] == self.last + 1:
            self._forward(list(events))
        else:
            self._wake_up()

    def _forward(self, events: list[FeedEvent]) -> None:
        assert self.last is not None
        fresh = [e for e in events if e["gseq"] > self.last]
        if fresh:
            self.last = fresh[-1]["gseq"]
            try:
                self.hub.publish(fresh)
            except Exception:  # subscribers resynchronise from the store
                log.exception("publishing %d event(s) to the feed failed", len(fresh))

    async def run(self) -> None:
        """Tail until cancelled: read what was committed after the last event published, then wait for a
        wake-up (this process's commits, the `events` signal of other processes) or `poll_s`."""
        self._wake = anyio.Event()
        listener = self.store.signals.listen("events", self._wake_up)
        self.last = await self.store.events.last_gseq()
        try:
            while True:
                try:
                    await self.catch_up()
                except Exception:
                    log.exception("reading the feed from the store failed")
                with anyio.move_on_after(self.poll_s):
                    await self._wake.wait()
                self._wake = anyio.Event()
        finally:
            listener.close()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def catch_up(self) -> None:
        """Publish every stored event after the last one published."""
        while self.last is not None:
            events = await self.store.events.after(None, self.last, READ)
            self._forward(events)
            if len(events) < READ:
                return
