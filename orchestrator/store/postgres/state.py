"""A run's mutable state inside a write transaction, and the feed events a transaction appends.

As in the SQLite store, the rules are core.lifecycle's: a transaction loads a run's state, applies them
in Python and writes it back. What PostgreSQL adds is concurrency: every load here is `FOR UPDATE`, so
two workers changing the same run (a claim, a group commit, a cancellation, a reclaim) take turns on
its row, and every change of a child's status or lease happens under its run's lock. Several runs are
locked in id order, so two transactions never wait on each other's runs.

The row shapes (columns, JSON columns, what an event carries) are the SQLite store's; their codecs
are shared from there.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import NotFound
from orchestrator.store.postgres.db import Conn
from orchestrator.store.records import FeedEvent
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.state import CLAIMED_SQL, MUTABLE, OPEN_SQL, TERMINAL_SQL, public

__all__ = ["CLAIMED_SQL", "OPEN_SQL", "TERMINAL_SQL", "EventLog", "load", "load_many", "public", "require"]

_COLS = f"id, kind, {', '.join(MUTABLE)}, error_json, stats_json"
# PostgreSQL types of the state columns, for the set-based write-back (unnest of typed arrays).
_TYPES = {c: "text" for c in MUTABLE} | {"score": "float8", "score_sum": "float8", "total": "int4", "last_seq": "int4"}
_TYPES |= {c: "int4" for c in MUTABLE if c.startswith(("c_", "o_"))}
_WRITE = (*MUTABLE, "error_json", "stats_json")
_SAVE = (
    f"UPDATE runs SET {', '.join(f'{c} = u.{c}' for c in _WRITE)} FROM unnest($1::text[], "
    + ", ".join(f"${i + 2}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(_WRITE))
    + f") AS u(id, {', '.join(_WRITE)}) WHERE runs.id = u.id"
)


def _decode(row: Any) -> dict[str, Any]:
    st = dict(row)
    st["error"] = loads(st.pop("error_json"))
    st["stats"] = loads(st.pop("stats_json"), {})
    return st


async def load(conn: Conn, run_id: str) -> dict[str, Any] | None:
    """The run's state, its row locked until the transaction ends; None when there is no such run."""
    row = await conn.fetchrow(f"SELECT {_COLS} FROM runs WHERE id = $1 FOR UPDATE", run_id)
    return _decode(row) if row is not None else None


async def load_many(conn: Conn, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Several runs' states, locked in id order (LockRows sits above the sort: rows lock as they come)."""
    if not run_ids:
        return {}
    rows = await conn.fetch(f"SELECT {_COLS} FROM runs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", run_ids)
    return {r["id"]: _decode(r) for r in rows}


async def require(conn: Conn, run_id: str) -> dict[str, Any]:
    state = await load(conn, run_id)
    if state is None:
        raise NotFound(f"Run {run_id} not found", details={"run_id": run_id})
    return state


async def save_many(conn: Conn, states: dict[str, dict[str, Any]]) -> None:
    """Write back the states of several runs with one statement."""
    if not states:
        return
    ids = list(states)
    columns: list[list[Any]] = [[states[rid].get(c) for rid in ids] for c in MUTABLE]
    columns.append([dumps(states[rid]["error"]) for rid in ids])
    columns.append([dumps(states[rid]["stats"] or {}) for rid in ids])
    await conn.execute(_SAVE, ids, *columns)


async def save(conn: Conn, run_id: str, state: dict[str, Any]) -> None:
    await save_many(conn, {run_id: state})


async def save_with_event(
    conn: Conn, run_id: str, state: dict[str, Any], type_: str, ts: str
) -> tuple[FeedEvent, list[FeedEvent]]:
    """Write a run's state with the one event that announces it: (the event, [the event])."""
    log = EventLog(conn, ts)
    log.add(run_id, state, type_)
    await save(conn, run_id, state)
    events = await log.flush()
    return events[0], events


class EventLog:
    """The events one transaction appends, numbered at the end of the transaction.

    Why a counter row and not a sequence: the feed tails the table by `gseq > last`, so numbers must
    follow the COMMIT order. A sequence hands out numbers in call order, and a transaction that took
    N+1 may commit before the one that took N: a tail would see N+1, move past N, and lose N for good.
    Instead `flush()` takes the numbers with `UPDATE feed_counter SET last = last + k RETURNING last`,
    as the transaction's LAST step: the row lock is held until commit, so the next transaction that
    appends events waits there until this one has committed, and no reader ever sees N+1 committed
    while N is not yet visible. What it serialises is short — one statement (counter, INSERT of the
    batch's events, NOTIFY) and the commit — because every other write (and every other lock) of the
    transaction comes before it; a group commit carries hundreds of events through it at once. The
    per-run `seq` is the run's `last_seq`, already serialised by the run's row lock.
    """

    def __init__(self, conn: Conn, ts: str) -> None:
        self.conn = conn
        self.ts = ts
        self.events: list[FeedEvent] = []
        self._child_ids: list[str | None] = []
        self._bodies: list[str | None] = []

    def add(self, run_id: str, state: dict[str, Any], type_: str, child: dict[str, Any] | None = None) -> None:
        state["last_seq"] = int(state["last_seq"]) + 1
        body: dict[str, Any] = {"run": public(state)}
        if child is not None:
            body["child"] = child
        self._child_ids.append(child["id"] if child is not None else None)
        self._bodies.append(dumps(body))
        self.events.append({"gseq": 0, "run_id": run_id, "seq": state["last_seq"], "type": type_, "body": body})

    async def flush(self) -> list[FeedEvent]:
        """Number and insert the events and notify the listeners: ONE statement, the transaction's last,
        so the counter's lock is held for that statement and the commit only."""
        k = len(self.events)
        if not k:
            return self.events
        last = int(
            await self.conn.fetchval(
                "WITH c AS (UPDATE feed_counter SET last = last + $1 RETURNING last),"
                " e AS (INSERT INTO events(gseq, run_id, seq, type, child_id, body_json, created_at)"
                " SELECT (SELECT last FROM c) - $1 + u.i, u.r, u.s, u.t, u.c, u.b, $7 FROM unnest($2::text[],"
                " $3::int4[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u(r, s, t, c, b, i))"
                " SELECT last FROM c, pg_notify('events', (last - $1 + 1)::text || ':' || last::text)",
                k,
                [e["run_id"] for e in self.events],
                [e["seq"] for e in self.events],
                [e["type"] for e in self.events],
                self._child_ids,
                self._bodies,
                self.ts,
            )
        )
        for i, event in enumerate(self.events):
            event["gseq"] = last - k + 1 + i
        return self.events


async def notify_runs(conn: Conn, why: str) -> None:
    """Wake every worker, on every machine, when this transaction commits: runs to take up or to stop."""
    await conn.execute("SELECT pg_notify('runs', $1)", why)
