"""Wake-ups between processes on any machine: PostgreSQL's LISTEN/NOTIFY on one dedicated connection.

Who notifies: the transactions themselves. Every transaction that appends feed events ends with
`pg_notify('events', 'FIRST:LAST')` (the new gseqs; listeners read the events from the table); the ones
that make children claimable or runs end — a run created, cancelled or failed, children released or
reclaimed — with `pg_notify('runs', …)`; a worker's join or leave with `pg_notify('workers', …)`.
PostgreSQL delivers a notification when, and only if, its transaction commits, so a listener never wakes
before the data is visible, and a rolled-back write wakes no one. `Signals.notify()` therefore only wakes
this process's own listeners: the remote ones were woken by the commit that preceded every call of it.
(It must not block, and a NOTIFY needs a round trip.)

Who listens: at open, one connection outside the pool LISTENs on every channel; `listen()` only adds a
callback. If that connection is lost (a database restart, a network cut) listeners fall back to their
polling; the store's next use (any read or write, every `poll_s` at most) reconnects it and wakes every
listener once, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from orchestrator.store.postgres.db import redact

log = logging.getLogger("orchestrator.store")
CHANNELS = ("events", "runs", "workers")
RECONNECT_EVERY_S = 1.0


class Listener:
    def __init__(self, owner: PgSignals, channel: str, on_wake: Callable[[], None]) -> None:
        self._owner = owner
        self.channel = channel
        self.on_wake = on_wake

    def close(self) -> None:
        self._owner.remove(self)


class PgSignals:
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._listeners: list[Listener] = []
        self._closed = False
        self._next_try = 0.0
        self.last_payload: dict[str, str] = {}  # the last payload seen per channel (diagnostics, tests)

    async def open(self) -> None:
        self._closed = False
        conn = await asyncpg.connect(self.url, server_settings={"application_name": "orchestrator-listen"})
        for channel in CHANNELS:
            await conn.add_listener(channel, self._received)
        conn.add_termination_listener(self._lost)
        self._conn = conn

    async def ensure(self) -> None:
        """Reconnect a lost listening connection (at most once per RECONNECT_EVERY_S); cheap when alive."""
        if self._conn is not None or self._closed or time.monotonic() < self._next_try:
            return
        self._next_try = time.monotonic() + RECONNECT_EVERY_S
        try:
            await self.open()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("LISTEN connection to %s still down (%s); listeners poll meanwhile", redact(self.url), exc)
            return
        log.info("LISTEN connection to %s restored", redact(self.url))
        self._wake_all()

    def _lost(self, conn: Any) -> None:
        if conn is self._conn:
            self._conn = None
            if not self._closed:
                log.warning("lost the LISTEN connection to %s; listeners poll until it is back", redact(self.url))

    def _received(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.last_payload[channel] = payload
        self._wake(channel)

    def _wake(self, channel: str) -> None:
        for listener in list(self._listeners):
            if listener.channel == channel:
                try:
                    listener.on_wake()
                except Exception:
                    log.exception("a %s listener failed", channel)

    def _wake_all(self) -> None:
        for channel in CHANNELS:
            self._wake(channel)

    def listen(self, channel: str, on_wake: Callable[[], None]) -> Listener:
        """Call `on_wake` (on this event loop) when `channel` is notified by any process; close() it after."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
        listener = Listener(self, channel, on_wake)
        self._listeners.append(listener)
        return listener

    def remove(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def notify(self, channel: str) -> None:
        """Wake this process's listeners of `channel`; other processes were woken by the commit (see above)."""
        self._wake(channel)

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()
