"""Runs: creation with every child in one transaction, ending and cancelling, listing."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from orchestrator.core import lifecycle
from orchestrator.errors import NotFound
from orchestrator.ids import RESULT_PREFIX, new_id, now_iso
from orchestrator.store.records import FeedEvent, Page, PageRequest, Row, RunRecord
from orchestrator.store.sqlite import state as runstate
from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.paging import Where, page
from orchestrator.store.sqlite.state import CLAIMED_SQL, OPEN_SQL

NOUN = {"eval": "Eval run", "test": "Test run", "experiment": "Experiment run"}


def decode_run(row: Row) -> RunRecord:
    row["error"] = loads(row.pop("error_json", None))
    row["fingerprints"] = loads(row.pop("fingerprints_json", None), {})
    row["stats"] = loads(row.pop("stats_json", None), {})
    row["scope"] = loads(row.pop("scope_json", None))
    if "cache_enabled" in row:  # an integer in both stores (copied as is by `orchestrator migrate`)
        row["cache_enabled"] = bool(row["cache_enabled"])
    return cast(RunRecord, row)


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_run(
        self, run: dict[str, Any], children: Sequence[dict[str, Any]] | None = None, *, experiment_id: str | None = None
    ) -> tuple[RunRecord, FeedEvent]:
        """Run row + every child row (pending) + event #1, in ONE transaction.

        Eval/test children come as a list; experiment children are copied straight from the
        document set with INSERT … SELECT so a 50,000-document run never passes through Python.
        """
        ts = now_iso()
        kind = run["kind"]
        prefix = RESULT_PREFIX[kind]
        # Children go in as one JSON array expanded by SQLite (json_each): one statement whatever
        # their number, instead of one GIL hand-off per row (see db.py).
        rows = dumps([_child_row(prefix, i, c) for i, c in enumerate(children or [])])

        def tx(conn: sqlite3.Connection) -> tuple[tuple[Row, FeedEvent], list[FeedEvent]]:
            conn.execute(
                "INSERT INTO runs(id, kind, workflow_id, workflow_version_id, workflow_name, experiment_id, block_id,"
                " block_type, check_id, scope_json, n_consensus, status, trigger_type, seed, total,"
                " fingerprints_json, created_at, cache_enabled) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    dumps(run.get("fingerprints", {})),
                    ts,
                    1 if run.get("cache_enabled", True) else 0,
                ),
            )
            if experiment_id is not None:
                total = conn.execute(
                    "INSERT INTO children(id, run_id, position, document_id, block_id, block_type, status,"
                    " handle_inputs_json, created_at) SELECT ? || '_' || lower(hex(randomblob(9))), ?, position, id,"
                    " ?, ?, 'pending', handle_inputs_json, ? FROM experiment_documents WHERE experiment_id = ?",
                    (prefix, run["id"], run["block_id"], run["block_type"], ts, experiment_id),
                ).rowcount
                conn.execute("UPDATE experiments SET last_run_id = ? WHERE id = ?", (run["id"], experiment_id))
            else:
                total = conn.execute(
                    "INSERT INTO children(id, run_id, position, check_id, block_id, block_type, status,"
                    " handle_inputs_json, created_at) SELECT j.value ->> 0, ?, j.value ->> 1, j.value ->> 2,"
                    " j.value ->> 3, j.value ->> 4, 'pending', j.value ->> 5, ? FROM json_each(?) AS j",
                    (run["id"], ts, rows),
                ).rowcount
            st = runstate.require(conn, run["id"])
            st.update(lifecycle.new_state(total))
            event, events = runstate.save_with_event(conn, run["id"], st, "progress", ts)
            # The row as this transaction leaves it (read after the commit, a worker could have claimed it).
            return (conn.execute("SELECT * FROM runs WHERE id = ?", (run["id"],)).fetchone(), event), events

        row, event = await self.db.commit(tx)
        return decode_run(row), event

    async def get(self, run_id: str, kind: str | tuple[str, ...] | None = None) -> RunRecord:
        row = await self.db.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
        kinds = (kind,) if isinstance(kind, str) else kind
        if row is None or (kinds and row["kind"] not in kinds):
            noun = NOUN.get(kinds[0] if kinds else "", "Run")
            raise NotFound(f"{noun} {run_id} not found", details={"run_id": run_id})
        return decode_run(row)

    async def list_page(self, kinds: tuple[str, ...], req: PageRequest, filters: dict[str, Any]) -> Page[RunRecord]:
        where = Where().among("kind", kinds)
        for key in ("workflow_id", "experiment_id", "block_id", "check_id", "trigger_type"):
            where.eq(key, filters.get(key))
        where.among("status", filters.get("statuses")).among("status", filters.get("exclude_statuses"), negate=True)
        where.among("trigger_type", filters.get("trigger_types")).eq("block_id", filters.get("target_block_id"))
        where.sql("created_at >= ?", filters.get("from_date")).sql("created_at <= ?", filters.get("to_date"))
        p = await page(self.db, "runs", where, req, sort="n")
        return Page([decode_run(r) for r in p.rows], p.before, p.after)

    async def open_runs(self) -> list[RunRecord]:
        rows = await self.db.fetchall(f"SELECT * FROM runs WHERE status IN {OPEN_SQL} ORDER BY n")
        return [decode_run(r) for r in rows]

    async def finish(
        self,
        run_id: str,
        status: lifecycle.RunStatus,
        *,
        error: dict[str, Any] | None = None,
        reason: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> FeedEvent | None:
        """Cancel or fail a run (its open children are cancelled). Idempotent: None if already terminal."""
        ts = now_iso()

        def tx(conn: sqlite3.Connection) -> tuple[FeedEvent | None, list[FeedEvent]]:
            st = runstate.load(conn, run_id)
            if st is None or st["status"] in lifecycle.TERMINAL:
                return None, []
            why = reason or ("run failed" if status == "error" else None)
            if lifecycle.terminate(st["kind"], st, status, ts, error=error, reason=reason):
                # rowcount, not RETURNING: cancelling 100,000 open children must not ship their ids to Python.
                conn.execute(
                    "UPDATE children SET status = 'cancelled', cancel_reason = ?, completed_at = ? WHERE run_id = ?"
                    f" AND status IN {OPEN_SQL}",
                    (why, ts, run_id),
                )
            if stats is not None:
                st["stats"] = stats
            return runstate.save_with_event(conn, run_id, st, "run.finished", ts)

        return await self.db.commit(tx)

    async def complete_if_done(self, run_id: str) -> FeedEvent | None:
        """End a run that has no open child (completed, or error when every document failed), in one
        transaction that checks it. None when the run is terminal already or still has work."""
        ts = now_iso()

        def tx(conn: sqlite3.Connection) -> tuple[FeedEvent | None, list[FeedEvent]]:
            st = runstate.load(conn, run_id)
            if st is None or not lifecycle.close_if_done(st["kind"], st, ts):
                return None, []
            return runstate.save_with_event(conn, run_id, st, "run.finished", ts)

        return await self.db.commit(tx)

    async def claimable(self, limit: int) -> list[str]:
        """Open runs a worker should take up, oldest first: not started yet, with children still to hand
        out, or with no open child left but not ended (a stop between the last commit and the end)."""
        rows = await self.db.fetchall(
            f"SELECT id FROM runs WHERE status = 'pending' OR (status IN {CLAIMED_SQL}"
            " AND (c_pending > 0 OR c_queued + c_running = 0)) ORDER BY n LIMIT ?",
            (limit,),
        )
        return [r["id"] for r in rows]

    async def statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The current status of each run that still exists."""
        out: dict[str, str] = {}
        ids = list(run_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = await self.db.fetchall(
                f"SELECT id, status FROM runs WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            out.update({r["id"]: r["status"] for r in rows})
        return out

    async def previous_completed(self, experiment_id: str, before_n: int) -> RunRecord | None:
        row = await self.db.fetchone(
            "SELECT * FROM runs WHERE experiment_id = ? AND status = 'completed' AND n < ? ORDER BY n DESC LIMIT 1",
            (experiment_id, before_n),
        )
        return decode_run(row) if row else None


def _child_row(prefix: str, position: int, child: dict[str, Any]) -> tuple[Any, ...]:
    handle_inputs = dumps(child.get("handle_inputs", {}))
    return (new_id(prefix), position, child.get("check_id"), child["block_id"], child["block_type"], handle_inputs)
