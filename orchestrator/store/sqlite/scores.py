"""Documents of an experiment run by score, a page at a time: the summary's document list without reading
(or decoding) a consensus record."""

from __future__ import annotations

from typing import Any

from orchestrator.ids import now_iso
from orchestrator.store.records import Row, ScoreCursor
from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.jsoncol import dumps, loads

_SELECT = (
    "SELECT c.document_id, coalesce(d.filename, '') AS filename, c.score, c.position"
    " FROM children c LEFT JOIN experiment_documents d ON d.id = c.document_id"
    " WHERE c.run_id = ? AND c.status = 'completed' AND c.score IS NOT NULL"
)


class ScoreStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(self, run_id: str, cursor: ScoreCursor, limit: int) -> list[Row]:
        if cursor.by_score:
            sql = _SELECT + " AND (? IS NULL OR c.score > ? OR (c.score = ? AND c.position > ?))"
            sql += " ORDER BY c.score, c.position LIMIT ?"
            params: list[object] = [cursor.score, cursor.score, cursor.score, cursor.position, limit]
        else:
            sql = _SELECT + " AND c.position > ? ORDER BY c.position LIMIT ?"
            params = [cursor.position, limit]
        return await self.db.fetchall(sql, [run_id, *params])

    async def of_documents(self, run_id: str, document_ids: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in range(0, len(document_ids), 500):
            chunk = document_ids[i : i + 500]
            rows = await self.db.fetchall(
                "SELECT document_id, score FROM children WHERE run_id = ? AND status = 'completed'"
                f" AND score IS NOT NULL AND document_id IN ({','.join('?' * len(chunk))})",
                [run_id, *chunk],
            )
            out.update({r["document_id"]: float(r["score"]) for r in rows})
        return out

    async def digests(self, run_id: str, after_position: int, limit: int) -> list[Row]:
        """One page of a run's scored children in position order: position, document_id, score, the
        stored `digest` (core.metrics.digest) and, only where none was stored (older rows), the `record`."""
        rows = await self.db.fetchall(
            "SELECT position, document_id, score, digest_json AS digest,"
            " CASE WHEN digest_json IS NULL THEN json_extract(result_json, '$.consensus') END AS record"
            " FROM children WHERE run_id = ? AND status = 'completed' AND score IS NOT NULL AND position > ?"
            " ORDER BY position LIMIT ?",
            (run_id, after_position, limit),
        )
        return [decode_digest(r) for r in rows]

    async def of_run(self, run_id: str) -> dict[str, float]:
        """document id → score of every scored child of `run_id` (the prior run's side of a summary)."""
        rows = await self.db.fetchall(
            "SELECT document_id, score FROM children WHERE run_id = ? AND status = 'completed' AND score IS NOT NULL",
            (run_id,),
        )
        return {r["document_id"]: float(r["score"]) for r in rows}

    async def aggregate(self, run_id: str, key: str) -> dict[str, Any] | None:
        """The kept aggregate `key` of a finished run, or None."""
        row = await self.db.fetchone("SELECT body_json FROM run_aggregates WHERE run_id = ? AND key = ?", (run_id, key))
        return None if row is None else dict(loads(row["body_json"]))

    async def keep_aggregate(self, run_id: str, key: str, body: dict[str, Any]) -> None:
        """Keep a finished run's aggregate (the first one kept stands: it is the same computation)."""
        args = (run_id, key, dumps(body), now_iso())
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO run_aggregates(run_id, key, body_json, created_at) VALUES (?,?,?,?)"
                " ON CONFLICT DO NOTHING",
                args,
            )
        )


def decode_digest(row: Row) -> Row:
    """A `digests` row with its JSON columns decoded (both stores)."""
    row["digest"], row["record"] = loads(row["digest"]), loads(row["record"])
    return row
