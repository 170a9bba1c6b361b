"""Children of a run: claiming pages, group-committing starts and finishes, reading results.

Counts are kept incrementally in the same transaction as each child change (never recounted
per commit, which would be quadratic on big runs); `recount` exists for tests and recovery.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import NotFound
from orchestrator.ids import now_iso
from orchestrator.store.db import Database, Row
from orchestrator.store.jsoncol import dumps, loads
from orchestrator.store.paging import Page, PageRequest, page
from orchestrator.store.runs import STATE_COLS, state_of


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


def decode_child(row: Row) -> Row:
    row["handle_inputs"] = loads(row.pop("handle_inputs_json", None), {})
    row["result"] = loads(row.pop("result_json", None))
    row["error"] = loads(row.pop("error_json", None))
    return row


class ChildStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, run_id: str, limit: int) -> list[Row]:
        """Move up to `limit` pending children to queued (one transaction) and return them in order."""
        async with self.db.transaction() as conn:
            async with conn.execute(
                "UPDATE children SET status = 'queued' WHERE id IN (SELECT id FROM children WHERE run_id = ?"
                " AND status = 'pending' ORDER BY position LIMIT ?) RETURNING *",
                (run_id, limit),
            ) as cur:
                rows = list(await cur.fetchall())
            if rows:
                await conn.execute(
                    "UPDATE runs SET c_pending = c_pending - ?, c_queued = c_queued + ? WHERE id = ?",
                    (len(rows), len(rows), run_id),
                )
        rows.sort(key=lambda r: r["position"])
        return [decode_child(r) for r in rows]

    async def apply(self, starts: list[tuple[str, str, str]], finishes: list[ChildFinish]) -> list[dict[str, Any]]:
        """Group commit: children started and finished since the last batch, in ONE transaction.

        A finish only applies to a child still open (queued/running): a child cancelled meanwhile,
        or already committed before a crash, is never counted twice. The statements are batched
        (executemany, one UPDATE per run) and per-event run states are derived in Python from one
        read, so a batch costs a handful of round trips to the database thread whatever its size.
        """
        if not starts and not finishes:
            return []
        ts_now = now_iso()
        async with self.db.transaction() as conn:
            ids = [s[0] for s in starts] + [f.child_id for f in finishes]
            status: dict[str, str] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                async with conn.execute(
                    f"SELECT id, status FROM children WHERE id IN ({','.join('?' * len(chunk))})", chunk
                ) as cur:
                    for r in await cur.fetchall():
                        status[r["id"]] = r["status"]
            run_ids = sorted({s[1] for s in starts} | {f.run_id for f in finishes})
            states: dict[str, dict[str, Any]] = {}
            for rid in run_ids:
                async with conn.execute(f"SELECT {STATE_COLS}, score_sum FROM runs WHERE id = ?", (rid,)) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    row["error"] = loads(row.pop("error_json"))
                    row["stats"] = loads(row.pop("stats_json"), {})
                    states[rid] = row
            start_rows = []
            for child_id, run_id, ts in starts:
                st = states.get(run_id)
                if st is None or status.get(child_id) != "queued":
                    continue
                status[child_id] = "running"
                start_rows.append((ts, child_id))
                st["c_queued"] -= 1
                st["c_running"] += 1
                if st["status"] in ("pending", "queued"):
                    st["status"] = "running"
                st["started_at"] = st["started_at"] or ts
            finish_rows: list[tuple[Any, ...]] = []
            artifact_rows: list[tuple[Any, ...]] = []
            summary_rows: list[tuple[Any, ...]] = []
            event_rows: list[tuple[Any, ...]] = []
            events: list[dict[str, Any]] = []
            async with conn.execute("SELECT coalesce(max(gseq), 0) AS g FROM events") as cur:
                grow = await cur.fetchone()
            gseq = int(grow["g"]) if grow else 0
            touched: set[str] = set()
            for f in finishes:
                st = states.get(f.run_id)
                old = status.get(f.child_id)
                if st is None or old not in ("queued", "running"):
                    continue
                status[f.child_id] = f.status
                touched.add(f.run_id)
                finish_rows.append(
                    (
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
                )
                st["c_running" if old == "running" else "c_queued"] -= 1
                st[f"c_{f.status}"] += 1
                if f.status == "completed" and f.verdict in ("passed", "failed", "blocked"):
                    st[f"o_{f.verdict}"] += 1
                if f.status == "completed" and f.score is not None:
                    st["score_sum"] += float(f.score)
                for k, v in f.stats.items():
                    st["stats"][k] = int(st["stats"].get(k, 0)) + int(v)
                if f.artifact:
                    artifact_rows.append(
                        (
                            f.artifact["id"],
                            f.run_id,
                            f.child_id,
                            f.artifact["operation"],
                            dumps(f.artifact["body"]),
                            f.completed_at,
                        )
                    )
                if f.check_id and f.check_summary:
                    summary_rows.append((dumps(f.check_summary), f.verdict, f.check_id))
                st["last_seq"] += 1
                gseq += 1
                child = {
                    "id": f.child_id,
                    "status": f.status,
                    "verdict": f.verdict,
                    "score": f.score,
                    "check_id": f.check_id,
                    "error": f.error,
                }
                body = {"run": state_of(st), "child": child}
                event_rows.append((gseq, f.run_id, st["last_seq"], "child.finished", f.child_id, dumps(body), ts_now))
                events.append(
                    {"gseq": gseq, "run_id": f.run_id, "seq": st["last_seq"], "type": "child.finished", "body": body}
                )
            for rid in {s[1] for s in starts} - touched:
                st = states.get(rid)
                if st is None:
                    continue
                st["last_seq"] += 1
                gseq += 1
                body = {"run": state_of(st)}
                event_rows.append((gseq, rid, st["last_seq"], "progress", None, dumps(body), ts_now))
                events.append({"gseq": gseq, "run_id": rid, "seq": st["last_seq"], "type": "progress", "body": body})
            if start_rows:
                await conn.executemany(
                    "UPDATE children SET status = 'running', started_at = ? WHERE id = ?", start_rows
                )
            if finish_rows:
                await conn.executemany(
                    "UPDATE children SET status = ?, verdict = ?, score = ?, error_json = ?, result_json = ?,"
                    " artifact_id = ?, started_at = coalesce(started_at, ?), completed_at = ?, attempt = ?"
                    " WHERE id = ?",
                    finish_rows,
                )
            if artifact_rows:
                await conn.executemany(
                    "INSERT INTO artifacts(id, run_id, child_id, operation, body_json, created_at)"
                    " VALUES (?,?,?,?,?,?)",
                    artifact_rows,
                )
            if summary_rows:
                await conn.executemany(
                    "UPDATE checks SET latest_json = ?1,"
                    " latest_passing_json = CASE WHEN ?2 = 'passed' THEN ?1 ELSE latest_passing_json END,"
                    " latest_failing_json = CASE WHEN ?2 = 'failed' THEN ?1 ELSE latest_failing_json END"
                    " WHERE id = ?3",
                    summary_rows,
                )
            if event_rows:
                await conn.executemany(
                    "INSERT INTO events(gseq, run_id, seq, type, child_id, body_json, created_at)"
                    " VALUES (?,?,?,?,?,?,?)",
                    event_rows,
                )
            await conn.executemany(
                "UPDATE runs SET status = ?, started_at = ?, c_queued = ?, c_running = ?, c_completed = ?,"
                " c_error = ?, o_passed = ?, o_failed = ?, o_blocked = ?, score_sum = ?, stats_json = ?,"
                " last_seq = ? WHERE id = ?",
                [
                    (
                        st["status"],
                        st["started_at"],
                        st["c_queued"],
                        st["c_running"],
                        st["c_completed"],
                        st["c_error"],
                        st["o_passed"],
                        st["o_failed"],
                        st["o_blocked"],
                        st["score_sum"],
                        dumps(st["stats"]),
                        st["last_seq"],
                        rid,
                    )
                    for rid, st in states.items()
                ],
            )
        return events

    async def open_count(self, run_id: str) -> int:
        row = await self.db.fetchone("SELECT c_pending + c_queued + c_running AS n FROM runs WHERE id = ?", (run_id,))
        return int(row["n"]) if row else 0

    async def requeue_interrupted(self) -> int:
        """At start-up: children claimed or running when the process died go back to pending."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE children SET status = 'pending', started_at = NULL, attempt = attempt + 1"
                " WHERE status IN ('queued','running')"
            )
            n = int(cur.rowcount)
            await conn.execute(
                "UPDATE runs SET c_pending = c_pending + c_queued + c_running, c_queued = 0, c_running = 0"
                " WHERE status IN ('pending','queued','running')"
            )
        return n

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

    async def completed_for_run(self, run_id: str, after_position: int, limit: int) -> list[Row]:
        rows = await self.db.fetchall(
            "SELECT id, position, document_id, status, score, result_json FROM children WHERE run_id = ?"
            " AND position > ? ORDER BY position LIMIT ?",
            (run_id, after_position, limit),
        )
        return [decode_child(r) for r in rows]

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
                f"SELECT document_id, result_json FROM children WHERE run_id = ? AND status = 'completed'"
                f" AND document_id IN ({','.join('?' * len(chunk))})",
                [run_id, *chunk],
            )
            for r in rows:
                out[r["document_id"]] = (loads(r["result_json"], {}) or {}).get("consensus")
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
