"""Documents of an experiment run by score, a page at a time: the summary's document list without reading
(or decoding) a consensus record."""

from __future__ import annotations

from typing import Any

from orchestrator.ids import now_iso
from orchestrator.store.postgres.db import Conn, Database
from orchestrator.store.records import Row, ScoreCursor
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.scores import decode_digest

_SELECT = (
    "SELECT c.document_id, coalesce(d.filename, '') AS filename, c.score, c.position"
    " FROM children c LEFT JOIN experiment_documents d ON d.id = c.document_id"
    " WHERE c.run_id = $1 AND c.status = 'completed' AND c.score IS NOT NULL"
)


class ScoreStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(self, run_id: str, cursor: ScoreCursor, limit: int) -> list[Row]:
        if cursor.by_score:
            if cursor.score is None:
                sql = _SELECT + " ORDER BY c.score, c.position LIMIT $2"
                return await self.db.fetchall(sql, run_id, limit)
            sql = _SELECT + " AND (c.score, c.position) > ($2, $3) ORDER BY c.score, c.position LIMIT $4"
            return await self.db.fetchall(sql, run_id, cursor.score, cursor.position, limit)
        sql = _SELECT + " AND c.position > $2 ORDER BY c.position LIMIT $3"
        return await self.db.fetchall(sql, run_id, cursor.position, limit)

    async def of_documents(self, run_id: str, document_ids: list[str]) -> dict[str, float]:
        rows = await self.db.fetchall(
            "SELECT document_id, score FROM children WHERE run_id = $1 AND status = 'completed'"
            " AND score IS NOT NULL AND document_id = ANY($2::text[])",
            run_id,
            document_ids,
        )
        return {r["document_id"]: float(r["score"]) for r in rows}

    async def digests(self, run_id: str, after_position: int, limit: int) -> list[Row]:
        """One page of a run's scored children in position order: position, document_id, score, the
        stored `digest` (core.metrics.digest) and, only where none was stored (older rows), the `record`."""
        rows = await self.db.fetchall(
            "SELECT position, document_id, score, digest_json AS digest,"
            " CASE WHEN digest_json IS NULL THEN (result_json::json -> 'consensus')::text END AS record"
            " FROM children WHERE run_id = $1 AND status = 'completed' AND score IS NOT NULL AND position > $2"
            " ORDER BY position LIMIT $3",
            run_id,
            after_position,
            limit,
        )
        return [decode_digest(r) for r in rows]

    async def of_run(self, run_id: str) -> dict[str, float]:
        """document id → score of every scored child of `run_id` (the prior run's side of a summary)."""
        rows = await self.db.fetchall(
            "SELECT document_id, score FROM children WHERE run_id = $1 AND status = 'completed' AND score IS NOT NULL",
            run_id,
        )
        return {r["document_id"]: float(r["score"]) for r in rows}

    async def aggregate(self, run_id: str, key: str) -> dict[str, Any] | None:
        """The kept aggregate `key` of a finished run, or None."""
        row = await self.db.fetchone("SELECT body_json FROM run_aggregates WHERE run_id = $1 AND key = $2", run_id, key)
        return None if row is None else dict(loads(row["body_json"]))

    async def keep_aggregate(self, run_id: str, key: str, body: dict[str, Any]) -> None:
        """Keep a finished run's aggregate (the first one kept stands: it is the same computation)."""
        args = (run_id, key, dumps(body), now_iso())

        async def insert(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO run_aggregates(run_id, key, body_json, created_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING",
                *args,
            )

        await self.db.write(insert)
