"""Documents of an experiment run by score, a page at a time: the summary's document list without reading
(or decoding) a consensus record."""

from __future__ import annotations

from orchestrator.store.records import Row, ScoreCursor
from orchestrator.store.sqlite.db import Database

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
