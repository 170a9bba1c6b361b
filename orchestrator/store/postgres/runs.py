"""Runs: creation with every child in one transaction, ending and cancelling, listing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.core import lifecycle
from orchestrator.errors import NotFound
from orchestrator.ids import RESULT_PREFIX, new_id, now_iso
from orchestrator.store.postgres import state as runstate
from orchestrator.store.postgres.db import Conn, Database, affected
from orchestrator.store.postgres.paging import Where, page
from orchestrator.store.postgres.state import CLAIMED_SQL, OPEN_SQL
from orchestrator.store.records import FeedEvent, Page, PageRequest, Row, RunRecord
from orchestrator.store.sqlite.jsoncol import dumps
from orchestrator.store.sqlite.runs import NOUN, decode_run


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_run(
        self, run: dict[str, Any], children: Sequence[dict[str, Any]] | None = None, *, experiment_id: str | None = None
    ) -> tuple[RunRecord, FeedEvent]:
        """Run row + every child row (pending) + event #1, in ONE transaction; the `runs` notification
        at its commit wakes the workers of every machine.

        Eval/test children go in as typed arrays (one statement); experiment children are copied straight
        from the document set with INSERT … SELECT, so a 50,000-document run never passes through Python.
        """
        ts = now_iso()
        kind = run["kind"]
        prefix = RESULT_PREFIX[kind]
        kids = list(children or [])

        async def tx(conn: Conn) -> tuple[tuple[Row, FeedEvent], list[FeedEvent]]:
            await conn.execute(
                "INSERT INTO runs(id, kind, workflow_id, workflow_version_id, workflow_name, experiment_id, block_id,"
                " block_type, check_id, scope_json, n_consensus, status, trigger_type, seed, total,"
                " fingerprints_json, created_at, cache_enabled)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, 0, $14, $15, $16)",
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
                run.get("trigger_type", "api"),
                int(run.get("seed", 0)),
                dumps(run.get("fingerprints", {})),
                ts,
                1 if run.get("cache_enabled", True) else 0,
            )
            if experiment_id is not None:
                # A random 72-bit suffix, as the SQLite store's randomblob(9): ids only need to be unique.
                total = affected(
                    await conn.execute(
                        "INSERT INTO children(id, run_id, position, document_id, block_id, block_type, status,"
                        " handle_inputs_json, created_at) SELECT $1 || '_' || substr(md5(random()::text || id), 1, 18),"
                        " $2, position, id, $3, $4, 'pending', handle_inputs_json, $5 FROM experiment_documents"
                        " WHERE experiment_id = $6",
                        prefix,
                        run["id"],
                        run["block_id"],
                        run["block_type"],
                        ts,
                        experiment_id,
                    )
                )
                await conn.execute("UPDATE experiments SET last_run_id = $1 WHERE id = $2", run["id"], experiment_id)
            else:
                total = affected(
                    await conn.execute(
                        "INSERT INTO children(id, run_id, position, check_id, block_id, block_type, status,"
                        " handle_inputs_json, created_at) SELECT i, $1, p, c, b, t, 'pending', h, $2"
                        " FROM unnest($3::text[], $4::int4[], $5::text[], $6::text[], $7::text[], $8::text[])"
                        " AS u(i, p, c, b, t, h)",
                        run["id"],
                        ts,
                        [new_id(prefix) for _ in kids],
                        list(range(len(kids))),
                        [c.get("check_id") for c in kids],
                        [c["block_id"] for c in kids],
                        [c["block_type"] for c in kids],
                        [dumps(c.get("handle_inputs", {})) for c in kids],
                    )
                )
            st = await runstate.require(conn, run["id"])
            st.update(lifecycle.new_state(total))
            await runstate.notify_runs(conn, "created")
            event, events = await runstate.save_with_event(conn, run["id"], st, "progress", ts)
            # The row as this transaction leaves it: read after the commit, a worker woken by the
            # notification could already have claimed the run, and its creator would be told `queued`.
            row = await conn.fetchrow("SELECT * FROM runs WHERE id = $1", run["id"])
            return (dict(row), event), events

        row, event = await self.db.commit(tx)
        return decode_run(row), event

    async def get(self, run_id: str, kind: str | tuple[str, ...] | None = None) -> RunRecord:
        row = await self.db.fetchone("SELECT * FROM runs WHERE id = $1", run_id)
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
        where.sql("created_at >= {}", filters.get("from_date")).sql("created_at <= {}", filters.get("to_date"))
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
        """Cancel or fail a run (its open children are cancelled). Idempotent: None if already terminal.
        Every worker holding its children hears of it at the commit (`runs` notification)."""
        ts = now_iso()

        async def tx(conn: Conn) -> tuple[FeedEvent | None, list[FeedEvent]]:
            st = await runstate.load(conn, run_id)
            if st is None or st["status"] in lifecycle.TERMINAL:
                return None, []
            why = reason or ("run failed" if status == "error" else None)
            if lifecycle.terminate(st["kind"], st, status, ts, error=error, reason=reason):
                await conn.execute(
                    "UPDATE children SET status = 'cancelled', cancel_reason = $1, completed_at = $2"
                    f" WHERE run_id = $3 AND status IN {OPEN_SQL}",
                    why,
                    ts,
                    run_id,
                )
            if stats is not None:
                st["stats"] = stats
            await runstate.notify_runs(conn, "ended")
            return await runstate.save_with_event(conn, run_id, st, "run.finished", ts)

        return await self.db.commit(tx)

    async def complete_if_done(self, run_id: str) -> FeedEvent | None:
        """End a run that has no open child (completed, or error when every document failed), in one
        transaction that checks it. None when the run is terminal already or still has work."""
        ts = now_iso()

        async def tx(conn: Conn) -> tuple[FeedEvent | None, list[FeedEvent]]:
            st = await runstate.load(conn, run_id)
            if st is None or not lifecycle.close_if_done(st["kind"], st, ts):
                return None, []
            return await runstate.save_with_event(conn, run_id, st, "run.finished", ts)

        return await self.db.commit(tx)

    async def claimable(self, limit: int) -> list[str]:
        """Open runs a worker should take up, oldest first: not started yet, with children still to hand
        out, or with no open child left but not ended (a stop between the last commit and the end)."""
        rows = await self.db.fetchall(
            f"SELECT id FROM runs WHERE status = 'pending' OR (status IN {CLAIMED_SQL}"
            " AND (c_pending > 0 OR c_queued + c_running = 0)) ORDER BY n LIMIT $1",
            limit,
        )
        return [r["id"] for r in rows]

    async def statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        rows = await self.db.fetchall("SELECT id, status FROM runs WHERE id = ANY($1::text[])", list(run_ids))
        return {r["id"]: r["status"] for r in rows}

    async def previous_completed(self, experiment_id: str, before_n: int) -> RunRecord | None:
        row = await self.db.fetchone(
            "SELECT * FROM runs WHERE experiment_id = $1 AND status = 'completed' AND n < $2 ORDER BY n DESC LIMIT 1",
            experiment_id,
            before_n,
        )
        return decode_run(row) if row else None
