"""Children of a run: claiming pages under a lease, group-committing starts and finishes, releasing.

Workers on several machines claim the same runs. A claim locks the run's row (its counts change in the
same transaction), then picks pending children with `FOR UPDATE SKIP LOCKED`: no two transactions ever
hold the same child, and a claim never waits on children another transaction is moving. Counts are
kept incrementally by core.lifecycle's rules in the transaction that changes the children (never
recounted per commit); `recount` exists for tests and recovery.

Lease times are epoch seconds of the DATABASE clock (`clock_timestamp()`), never of the worker's:
machines' clocks differ, and a worker whose clock ran ahead would otherwise see every other worker's
lease as expired. A caller's `now` (reclaim) is read as an offset from its own clock, so "a second from
now" keeps its meaning whatever the skew.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from orchestrator.core import lifecycle, usage
from orchestrator.errors import NotFound
from orchestrator.ids import now_iso
from orchestrator.store.postgres import cache as passcache
from orchestrator.store.postgres import state as runstate
from orchestrator.store.postgres.db import Conn, Database
from orchestrator.store.postgres.paging import Where, page
from orchestrator.store.postgres.state import CLAIMED_SQL
from orchestrator.store.records import (
    ArtifactRecord,
    ChildFinish,
    ChildStart,
    ClaimedChild,
    FeedEvent,
    Page,
    PageRequest,
    ResultRecord,
    Row,
)
from orchestrator.store.sqlite.children import decode_artifact, decode_child
from orchestrator.store.sqlite.jsoncol import dumps, loads

DB_NOW = "extract(epoch from clock_timestamp())::float8"


class ChildStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, run_id: str, limit: int, *, owner: str | None = None, lease_s: float = 0.0
    ) -> list[ClaimedChild]:
        """Move up to `limit` pending children to queued (one transaction) and return them in order, each
        with the current assertion of its saved check. With an `owner`, under a lease of `lease_s`."""

        async def tx(conn: Conn) -> list[ClaimedChild]:
            st = await runstate.load(conn, run_id)
            if st is None or st["status"] in lifecycle.TERMINAL:
                return []
            rows = await _claim(conn, run_id, limit, owner, lease_s)
            if rows:
                lifecycle.claim(st, len(rows))
                await runstate.save(conn, run_id, st)
            return rows

        return await self.db.write(tx)

    async def start_run(
        self, run_id: str, limit: int, *, owner: str | None = None, lease_s: float = 0.0
    ) -> tuple[dict[str, Any], FeedEvent | None, list[ClaimedChild]]:
        """A run starting: pending → queued and its first page claimed, in ONE transaction."""
        ts = now_iso()

        async def tx(conn: Conn) -> tuple[tuple[dict[str, Any], FeedEvent | None, list[ClaimedChild]], list[FeedEvent]]:
            st = await runstate.require(conn, run_id)
            log = runstate.EventLog(conn, ts)
            if lifecycle.queue(st):
                log.add(run_id, st, "progress")
            rows: list[ClaimedChild] = []
            if st["status"] not in lifecycle.TERMINAL:
                rows = await _claim(conn, run_id, limit, owner, lease_s)
                lifecycle.claim(st, len(rows))
            await runstate.save(conn, run_id, st)
            events = await log.flush()
            return (runstate.public(st), events[0] if events else None, rows), events

        return await self.db.commit(tx)

    async def apply(
        self, starts: list[ChildStart], finishes: list[ChildFinish], *, owner: str | None = None
    ) -> list[FeedEvent]:
        """Group commit: children started and finished since the last batch, in ONE transaction, with the
        SQLite store's rules (see its `apply`): a start applies only to a queued child, a finish only to
        an open one, and with an `owner` only to children it still holds the lease of — a worker that
        lost its lease cannot commit over the new claim. Every table is written with one set-based
        statement whatever the batch size."""
        if not starts and not finishes:
            return []
        ts = now_iso()
        return await self.db.commit(lambda conn: _apply(conn, starts, finishes, ts, owner))

    async def release(self, owner: str) -> int:
        """A worker stopping: the children it holds go back to pending for another worker."""
        return await self.db.commit(lambda conn: _release(conn, "lease_owner = $1", [owner], now_iso()))

    async def reclaim(self, now: float, dead_owners: list[str]) -> int:
        """Children whose lease expired (by the database clock, `now - time.time()` ahead), or whose owner
        is known dead, go back to pending: they run again; results and counts stay exactly-once."""
        ahead = now - time.time()

        async def tx(conn: Conn) -> tuple[int, list[FeedEvent]]:
            cutoff = float(await conn.fetchval(f"SELECT {DB_NOW} + $1::float8", ahead))
            cond = "(lease_expires < $1 OR lease_owner IS NULL OR lease_owner = ANY($2::text[]))"
            return await _release(conn, cond, [cutoff, dead_owners], now_iso())

        return await self.db.commit(tx)

    async def requeue_interrupted(self) -> int:
        """One runner that restarts: every claimed or running child goes back to pending."""
        return await self.db.commit(lambda conn: _release(conn, "true", [], now_iso()))

    async def recount(self, run_id: str) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT status, verdict, count(*) AS k FROM children WHERE run_id = $1 GROUP BY status, verdict", run_id
        )
        out: dict[str, int] = defaultdict(int)
        for r in rows:
            out[f"c_{r['status']}"] += r["k"]
            if r["status"] == "completed" and r["verdict"]:
                out[f"o_{r['verdict']}"] += r["k"]
        return dict(out)

    async def get(self, child_id: str, kinds_prefix: tuple[str, ...] = ()) -> ResultRecord:
        row = await self.db.fetchone(
            "SELECT c.*, r.kind AS run_kind, r.workflow_id AS workflow_id, r.experiment_id AS experiment_id"
            " FROM children c JOIN runs r ON r.id = c.run_id WHERE c.id = $1",
            child_id,
        )
        if row is None or (kinds_prefix and row["run_kind"] not in kinds_prefix):
            raise NotFound(f"Result {child_id} not found", details={"result_id": child_id})
        return decode_child(row)

    async def by_check(self, run_id: str, check_id: str) -> ResultRecord:
        row = await self.db.fetchone("SELECT id FROM children WHERE run_id = $1 AND check_id = $2", run_id, check_id)
        if row is None:
            raise NotFound(
                f"No result for test {check_id} in run {run_id}", details={"run_id": run_id, "test_id": check_id}
            )
        return await self.get(row["id"])

    async def list_page(self, run_id: str, req: PageRequest) -> Page[ResultRecord]:
        p = await page(self.db, "children", Where().eq("run_id", run_id), req, sort="position")
        return Page([decode_child(r) for r in p.rows], p.before, p.after)

    async def consensus_page(self, run_id: str, after_position: int, limit: int) -> list[Row]:
        """One page of a run's children for the metrics views, in position order, with only the
        `consensus` record of completed ones (extracted by the server)."""
        rows = await self.db.fetchall(
            "SELECT c.position, c.document_id, c.status, coalesce(d.filename, '') AS filename,"
            " CASE WHEN c.status = 'completed' THEN (c.result_json::json -> 'consensus')::text END AS consensus"
            " FROM children c LEFT JOIN experiment_documents d ON d.id = c.document_id"
            " WHERE c.run_id = $1 AND c.position > $2 ORDER BY c.position LIMIT $3",
            run_id,
            after_position,
            limit,
        )
        for r in rows:
            r["consensus"] = loads(r["consensus"])
        return rows

    async def artifact(self, artifact_id: str) -> ArtifactRecord:
        row = await self.db.fetchone("SELECT * FROM artifacts WHERE id = $1", artifact_id)
        if row is None:
            raise NotFound(f"Artifact {artifact_id} not found", details={"artifact_id": artifact_id})
        return decode_artifact(row)

    async def records_for_documents(self, run_id: str, document_ids: list[str]) -> dict[str, Any]:
        """document id → stored consensus record of a completed child of `run_id`."""
        rows = await self.db.fetchall(
            "SELECT document_id, (result_json::json -> 'consensus')::text AS consensus FROM children"
            " WHERE run_id = $1 AND status = 'completed' AND document_id = ANY($2::text[])",
            run_id,
            document_ids,
        )
        return {r["document_id"]: loads(r["consensus"]) for r in rows}

    async def list_artifacts(
        self, req: PageRequest, *, run_id: str | None, operation: str | None
    ) -> Page[ArtifactRecord]:
        p = await page(self.db, "artifacts", Where().eq("run_id", run_id).eq("operation", operation), req)
        return Page([decode_artifact(r) for r in p.rows], p.before, p.after)


async def _claim(conn: Conn, run_id: str, limit: int, owner: str | None, lease_s: float) -> list[ClaimedChild]:
    """pending → queued for up to `limit` children, in position order, under a lease when `owner` is
    given; the caller holds the run's lock and updates the counts."""
    rows = await conn.fetch(
        "WITH picked AS (SELECT id FROM children WHERE run_id = $1 AND status = 'pending'"
        " ORDER BY position LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " UPDATE children c SET status = 'queued', lease_owner = $3::text,"
        f" lease_expires = CASE WHEN $3::text IS NULL THEN NULL ELSE {DB_NOW} + $4::float8 END"
        " FROM picked WHERE c.id = picked.id"
        " RETURNING c.id, c.run_id, c.position, c.check_id, c.document_id, c.block_id, c.block_type, c.status,"
        " c.attempt, c.handle_inputs_json, (SELECT k.assertion_json FROM checks k WHERE k.id = c.check_id) AS a",
        run_id,
        limit,
        owner,
        float(lease_s),
    )
    out: list[ClaimedChild] = []
    for r in sorted(rows, key=lambda r: r["position"]):
        out.append(
            {
                "id": r["id"],
                "run_id": r["run_id"],
                "position": r["position"],
                "check_id": r["check_id"],
                "document_id": r["document_id"],
                "block_id": r["block_id"],
                "block_type": r["block_type"],
                "status": r["status"],
                "attempt": r["attempt"],
                "handle_inputs": loads(r["handle_inputs_json"], {}) or {},
                "assertion": loads(r["a"]),
            }
        )
    return out


async def _apply(
    conn: Conn, starts: list[ChildStart], finishes: list[ChildFinish], ts_now: str, owner: str | None
) -> tuple[list[FeedEvent], list[FeedEvent]]:
    # Runs first (sorted: the lock order), then the children's status as of now under those locks.
    states = await runstate.load_many(conn, sorted({s.run_id for s in starts} | {f.run_id for f in finishes}))
    ids = [s.child_id for s in starts] + [f.child_id for f in finishes]
    fence = "" if owner is None else " AND lease_owner = $2"
    args: list[Any] = [ids] if owner is None else [ids, owner]
    found = await conn.fetch(f"SELECT id, status FROM children WHERE id = ANY($1::text[]){fence}", *args)
    status: dict[str, str] = {r["id"]: r["status"] for r in found}
    start_rows: list[tuple[Any, ...]] = []
    started: set[str] = set()
    for s in starts:
        st = states.get(s.run_id)
        if st is None or not lifecycle.can_start(status.get(s.child_id)):
            continue
        status[s.child_id] = "running"
        start_rows.append((s.started_at, s.child_id))
        started.add(s.run_id)
        lifecycle.start(st, s.started_at)
    log = runstate.EventLog(conn, ts_now)
    finish_rows: list[tuple[Any, ...]] = []
    artifact_rows: list[tuple[Any, ...]] = []
    summary_rows: list[tuple[Any, ...]] = []
    applied: list[ChildFinish] = []
    finished: set[str] = set()
    for f in finishes:
        st = states.get(f.run_id)
        old = status.get(f.child_id)
        if st is None or old is None or not lifecycle.can_finish(old, f.status):
            continue
        status[f.child_id] = f.status
        finished.add(f.run_id)
        applied.append(f)
        finish_rows.append(_finish_row(f))
        lifecycle.finish(st, old, f.status, f.verdict, f.score)
        lifecycle.add_stats(st, f.stats)
        if f.artifact:
            a = f.artifact
            artifact_rows.append((a["id"], f.run_id, f.child_id, a["operation"], dumps(a["body"]), f.completed_at))
        if f.check_id and f.check_summary:
            summary_rows.append((dumps(f.check_summary), f.verdict, f.check_id))
        child = {
            "id": f.child_id,
            "status": f.status,
            "verdict": f.verdict,
            "score": f.score,
            "check_id": f.check_id,
            "error": f.error,
        }
        log.add(f.run_id, st, "child.finished", child)
    for rid in sorted(started - finished):
        log.add(rid, states[rid], "progress")
    for rid in sorted(finished):
        # The last child's commit also ends the run: no window where every child is done but the run
        # still says running, and no extra transaction.
        if lifecycle.close_if_done(states[rid]["kind"], states[rid], ts_now):
            log.add(rid, states[rid], "run.finished")
    for sql, rows in (
        (_START_SQL, start_rows),
        (_FINISH_SQL, finish_rows),
        (_ARTIFACT_SQL, artifact_rows),
        (_SUMMARY_SQL, sorted(summary_rows, key=lambda r: str(r[2]))),
    ):
        if rows:
            await conn.execute(sql, *(list(col) for col in zip(*rows, strict=True)))
    await runstate.save_many(conn, {rid: states[rid] for rid in sorted(started | finished)})
    if any(f.cache_puts or f.cache_touches or f.stats for f in applied):
        await passcache.record(  # after the children, before the feed counter: the lock order
            conn,
            [e for f in applied for e in f.cache_puts],
            [k for f in applied for k in f.cache_touches],
            sum(int(f.stats.get(usage.CACHE_HITS, 0)) for f in applied),
            sum(int(f.stats.get(usage.CACHE_MISSES, 0)) for f in applied),
        )
    events = await log.flush()  # last: it takes the feed counter (see state.EventLog)
    return events, events


# Each statement takes one typed array per column, expanded by unnest: one statement per batch.
_START_SQL = (
    "UPDATE children SET status = 'running', started_at = u.s FROM unnest($1::text[], $2::text[]) AS u(s, id)"
    " WHERE children.id = u.id"
)
_FINISH_SQL = (
    "UPDATE children SET status = u.st, verdict = u.v, score = u.sc, error_json = u.e, result_json = u.r,"
    " artifact_id = u.a, started_at = coalesce(children.started_at, u.sa), completed_at = u.ca, attempt = u.at,"
    " lease_owner = NULL, lease_expires = NULL, digest_json = u.dg FROM unnest($1::text[], $2::text[], $3::float8[],"
    " $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int4[], $10::text[], $11::text[])"
    " AS u(st, v, sc, e, r, a, sa, ca, at, id, dg)"
    " WHERE children.id = u.id"
)
_ARTIFACT_SQL = (
    "INSERT INTO artifacts(id, run_id, child_id, operation, body_json, created_at) SELECT * FROM"
    " unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
)
_SUMMARY_SQL = (
    "UPDATE checks SET latest_json = u.s,"
    " latest_passing_json = CASE WHEN u.v = 'passed' THEN u.s ELSE latest_passing_json END,"
    " latest_failing_json = CASE WHEN u.v = 'failed' THEN u.s ELSE latest_failing_json END"
    " FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, v, id) WHERE checks.id = u.id"
)


def _finish_row(f: ChildFinish) -> tuple[Any, ...]:
    return (
        f.status,
        f.verdict,
        None if f.score is None else float(f.score),
        dumps(f.error),
        dumps(f.result),
        f.artifact["id"] if f.artifact else None,
        f.started_at,
        f.completed_at,
        int(f.attempt),
        f.child_id,
        None if f.digest is None else dumps(f.digest),
    )


async def _release(conn: Conn, cond: str, params: list[Any], ts: str) -> tuple[int, list[FeedEvent]]:
    """Open claimed children matching `cond` → pending (attempt + 1, lease cleared), with each run's counts
    and one `progress` event per run whose counts moved; the `runs` notification wakes every worker."""
    candidates = await conn.fetch(
        f"SELECT DISTINCT run_id FROM children WHERE status IN {CLAIMED_SQL} AND {cond}", *params
    )
    if not candidates:
        return 0, []
    states = await runstate.load_many(conn, sorted(r["run_id"] for r in candidates))
    k = len(params) + 1
    moved = await conn.fetch(
        f"WITH m AS (SELECT id, run_id, status FROM children WHERE run_id = ANY(${k}::text[])"
        f" AND status IN {CLAIMED_SQL} AND {cond} FOR UPDATE),"
        " u AS (UPDATE children c SET status = 'pending', started_at = NULL, attempt = c.attempt + 1,"
        " lease_owner = NULL, lease_expires = NULL FROM m WHERE c.id = m.id RETURNING m.run_id, m.status)"
        " SELECT run_id, count(*) FILTER (WHERE status = 'queued') AS q,"
        " count(*) FILTER (WHERE status = 'running') AS r FROM u GROUP BY run_id ORDER BY run_id",
        *params,
        list(states),
    )
    log = runstate.EventLog(conn, ts)
    changed: dict[str, dict[str, Any]] = {}
    n = 0
    for row in moved:
        n += int(row["q"]) + int(row["r"])
        st = states.get(row["run_id"])
        if st is None or st["status"] in lifecycle.TERMINAL:
            continue
        lifecycle.release(st, int(row["q"]), int(row["r"]))
        log.add(row["run_id"], st, "progress")
        changed[row["run_id"]] = st
    await runstate.save_many(conn, changed)
    if n:
        await runstate.notify_runs(conn, "released")
    return n, await log.flush()
