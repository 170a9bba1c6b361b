"""Children of a run: claiming pages, group-committing starts and finishes, reading results.

Counts are kept incrementally in the same transaction as each child change (never recounted per
commit, which would be quadratic on big runs), by core.lifecycle's rules; `recount` exists for tests
and recovery.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from typing import Any, cast

from orchestrator.core import lifecycle, usage
from orchestrator.errors import NotFound
from orchestrator.ids import now_iso
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
from orchestrator.store.sqlite import cache as passcache
from orchestrator.store.sqlite import state as runstate
from orchestrator.store.sqlite.db import BLOBS, Database, stage
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.paging import Where, page
from orchestrator.store.sqlite.state import CLAIMED_SQL


def decode_child(row: Row) -> ResultRecord:
    row["handle_inputs"] = loads(row.pop("handle_inputs_json", None), {})
    row["result"] = loads(row.pop("result_json", None))
    row["error"] = loads(row.pop("error_json", None))
    return cast(ResultRecord, row)


def decode_artifact(row: Row) -> ArtifactRecord:
    row["body"] = loads(row.pop("body_json"))
    return cast(ArtifactRecord, row)


class ChildStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, run_id: str, limit: int, *, owner: str | None = None, lease_s: float = 0.0
    ) -> list[ClaimedChild]:
        """Move up to `limit` pending children to queued (one transaction) and return them in order,
        decoded, each with the current assertion of its saved check (`assertion`, None without one).
        With an `owner`, the claim is a lease that expires `lease_s` from now unless renewed."""

        def tx(conn: sqlite3.Connection) -> list[ClaimedChild]:
            st = runstate.load(conn, run_id)
            if st is None or st["status"] in lifecycle.TERMINAL:
                return []
            rows = _claim(conn, run_id, limit, owner, lease_s)
            if rows:
                lifecycle.claim(st, len(rows))
                runstate.save(conn, run_id, st)
            return rows

        return await self.db.write(tx)

    async def start_run(
        self, run_id: str, limit: int, *, owner: str | None = None, lease_s: float = 0.0
    ) -> tuple[dict[str, Any], FeedEvent | None, list[ClaimedChild]]:
        """A run starting: pending → queued and its first page claimed, in ONE transaction (one wait
        for the writer instead of two when the runner is busy). Returns the run state after, the
        `progress` event when the status changed, and the claimed children (none if terminal)."""
        ts = now_iso()

        def tx(
            conn: sqlite3.Connection,
        ) -> tuple[tuple[dict[str, Any], FeedEvent | None, list[ClaimedChild]], list[FeedEvent]]:
            st = runstate.require(conn, run_id)
            log = runstate.EventLog(conn, ts)
            if lifecycle.queue(st):
                log.add(run_id, st, "progress")
            rows: list[ClaimedChild] = []
            if st["status"] not in lifecycle.TERMINAL:
                rows = _claim(conn, run_id, limit, owner, lease_s)
                lifecycle.claim(st, len(rows))
            runstate.save(conn, run_id, st)
            events = log.flush()
            return (runstate.public(st), events[0] if events else None, rows), events

        return await self.db.commit(tx)

    async def apply(
        self, starts: list[ChildStart], finishes: list[ChildFinish], *, owner: str | None = None
    ) -> list[FeedEvent]:
        """Group commit: children started and finished since the last batch, in ONE transaction.

        A start applies only to a queued child and a finish only to an open (queued/running) one: a
        child cancelled meanwhile, or already committed before a crash, is never counted twice. With an
        `owner`, only children it still holds the lease of are touched: a worker that lost its lease
        (presumed dead, its children claimed again) cannot commit over the new claim. The run states
        are derived in Python from one read per run, and every table is written with one set-based
        statement, so a batch costs the same handful of statements whatever its size. Each finish gets
        a `child.finished` event; a run with starts but no finish gets one `progress`; a run whose last
        open child finishes here ends here too (`run.finished`).
        """
        if not starts and not finishes:
            return []
        ts = now_iso()
        # Encoded here, before the transaction: the writers of every process queue for one lock, so the
        # heavy part (results, artifacts as JSON) must not be done while holding it.
        encoded = _Encoded(starts, finishes)
        return await self.db.commit(lambda conn: _apply(conn, starts, finishes, ts, owner, encoded))

    async def release(self, owner: str) -> int:
        """A worker stopping: the children it holds go back to pending for another worker."""
        return await self.db.commit(lambda conn: _release(conn, "lease_owner = ?", (owner,), now_iso()))

    async def reclaim(self, now: float, dead_owners: list[str]) -> int:
        """Children whose lease expired, or whose owner is known dead, go back to pending (each of
        them will run again: passes are at-least-once; results and counts stay exactly-once)."""
        # Unowned claims come from a runner without leases (an older version that died): never renewed.
        cond = "lease_expires < ? OR lease_owner IS NULL"
        params: list[Any] = [now]
        if dead_owners:
            cond += f" OR lease_owner IN ({','.join('?' * len(dead_owners))})"
            params += dead_owners
        return await self.db.commit(lambda conn: _release(conn, f"({cond})", params, now_iso()))

    async def requeue_interrupted(self) -> int:
        """One runner that restarts: every claimed or running child goes back to pending."""
        return await self.db.commit(lambda conn: _release(conn, "1 = 1", (), now_iso()))

    async def recount(self, run_id: str) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT status, verdict, count(*) AS k FROM children WHERE run_id = ? GROUP BY status, verdict", (run_id,)
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
            " FROM children c JOIN runs r ON r.id = c.run_id WHERE c.id = ?",
            (child_id,),
        )
        if row is None or (kinds_prefix and row["run_kind"] not in kinds_prefix):
            raise NotFound(f"Result {child_id} not found", details={"result_id": child_id})
        return decode_child(row)

    async def by_check(self, run_id: str, check_id: str) -> ResultRecord:
        row = await self.db.fetchone("SELECT id FROM children WHERE run_id = ? AND check_id = ?", (run_id, check_id))
        if row is None:
            raise NotFound(
                f"No result for test {check_id} in run {run_id}", details={"run_id": run_id, "test_id": check_id}
            )
        return await self.get(row["id"])

    async def list_page(self, run_id: str, req: PageRequest) -> Page[ResultRecord]:
        p = await page(self.db, "children", Where().eq("run_id", run_id), req, sort="position")
        return Page([decode_child(r) for r in p.rows], p.before, p.after)

    async def consensus_page(self, run_id: str, after_position: int, limit: int) -> list[Row]:
        """One page of a run's children for the metrics views, in position order: document_id,
        filename, position, status and only the `consensus` record of completed ones (extracted in
        SQL, so the rest of each stored result is never decoded)."""
        rows = await self.db.fetchall(
            "SELECT c.position, c.document_id, c.status, coalesce(d.filename, '') AS filename,"
            " CASE WHEN c.status = 'completed' THEN json_extract(c.result_json, '$.consensus') END AS consensus"
            " FROM children c LEFT JOIN experiment_documents d ON d.id = c.document_id"
            " WHERE c.run_id = ? AND c.position > ? ORDER BY c.position LIMIT ?",
            (run_id, after_position, limit),
        )
        for r in rows:
            r["consensus"] = loads(r["consensus"])
        return rows

    async def artifact(self, artifact_id: str) -> ArtifactRecord:
        row = await self.db.fetchone("SELECT * FROM artifacts WHERE id = ?", (artifact_id,))
        if row is None:
            raise NotFound(f"Artifact {artifact_id} not found", details={"artifact_id": artifact_id})
        return decode_artifact(row)

    async def records_for_documents(self, run_id: str, document_ids: list[str]) -> dict[str, Any]:
        """document id → stored consensus record of a completed child of `run_id`."""
        out: dict[str, Any] = {}
        for i in range(0, len(document_ids), 500):
            chunk = document_ids[i : i + 500]
            rows = await self.db.fetchall(
                "SELECT document_id, json_extract(result_json, '$.consensus') AS consensus FROM children"
                f" WHERE run_id = ? AND status = 'completed' AND document_id IN ({','.join('?' * len(chunk))})",
                [run_id, *chunk],
            )
            for r in rows:
                out[r["document_id"]] = loads(r["consensus"])
        return out

    async def list_artifacts(
        self, req: PageRequest, *, run_id: str | None, operation: str | None
    ) -> Page[ArtifactRecord]:
        p = await page(self.db, "artifacts", Where().eq("run_id", run_id).eq("operation", operation), req)
        return Page([decode_artifact(r) for r in p.rows], p.before, p.after)


def _claim(conn: sqlite3.Connection, run_id: str, limit: int, owner: str | None, lease_s: float) -> list[ClaimedChild]:
    """pending → queued for up to `limit` children, in position order, under a lease when `owner` is
    given; the caller updates the counts."""
    # The page travels as one JSON row: see db.py for why rows are not stepped one by one.
    picked = conn.execute(
        "SELECT json_group_array(id) AS ids, count(*) AS n FROM (SELECT id FROM children"
        " WHERE run_id = ? AND status = 'pending' ORDER BY position LIMIT ?)",
        (run_id, limit),
    ).fetchone()
    if not picked["n"]:
        return []
    conn.execute(
        "UPDATE children SET status = 'queued', lease_owner = ?, lease_expires = ?"
        " WHERE id IN (SELECT value FROM json_each(?))",
        (owner, time.time() + lease_s if owner else None, picked["ids"]),
    )
    page = conn.execute(
        "SELECT json_group_array(json_object('id', c.id, 'run_id', c.run_id, 'position', c.position,"
        " 'check_id', c.check_id, 'document_id', c.document_id, 'block_id', c.block_id,"
        " 'block_type', c.block_type, 'status', c.status, 'attempt', c.attempt,"
        " 'handle_inputs', json(c.handle_inputs_json), 'assertion', json(k.assertion_json))) AS page"
        " FROM children c LEFT JOIN checks k ON k.id = c.check_id"
        " WHERE c.id IN (SELECT value FROM json_each(?))",
        (picked["ids"],),
    ).fetchone()
    rows: list[ClaimedChild] = loads(page["page"])
    rows.sort(key=lambda r: r["position"])
    for r in rows:
        r["handle_inputs"] = r["handle_inputs"] or {}
    return rows


class _Encoded:
    """A batch's rows as the JSON arrays its statements take, assuming every start and finish applies
    (the common case); `rows` re-encodes only what applies when some did not."""

    def __init__(self, starts: list[ChildStart], finishes: list[ChildFinish]) -> None:
        with_artifact = [f for f in finishes if f.artifact]
        self.starts = dumps([_start_row(s) for s in starts])
        self.finishes = dumps([_finish_row(f) for f in finishes])
        self.results = dumps([f.result for f in finishes])
        self.artifacts = dumps([_artifact_row(f) for f in with_artifact])
        self.bodies = dumps([(f.artifact or {}).get("body") for f in with_artifact])
        self.summaries = dumps([_summary_row(f) for f in finishes if f.check_id and f.check_summary])


def _apply(
    conn: sqlite3.Connection,
    starts: list[ChildStart],
    finishes: list[ChildFinish],
    ts_now: str,
    owner: str | None,
    encoded: _Encoded,
) -> tuple[list[FeedEvent], list[FeedEvent]]:
    ids = dumps([s.child_id for s in starts] + [f.child_id for f in finishes])
    fence = "" if owner is None else " AND lease_owner = ?"
    found = conn.execute(
        f"SELECT json_group_object(id, status) AS s FROM children WHERE id IN (SELECT value FROM json_each(?)){fence}",
        (ids,) if owner is None else (ids, owner),
    ).fetchone()
    status: dict[str, str] = loads(found["s"], {})  # children this batch may touch, and their status
    states: dict[str, dict[str, Any]] = {}
    for rid in sorted({s.run_id for s in starts} | {f.run_id for f in finishes}):
        st = runstate.load(conn, rid)
        if st is not None:
            states[rid] = st
    applied_starts: list[ChildStart] = []
    started: set[str] = set()
    for s in starts:
        st = states.get(s.run_id)
        if st is None or not lifecycle.can_start(status.get(s.child_id)):
            continue
        status[s.child_id] = "running"
        applied_starts.append(s)
        started.add(s.run_id)
        lifecycle.start(st, s.started_at)
    log = runstate.EventLog(conn, ts_now)
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
        lifecycle.finish(st, old, f.status, f.verdict, f.score)
        lifecycle.add_stats(st, f.stats)
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
        # The last child's commit also ends the run: no window where every child is done but the
        # run still says running, and no extra transaction.
        if lifecycle.close_if_done(states[rid]["kind"], states[rid], ts_now):
            log.add(rid, states[rid], "run.finished")
    if len(applied_starts) < len(starts):  # some start was refused: encode what applies
        encoded.starts = dumps([_start_row(s) for s in applied_starts])
    if len(applied) < len(finishes):  # a finish counted before, or of a child cancelled meanwhile
        encoded = _Encoded(applied_starts, applied)
    for sql, rows, blobs, any_rows in (
        (_START_SQL, encoded.starts, None, applied_starts),
        (_FINISH_SQL, encoded.finishes, encoded.results, applied),
        (_ARTIFACT_SQL, encoded.artifacts, encoded.bodies, [f for f in applied if f.artifact]),
        (_SUMMARY_SQL, encoded.summaries, None, [f for f in applied if f.check_id and f.check_summary]),
    ):
        if any_rows:
            if blobs is not None:
                stage(conn, blobs)
            conn.execute(sql, (rows,))
    if any(f.cache_puts or f.cache_touches or f.stats for f in applied):
        passcache.record(
            conn,
            [e for f in applied for e in f.cache_puts],
            [k for f in applied for k in f.cache_touches],
            sum(int(f.stats.get(usage.CACHE_HITS, 0)) for f in applied),
            sum(int(f.stats.get(usage.CACHE_MISSES, 0)) for f in applied),
            time.time(),
        )
    events = log.flush()
    runstate.save_many(conn, {rid: states[rid] for rid in sorted(started | finished)})
    return events, events


# Each statement takes its rows as ONE JSON array parameter, expanded by json_each.
_J = "FROM json_each(?) AS j"
_START_SQL = (
    f"UPDATE children SET status = 'running', started_at = j.value ->> 0 {_J} WHERE children.id = j.value ->> 1"
)
# Results and artifact bodies are staged in BLOBS (see db.py); `->` keeps a small nested value's JSON text.
_FINISH_SQL = (
    "UPDATE children SET status = x.r ->> 0, verdict = x.r ->> 1, score = x.r ->> 2,"
    " error_json = nullif(x.r -> 3, 'null'), result_json = x.result, artifact_id = x.r ->> 4,"
    " started_at = coalesce(children.started_at, x.r ->> 5), completed_at = x.r ->> 6, attempt = x.r ->> 7,"
    " lease_owner = NULL, lease_expires = NULL, digest_json = nullif(x.r -> 9, 'null')"
    f" FROM (SELECT j.value AS r, b.v AS result {_J} JOIN {BLOBS} AS b ON b.k = j.key) AS x"
    " WHERE children.id = x.r ->> 8"
)
_ARTIFACT_SQL = (
    "INSERT INTO artifacts(id, run_id, child_id, operation, body_json, created_at) SELECT j.value ->> 0,"
    f" j.value ->> 1, j.value ->> 2, j.value ->> 3, b.v, j.value ->> 4 {_J} JOIN {BLOBS} AS b ON b.k = j.key"
)
_SUMMARY_SQL = (
    "UPDATE checks SET latest_json = j.value -> 0,"
    " latest_passing_json = CASE WHEN j.value ->> 1 = 'passed' THEN j.value -> 0 ELSE latest_passing_json END,"
    " latest_failing_json = CASE WHEN j.value ->> 1 = 'failed' THEN j.value -> 0 ELSE latest_failing_json END"
    f" {_J} WHERE checks.id = j.value ->> 2"
)


def _start_row(s: ChildStart) -> tuple[Any, ...]:
    return (s.started_at, s.child_id)


def _finish_row(f: ChildFinish) -> tuple[Any, ...]:
    return (
        f.status,
        f.verdict,
        f.score,
        f.error,
        f.artifact["id"] if f.artifact else None,
        f.started_at,
        f.completed_at,
        f.attempt,
        f.child_id,
        f.digest,
    )


def _artifact_row(f: ChildFinish) -> tuple[Any, ...]:
    a = f.artifact or {}
    return (a["id"], f.run_id, f.child_id, a["operation"], f.completed_at)


def _summary_row(f: ChildFinish) -> tuple[Any, ...]:
    return (f.check_summary, f.verdict, f.check_id)


def _release(conn: sqlite3.Connection, cond: str, params: Any, ts: str) -> tuple[int, list[FeedEvent]]:
    """Open claimed children matching `cond` → pending (attempt + 1, lease cleared), with each run's
    counts and one `progress` event per run whose counts moved."""
    moved = conn.execute(
        "SELECT run_id, sum(status = 'queued') AS q, sum(status = 'running') AS r FROM children"
        f" WHERE status IN {CLAIMED_SQL} AND ({cond}) GROUP BY run_id",
        params,
    ).fetchall()
    if not moved:
        return 0, []
    n = conn.execute(
        "UPDATE children SET status = 'pending', started_at = NULL, attempt = attempt + 1, lease_owner = NULL,"
        f" lease_expires = NULL WHERE status IN {CLAIMED_SQL} AND ({cond})",
        params,
    ).rowcount
    log = runstate.EventLog(conn, ts)
    for row in moved:
        st = runstate.load(conn, row["run_id"])
        if st is None or st["status"] in lifecycle.TERMINAL:
            continue
        lifecycle.release(st, int(row["q"]), int(row["r"]))
        log.add(row["run_id"], st, "progress")
        runstate.save(conn, row["run_id"], st)
    return int(n), log.flush()
