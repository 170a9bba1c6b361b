"""Runs: creation with every child in one transaction, lifecycle writes, listing, cancellation."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from orchestrator.core.lifecycle import final_status, open_count
from orchestrator.errors import NotFound
from orchestrator.ids import new_id, now_iso
from orchestrator.store.sqlite.db import Database, Row
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.paging import Page, PageRequest, page

TERMINAL = ("completed", "error", "cancelled")
OPEN = ("pending", "queued", "running")
STATE_COLS = (
    "status, total, c_pending, c_queued, c_running, c_completed, c_error, c_cancelled, o_passed, o_failed,"
    " o_blocked, score, started_at, completed_at, error_json, cancel_reason, stats_json, last_seq"
)
RESULT_PREFIX = {"eval": "wfresult", "test": "wftestresult", "experiment": "expresult"}


def decode_run(row: Row) -> Row:
    row["error"] = loads(row.pop("error_json", None))
    row["fingerprints"] = loads(row.pop("fingerprints_json", None), {})
    row["stats"] = loads(row.pop("stats_json", None), {})
    row["scope"] = loads(row.pop("scope_json", None))
    return row


def state_of(row: Row) -> dict[str, Any]:
    """The mutable part of a run, as carried by every feed event."""
    keys = (
        "status",
        "total",
        "c_pending",
        "c_queued",
        "c_running",
        "c_completed",
        "c_error",
        "c_cancelled",
        "o_passed",
        "o_failed",
        "o_blocked",
        "score",
        "started_at",
        "completed_at",
        "error",
        "cancel_reason",
        "stats",
    )
    state = {k: row.get(k) for k in keys}
    # A copy: the committer keeps adding to the run's stats after this event was built.
    state["stats"] = dict(state["stats"] or {})
    return state


def append_event(
    conn: sqlite3.Connection, run_id: str, type_: str, body: dict[str, Any], child_id: str | None = None
) -> dict[str, Any]:
    """Next per-run seq + a row in `events`, inside the caller's (sync) transaction."""
    row = conn.execute("UPDATE runs SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq", (run_id,)).fetchone()
    seq = int(row["last_seq"]) if row else 0
    grow = conn.execute(
        "INSERT INTO events(run_id, seq, type, child_id, body_json, created_at) VALUES (?,?,?,?,?,?) RETURNING gseq",
        (run_id, seq, type_, child_id, dumps(body), now_iso()),
    ).fetchone()
    return {"gseq": int(grow["gseq"]) if grow else 0, "run_id": run_id, "seq": seq, "type": type_, "body": body}


def read_state(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    row = conn.execute(f"SELECT {STATE_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound(f"Run {run_id} not found")
    row["error"] = loads(row.pop("error_json"))
    row["stats"] = loads(row.pop("stats_json"), {})
    return state_of(row)


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_run(
        self, run: dict[str, Any], children: Sequence[dict[str, Any]] | None = None, *, experiment_id: str | None = None
    ) -> tuple[Row, dict[str, Any]]:
        """Run row + every child row (pending) + event #1, in ONE transaction.

        Eval/test children come as a list; experiment children are copied straight from the
        document set with INSERT … SELECT so a 50,000-document run never passes through Python.
        """
        ts = now_iso()
        kind = run["kind"]
        prefix = RESULT_PREFIX[kind]
        # Children go in as one JSON array expanded by SQLite (json_each): one statement whatever
        # their number, instead of one GIL hand-off per row (see store/db.py).
        rows = dumps(
            [
                [
                    new_id(prefix),
                    i,
                    c.get("check_id"),
                    c["block_id"],
                    c["block_type"],
                    dumps(c.get("handle_inputs", {})),
                ]
                for i, c in enumerate(children or [])
            ]
        )

        def tx(conn: sqlite3.Connection) -> dict[str, Any]:
            conn.execute(
                "INSERT INTO runs(id, kind, workflow_id, workflow_version_id, workflow_name, experiment_id, block_id,"
                " block_type, check_id, scope_json, n_consensus, status, trigger_type, seed, total, c_pending,"
                " fingerprints_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run["id"],
                    kind,
                    run["workflow_id"],
                    run["workflow_version_id"],
                    run["workflow_name"],
                    run.get("experiment_id"),
                    run.get("block_id"),
                    run.get("block_type"),
                    run.get("check_id"),
                    dumps(run.get("scope")),
                    run.get("n_consensus"),
                    "pending",
                    run.get("trigger_type", "api"),
                    run.get("seed", 0),
                    0,
                    0,
                    dumps(run.get("fingerprints", {})),
                    ts,
                ),
            )
            if experiment_id is not None:
                conn.execute(
                    "INSERT INTO children(id, run_id, position, document_id, block_id, block_type, status,"
                    " handle_inputs_json, created_at) SELECT ? || '_' || lower(hex(randomblob(9))), ?, position, id,"
                    " ?, ?, 'pending', handle_inputs_json, ? FROM experiment_documents WHERE experiment_id = ?",
                    (prefix, run["id"], run["block_id"], run["block_type"], ts, experiment_id),
                )
                conn.execute("UPDATE experiments SET last_run_id = ? WHERE id = ?", (run["id"], experiment_id))
            else:
                conn.execute(
                    "INSERT INTO children(id, run_id, position, check_id, block_id, block_type, status,"
                    " handle_inputs_json, created_at) SELECT j.value ->> 0, ?, j.value ->> 1, j.value ->> 2,"
                    " j.value ->> 3, j.value ->> 4, 'pending', j.value ->> 5, ? FROM json_each(?) AS j",
                    (run["id"], ts, rows),
                )
            conn.execute(
                "UPDATE runs SET total = (SELECT count(*) FROM children WHERE run_id = ?1),"
                " c_pending = (SELECT count(*) FROM children WHERE run_id = ?1) WHERE id = ?1",
                (run["id"],),
            )
            return append_event(conn, run["id"], "progress", {"run": read_state(conn, run["id"])})

        event = await self.db.write(tx)
        return await self.get(run["id"]), event

    async def get(self, run_id: str, kind: str | tuple[str, ...] | None = None) -> Row:
        row = await self.db.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
        kinds = (kind,) if isinstance(kind, str) else kind
        if row is None or (kinds and row["kind"] not in kinds):
            noun = {"eval": "Eval run", "test": "Test run", "experiment": "Experiment run"}.get(
                kinds[0] if kinds else "", "Run"
            )
            raise NotFound(f"{noun} {run_id} not found", details={"run_id": run_id})
        return decode_run(row)

    async def list_page(self, kinds: tuple[str, ...], req: PageRequest, filters: dict[str, Any]) -> Page:
        where = [f"kind IN ({','.join('?' * len(kinds))})"]
        params: list[Any] = list(kinds)
        simple = {
            "workflow_id": "workflow_id",
            "experiment_id": "experiment_id",
            "block_id": "block_id",
            "check_id": "check_id",
            "trigger_type": "trigger_type",
        }
        for key, col in simple.items():
            if filters.get(key):
                where.append(f"{col} = ?")
                params.append(filters[key])
        if filters.get("statuses"):
            st = list(filters["statuses"])
            where.append(f"status IN ({','.join('?' * len(st))})")
            params += st
        if filters.get("exclude_statuses"):
            st = list(filters["exclude_statuses"])
            where.append(f"status NOT IN ({','.join('?' * len(st))})")
            params += st
        if filters.get("trigger_types"):
            tt = list(filters["trigger_types"])
            where.append(f"trigger_type IN ({','.join('?' * len(tt))})")
            params += tt
        if filters.get("from_date"):
            where.append("created_at >= ?")
            params.append(filters["from_date"])
        if filters.get("to_date"):
            where.append("created_at <= ?")
            params.append(filters["to_date"])
        if filters.get("target_block_id"):
            where.append("block_id = ?")
            params.append(filters["target_block_id"])
        p = await page(self.db, "runs", where, params, req, sort="n")
        p.rows = [decode_run(r) for r in p.rows]
        return p

    async def open_runs(self) -> list[Row]:
        rows = await self.db.fetchall("SELECT * FROM runs WHERE status IN ('pending','queued','running') ORDER BY n")
        return [decode_run(r) for r in rows]

    async def finish(
        self,
        run_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        reason: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Terminal transition (also cancels any child still open). Idempotent: None if already terminal."""
        ts = now_iso()

        def tx(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT status, kind FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row["status"] in TERMINAL:
                return None
            _cancel_open_children(conn, run_id, reason or ("run failed" if status == "error" else None), ts)
            conn.execute(
                "UPDATE runs SET status = ?, completed_at = ?, error_json = ?, cancel_reason = ?,"
                " stats_json = coalesce(?, stats_json),"
                " score = CASE WHEN kind = 'experiment' AND c_completed > 0 THEN score_sum / c_completed ELSE score END"
                " WHERE id = ?",
                (status, ts, dumps(error), reason, dumps(stats), run_id),
            )
            return append_event(conn, run_id, "run.finished", {"run": read_state(conn, run_id)})

        return await self.db.write(tx)

    async def complete_if_done(self, run_id: str) -> dict[str, Any] | None:
        """End a run that has no open child (completed, or error when every document failed), in one
        transaction that checks it. None when the run is terminal already or still has work."""
        ts = now_iso()

        def tx(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(f"SELECT kind, {STATE_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row["status"] in TERMINAL or open_count(row):
                return None
            status, error = final_status(row["kind"], row)
            conn.execute(
                "UPDATE runs SET status = ?, completed_at = ?, error_json = ?,"
                " score = CASE WHEN kind = 'experiment' AND c_completed > 0 THEN score_sum / c_completed ELSE score END"
                " WHERE id = ?",
                (status, ts, dumps(error), run_id),
            )
            return append_event(conn, run_id, "run.finished", {"run": read_state(conn, run_id)})

        return await self.db.write(tx)

    async def previous_completed(self, experiment_id: str, before_n: int) -> Row | None:
        row = await self.db.fetchone(
            "SELECT * FROM runs WHERE experiment_id = ? AND status = 'completed' AND n < ? ORDER BY n DESC LIMIT 1",
            (experiment_id, before_n),
        )
        return decode_run(row) if row else None

    async def delete_events_before(self, gseq: int) -> None:
        await self.db.write(lambda conn: conn.execute("DELETE FROM events WHERE gseq < ?", (gseq,)))


def _cancel_open_children(conn: sqlite3.Connection, run_id: str, reason: str | None, ts: str) -> None:
    # rowcount, not RETURNING: cancelling 100,000 open children must not ship their ids to Python.
    cur = conn.execute(
        "UPDATE children SET status = 'cancelled', cancel_reason = ?, completed_at = ? WHERE run_id = ?"
        " AND status IN ('pending','queued','running')",
        (reason, ts, run_id),
    )
    if cur.rowcount:
        conn.execute(
            "UPDATE runs SET c_cancelled = c_cancelled + c_pending + c_queued + c_running, c_pending = 0,"
            " c_queued = 0, c_running = 0 WHERE id = ?",
            (run_id,),
        )
