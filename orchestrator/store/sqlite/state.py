"""A run's mutable state inside a write transaction, and the feed events a transaction appends.

The rules (transitions, counts, final status, score) are core.lifecycle's; this module only loads a
run's state into a dict, writes it back with one statement, and appends events with their sequence
numbers, so every transaction that changes a run reads it once and writes it once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from orchestrator.core import lifecycle
from orchestrator.errors import NotFound
from orchestrator.store.records import FeedEvent
from orchestrator.store.sqlite.db import BLOBS, stage
from orchestrator.store.sqlite.jsoncol import dumps, loads


def _sql_list(statuses: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{s}'" for s in statuses) + ")"


# core.lifecycle's vocabulary as SQL lists, in lifecycle order.
OPEN_SQL = _sql_list(tuple(s for s in lifecycle.STATUSES if s in lifecycle.OPEN))  # ('pending','queued','running')
CLAIMED_SQL = _sql_list(("queued", "running"))  # claimed by a worker: leased, released, reclaimed
TERMINAL_SQL = _sql_list(tuple(s for s in lifecycle.STATUSES if s in lifecycle.TERMINAL))

_COUNTS = tuple(f"c_{s}" for s in lifecycle.STATUSES) + tuple(f"o_{v}" for v in lifecycle.VERDICTS)
# What a feed event carries of the run (and the API renders as its lifecycle and counts).
PUBLIC = ("status", "total", *_COUNTS, "score", "started_at", "completed_at", "error", "cancel_reason", "stats")
# The plain columns of a run's state, as read by load() and written by save() (error, stats: JSON).
MUTABLE = (*(c for c in PUBLIC if c not in ("error", "stats")), "score_sum", "last_seq")
_SELECT = f"SELECT kind, {', '.join(MUTABLE)}, error_json, stats_json FROM runs WHERE id = ?"
_UPDATE = f"UPDATE runs SET {', '.join(f'{c} = ?' for c in MUTABLE)}, error_json = ?, stats_json = ? WHERE id = ?"


def load(conn: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(_SELECT, (run_id,)).fetchone()
    if row is not None:
        row["error"] = loads(row.pop("error_json"))
        row["stats"] = loads(row.pop("stats_json"), {})
    return row


def require(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    state = load(conn, run_id)
    if state is None:
        raise NotFound(f"Run {run_id} not found", details={"run_id": run_id})
    return state


def save(conn: sqlite3.Connection, run_id: str, state: dict[str, Any]) -> None:
    conn.execute(_UPDATE, (*(state[c] for c in MUTABLE), dumps(state["error"]), dumps(state["stats"] or {}), run_id))


def save_many(conn: sqlite3.Connection, states: dict[str, dict[str, Any]]) -> None:
    conn.executemany(
        _UPDATE,
        [(*(st[c] for c in MUTABLE), dumps(st["error"]), dumps(st["stats"] or {}), rid) for rid, st in states.items()],
    )


def public(state: dict[str, Any]) -> dict[str, Any]:
    """The run state an event carries (a copy: the transaction may go on changing `state`)."""
    out = {k: state.get(k) for k in PUBLIC}
    out["stats"] = dict(out["stats"] or {})
    return out


def last_gseq(conn: sqlite3.Connection) -> int:
    """The highest gseq ever handed out: AUTOINCREMENT's counter survives deleted events, so a feed
    cursor never sees a number twice even after a run's events were deleted."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
        " coalesce((SELECT max(gseq) FROM events), 0)) AS g"
    ).fetchone()
    return int(row["g"]) if row else 0


def save_with_event(
    conn: sqlite3.Connection, run_id: str, state: dict[str, Any], type_: str, ts: str
) -> tuple[FeedEvent, list[FeedEvent]]:
    """Write a run's state with the one event that announces it: (the event, [the event])."""
    log = EventLog(conn, ts)
    log.add(run_id, state, type_)
    save(conn, run_id, state)
    events = log.flush()
    return events[0], events


class EventLog:
    """The events one transaction appends, numbered as it goes, written with one statement at the end.

    gseq is max + 1 inside the write transaction: SQLite has one writer at a time, so numbers follow the
    commit order, which is what lets a feed tail the table by gseq."""

    def __init__(self, conn: sqlite3.Connection, ts: str) -> None:
        self.conn = conn
        self.ts = ts
        self.gseq = last_gseq(conn)
        self.rows: list[tuple[Any, ...]] = []
        self.bodies: list[dict[str, Any]] = []
        self.events: list[FeedEvent] = []

    def add(self, run_id: str, state: dict[str, Any], type_: str, child: dict[str, Any] | None = None) -> None:
        state["last_seq"] = int(state["last_seq"]) + 1
        self.gseq += 1
        body: dict[str, Any] = {"run": public(state)}
        if child is not None:
            body["child"] = child
        child_id = child["id"] if child is not None else None
        self.rows.append((self.gseq, run_id, state["last_seq"], type_, child_id, self.ts))
        self.bodies.append(body)
        self.events.append({"gseq": self.gseq, "run_id": run_id, "seq": state["last_seq"], "type": type_, "body": body})

    def flush(self) -> list[FeedEvent]:
        if self.rows:
            stage(self.conn, dumps(self.bodies))
            self.conn.execute(
                "INSERT INTO events(gseq, run_id, seq, type, child_id, body_json, created_at) SELECT j.value ->> 0,"
                f" j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, b.v, j.value ->> 5"
                f" FROM json_each(?) AS j JOIN {BLOBS} AS b ON b.k = j.key",
                (dumps(self.rows),),
            )
            self.rows, self.bodies = [], []
        return self.events
