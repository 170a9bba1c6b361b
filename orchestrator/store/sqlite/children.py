"""Children of a run: claiming pages, group-committing starts and finishes, reading results.

Counts are kept incrementally in the same transaction as each child change (never recounted
per commit, which would be quadratic on big runs); `recount` exists for tests and recovery.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.lifecycle import final_status, open_count
from orchestrator.errors import NotFound
from orchestrator.ids import now_iso
from orchestrator.store.sqlite.db import Database, Row
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.paging import Page, PageRequest, page
from orchestrator.store.sqlite.runs import STATE_COLS, TERMINAL, append_event, read_state, state_of


@dataclass
class ChildFinish:
    child_id: str
    run_id: str
    status: str  # completed | error
    verdict: str | None = None
    score: float | None = None
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None  # {"id", "operation", "body"}
    started_at: str | None = None
    completed_at: str | None = None
    check_id: str | None = None
    check_summary: dict[str, Any] | None = None  # latest_run_summary for the saved eval/test
    attempt: int = 0
    stats: dict[str, int] = field(default_factory=dict)  # per-pass counters to add to the run


_RUN_UPDATE_COLS = (
    "status",
    "started_at",
    "completed_at",
    "score",
    "c_queued",
    "c_running",
    "c_completed",
    "c_error",
    "o_passed",
    "o_failed",
    "o_blocked",
    "score_sum",
)


def decode_child(row: Row) -> Row:
    row["handle_inputs"] = loads(row.pop("handle_inputs_json", None), {})
    row["result"] = loads(row.pop("result_json", None))
    row["error"] = loads(row.pop("error_json", None))
    return row


class ChildStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, run_id: str, limit: int) -> list[Row]:
        """Move up to `limit` pending children to queued (one transaction) and return them in order,
        decoded, each with the current assertion of its saved check (`assertion`, None without one)."""
        return await self.db.write(lambda conn: _claim(conn, run_id, limit))

    async def start_run(self, run_id: str, limit: int) -> tuple[Row, dict[str, Any] | None, list[Row]]:
        """A run starting: pending → queued and its first page claimed, in ONE transaction (one wait
        for the writer instead of two when the runner is busy). Returns the run state after, the
        `progress` event when the status changed, and the claimed children (none if terminal)."""

        def tx(conn: sqlite3.Connection) -> tuple[Row, dict[str, Any] | None, list[Row]]:
            event = None
            if conn.execute(
                "UPDATE runs SET status = 'queued' WHERE id = ? AND status = 'pending'", (run_id,)
            ).rowcount:
                event = append_event(conn, run_id, "progress", {"run": read_state(conn, run_id)})
            state = read_state(conn, run_id)
            if state["status"] in TERMINAL:
                return state, event, []
            rows = _claim(conn, run_id, limit)
            return (read_state(conn, run_id) if rows else state), event, rows

        return await self.db.write(tx)

    async def apply(self, starts: list[tuple[str, str, str]], finishes: list[ChildFinish]) -> list[dict[str, Any]]:
        """Group commit: children started and finished since the last batch, in ONE transaction.

        A start applies only to a queued child and a finish only to an open (queued/running) one: a
        child cancelled meanwhile, or already committed before a crash, is never counted twice. The
        run states are derived in Python from one read per run, and every table is written with one
        set-based statement, so a batch costs the same handful of statements whatever its size.
        Each finish gets a `child.finished` event; a run with starts but no finish gets one `progress`;
        a run whose last open child finishes here ends here too (`run.finished`).
        """
        if not starts and not finishes:
            return []
        return await self.db.write(lambda conn: _apply(conn, starts, finishes, now_iso()))

    async def requeue_interrupted(self) -> int:
        """At start-up: children claimed or running when the process died go back to pending."""

        def tx(conn: sqlite3.Connection) -> int:
            n = conn.execute(
                "UPDATE children SET status = 'pending', started_at = NULL, attempt = attempt + 1"
                " WHERE status IN ('queued','running')"
            ).rowcount
            conn.execute(
                "UPDATE runs SET c_pending = c_pending + c_queued + c_running, c_queued = 0, c_running = 0"
                " WHERE status IN ('pending','queued','running')"
            )
            return int(n)

        return await self.db.write(tx)

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

    async def get(self, child_id: str, kinds_prefix: tuple[str, ...] = ()) -> Row:
        row = await self.db.fetchone(
            "SELECT c.*, r.kind AS run_kind, r.workflow_id AS workflow_id, r.experiment_id AS experiment_id"
            " FROM children c JOIN runs r ON r.id = c.run_id WHERE c.id = ?",
            (child_id,),
        )
        if row is None or (kinds_prefix and row["run_kind"] not in kinds_prefix):
            raise NotFound(f"Result {child_id} not found", details={"result_id": child_id})
        return decode_child(row)

    async def by_check(self, run_id: str, check_id: str) -> Row:
        row = await self.db.fetchone("SELECT id FROM children WHERE run_id = ? AND check_id = ?", (run_id, check_id))
        if row is None:
            raise NotFound(
                f"No result for test {check_id} in run {run_id}", details={"run_id": run_id, "test_id": check_id}
            )
        return await self.get(row["id"])

    async def list_page(self, run_id: str, req: PageRequest) -> Page:
        p = await page(self.db, "children", ["run_id = ?"], [run_id], req, sort="position")
        p.rows = [decode_child(r) for r in p.rows]
        return p

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

    async def artifact(self, artifact_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM artifacts WHERE id = ?", (artifact_id,))
        if row is None:
            raise NotFound(f"Artifact {artifact_id} not found", details={"artifact_id": artifact_id})
        row["body"] = loads(row.pop("body_json"))
        return row

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

    async def list_artifacts(self, req: PageRequest, *, run_id: str | None, operation: str | None) -> Page:
        where, params = [], []
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        if operation:
            where.append("operation = ?")
            params.append(operation)
        p = await page(self.db, "artifacts", where, params, req)
        for row in p.rows:
            row["body"] = loads(row.pop("body_json"))
        return p


def _claim(conn: sqlite3.Connection, run_id: str, limit: int) -> list[Row]:
    # The page travels as one JSON row: see store/db.py for why rows are not stepped one by one.
    picked = conn.execute(
        "SELECT json_group_array(id) AS ids, count(*) AS n FROM (SELECT id FROM children"
        " WHERE run_id = ? AND status = 'pending' ORDER BY position LIMIT ?)",
        (run_id, limit),
    ).fetchone()
    if not picked["n"]:
        return []
    conn.execute("UPDATE children SET status = 'queued' WHERE id IN (SELECT value FROM json_each(?))", (picked["ids"],))
    conn.execute(
        "UPDATE runs SET c_pending = c_pending - ?1, c_queued = c_queued + ?1 WHERE id = ?2", (picked["n"], run_id)
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
    rows: list[Row] = loads(page["page"])
    rows.sort(key=lambda r: r["position"])
    for r in rows:
        r["handle_inputs"] = r["handle_inputs"] or {}
    return rows


def _apply(
    conn: sqlite3.Connection, starts: list[tuple[str, str, str]], finishes: list[ChildFinish], ts_now: str
) -> list[dict[str, Any]]:
    ids = dumps([s[0] for s in starts] + [f.child_id for f in finishes])
    found = conn.execute(
        "SELECT json_group_object(id, status) AS s FROM children WHERE id IN (SELECT value FROM json_each(?))", (ids,)
    ).fetchone()
    status: dict[str, str] = loads(found["s"], {})
    states: dict[str, dict[str, Any]] = {}
    for rid in sorted({s[1] for s in starts} | {f.run_id for f in finishes}):
        row = conn.execute(f"SELECT {STATE_COLS}, score_sum, kind FROM runs WHERE id = ?", (rid,)).fetchone()
        if row is not None:
            row["error"] = loads(row.pop("error_json"))
            row["stats"] = loads(row.pop("stats_json"), {})
            states[rid] = row
    start_rows: list[tuple[Any, ...]] = []
    started: set[str] = set()
    for child_id, run_id, ts in starts:
        st = states.get(run_id)
        if st is None or status.get(child_id) != "queued":
            continue
        status[child_id] = "running"
        start_rows.append((ts, child_id))
        started.add(run_id)
        st["c_queued"] -= 1
        st["c_running"] += 1
        if st["status"] in ("pending", "queued"):
            st["status"] = "running"
        st["started_at"] = st["started_at"] or ts
    gseq = _last_gseq(conn)
    finish_rows: list[tuple[Any, ...]] = []
    artifact_rows: list[tuple[Any, ...]] = []
    summary_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    events: list[dict[str, Any]] = []
    finished: set[str] = set()

    def event(run_id: str, type_: str, body: dict[str, Any], child_id: str | None) -> None:
        nonlocal gseq
        st = states[run_id]
        st["last_seq"] += 1
        gseq += 1
        event_rows.append((gseq, run_id, st["last_seq"], type_, child_id, dumps(body), ts_now))
        events.append({"gseq": gseq, "run_id": run_id, "seq": st["last_seq"], "type": type_, "body": body})

    for f in finishes:
        st = states.get(f.run_id)
        old = status.get(f.child_id)
        if st is None or old not in ("queued", "running"):
            continue
        status[f.child_id] = f.status
        finished.add(f.run_id)
        finish_rows.append(_finish_row(f))
        st["c_running" if old == "running" else "c_queued"] -= 1
        st[f"c_{f.status}"] += 1
        if f.status == "completed" and f.verdict in ("passed", "failed", "blocked"):
            st[f"o_{f.verdict}"] += 1
        if f.status == "completed" and f.score is not None:
            st["score_sum"] += float(f.score)
        for k, v in f.stats.items():
            st["stats"][k] = int(st["stats"].get(k, 0)) + int(v)
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
        event(f.run_id, "child.finished", {"run": state_of(st), "child": child}, f.child_id)
    for rid in sorted(started - finished):
        event(rid, "progress", {"run": state_of(states[rid])}, None)
    for rid in sorted(finished):
        # The last child's commit also ends the run: no window where every child is done but the
        # run still says running, and no extra transaction.
        st = states[rid]
        if st["status"] in ("completed", "error", "cancelled") or open_count(st):
            continue
        st["status"], st["error"] = final_status(st["kind"], st)
        st["completed_at"] = ts_now
        if st["kind"] == "experiment" and st["c_completed"]:
            st["score"] = st["score_sum"] / st["c_completed"]
        event(rid, "run.finished", {"run": state_of(st)}, None)
    for sql, rows in (
        (_START_SQL, start_rows),
        (_FINISH_SQL, finish_rows),
        (_ARTIFACT_SQL, artifact_rows),
        (_SUMMARY_SQL, summary_rows),
        (_EVENT_SQL, event_rows),
    ):
        if rows:
            conn.execute(sql, (dumps(rows),))
    changed = sorted(started | finished)
    if changed:
        conn.executemany(
            "UPDATE runs SET status = ?, started_at = ?, completed_at = ?, score = ?, c_queued = ?, c_running = ?,"
            " c_completed = ?, c_error = ?, o_passed = ?, o_failed = ?, o_blocked = ?, score_sum = ?,"
            " error_json = ?, stats_json = ?, last_seq = ? WHERE id = ?",
            [
                (
                    *(states[rid][k] for k in _RUN_UPDATE_COLS),
                    dumps(states[rid]["error"]),
                    dumps(states[rid]["stats"]),
                    states[rid]["last_seq"],
                    rid,
                )
                for rid in changed
            ],
        )
    return events


# Each statement takes its rows as ONE JSON array parameter, expanded by json_each.
_J = "FROM json_each(?) AS j"
_START_SQL = (
    f"UPDATE children SET status = 'running', started_at = j.value ->> 0 {_J} WHERE children.id = j.value ->> 1"
)
_FINISH_SQL = (
    "UPDATE children SET status = j.value ->> 0, verdict = j.value ->> 1, score = j.value ->> 2,"
    " error_json = j.value ->> 3, result_json = j.value ->> 4, artifact_id = j.value ->> 5,"
    " started_at = coalesce(children.started_at, j.value ->> 6), completed_at = j.value ->> 7,"
    f" attempt = j.value ->> 8 {_J} WHERE children.id = j.value ->> 9"
)
_ARTIFACT_SQL = (
    "INSERT INTO artifacts(id, run_id, child_id, operation, body_json, created_at) SELECT j.value ->> 0,"
    f" j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5 {_J}"
)
_SUMMARY_SQL = (
    "UPDATE checks SET latest_json = j.value ->> 0,"
    " latest_passing_json = CASE WHEN j.value ->> 1 = 'passed' THEN j.value ->> 0 ELSE latest_passing_json END,"
    " latest_failing_json = CASE WHEN j.value ->> 1 = 'failed' THEN j.value ->> 0 ELSE latest_failing_json END"
    f" {_J} WHERE checks.id = j.value ->> 2"
)
_EVENT_SQL = (
    "INSERT INTO events(gseq, run_id, seq, type, child_id, body_json, created_at) SELECT j.value ->> 0,"
    f" j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, j.value ->> 6 {_J}"
)


def _finish_row(f: ChildFinish) -> tuple[Any, ...]:
    return (
        f.status,
        f.verdict,
        f.score,
        dumps(f.error),
        dumps(f.result),
        f.artifact["id"] if f.artifact else None,
        f.started_at,
        f.completed_at,
        f.attempt,
        f.child_id,
    )


def _last_gseq(conn: sqlite3.Connection) -> int:
    """The highest gseq ever handed out: AUTOINCREMENT's counter survives deleted events, so a
    feed cursor never sees a number twice even after a run's events were deleted."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
        " coalesce((SELECT max(gseq) FROM events), 0)) AS g"
    ).fetchone()
    return int(row["g"]) if row else 0
