"""Experiments and their document sets."""

from __future__ import annotations

from typing import Any

from orchestrator.core.planning import DocumentSet
from orchestrator.errors import NotFound
from orchestrator.ids import new_id, now_iso
from orchestrator.store.postgres.db import Conn, Database, affected, one
from orchestrator.store.postgres.paging import Where, page
from orchestrator.store.records import Documents, Page, PageRequest, Row
from orchestrator.store.sqlite.jsoncol import loads


async def _get(conn: Conn, experiment_id: str) -> Row:
    row = await one(conn, "SELECT * FROM experiments WHERE id = $1", experiment_id)
    if row is None:
        raise NotFound(f"Experiment {experiment_id} not found", details={"experiment_id": experiment_id})
    return row


async def _insert_documents(conn: Conn, experiment_id: str, documents: DocumentSet) -> None:
    # One statement per chunk of the set's encoded rows ([filename, handle_inputs, provenance]), expanded by
    # the server: however many documents, Python never holds them as objects, nor sends one row at a time.
    position = 0
    for chunk in documents.chunks:
        position += affected(
            await conn.execute(
                "INSERT INTO experiment_documents(id, experiment_id, position, filename, handle_inputs_json,"
                " provenance_json) SELECT 'expdoc_' || substr(md5(random()::text || e.i::text), 1, 18), $1,"
                " $2 + e.i - 1, e.v ->> 0, (e.v -> 1)::text, nullif((e.v -> 2)::text, 'null')"
                " FROM json_array_elements($3::json) WITH ORDINALITY AS e(v, i)",
                experiment_id,
                position,
                chunk.decode(),
            )
        )


def _document_set(documents: Documents) -> DocumentSet:
    return documents if isinstance(documents, DocumentSet) else DocumentSet.of(documents)


def _document(row: Row) -> Row:
    row["handle_inputs"] = loads(row.pop("handle_inputs_json"), {})
    row["provenance"] = loads(row.pop("provenance_json"))
    return row


class ExperimentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, *, workflow_id: str, block_id: str, name: str, n_consensus: int, documents: Documents
    ) -> Row:
        eid = new_id("exp")
        ts = now_iso()
        docs = _document_set(documents)

        async def tx(conn: Conn) -> Row:
            await conn.execute(
                "INSERT INTO experiments(id, workflow_id, block_id, name, n_consensus, document_count,"
                " documents_fingerprint, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                eid,
                workflow_id,
                block_id,
                name,
                n_consensus,
                docs.count,
                docs.fingerprint,
                ts,
            )
            await _insert_documents(conn, eid, docs)
            return await _get(conn, eid)

        return await self.db.write(tx)

    async def get(self, experiment_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM experiments WHERE id = $1", experiment_id)
        if row is None:
            raise NotFound(f"Experiment {experiment_id} not found", details={"experiment_id": experiment_id})
        return row

    async def list_page(self, workflow_id: str, req: PageRequest, *, block_id: str | None) -> Page[Row]:
        return await page(self.db, "experiments", Where().eq("workflow_id", workflow_id).eq("block_id", block_id), req)

    async def update(
        self, experiment_id: str, *, name: str | None, n_consensus: int | None, documents: Documents | None
    ) -> Row:
        sets: dict[str, Any] = {}
        if name is not None:
            sets["name"] = name
        if n_consensus is not None:
            sets["n_consensus"] = n_consensus
        docs = _document_set(documents) if documents is not None else None
        if docs is not None:
            sets["document_count"] = docs.count
            sets["documents_fingerprint"] = docs.fingerprint

        async def tx(conn: Conn) -> Row:
            await _get(conn, experiment_id)
            if not sets:
                return await _get(conn, experiment_id)  # an empty update changes nothing, not even updated_at
            cols = ", ".join(f"{k} = ${i + 1}" for i, k in enumerate(sets))
            n = len(sets)
            sql = f"UPDATE experiments SET {cols}, updated_at = ${n + 1} WHERE id = ${n + 2}"
            await conn.execute(sql, *sets.values(), now_iso(), experiment_id)
            if docs is not None:
                await conn.execute("DELETE FROM experiment_documents WHERE experiment_id = $1", experiment_id)
                await _insert_documents(conn, experiment_id, docs)
            return await _get(conn, experiment_id)

        return await self.db.write(tx)

    async def delete(self, experiment_id: str) -> None:
        async def tx(conn: Conn) -> None:
            runs = "SELECT id FROM runs WHERE experiment_id = $1"
            await conn.execute(f"DELETE FROM events WHERE run_id IN ({runs})", experiment_id)
            await conn.execute("DELETE FROM runs WHERE experiment_id = $1", experiment_id)
            await conn.execute("DELETE FROM experiments WHERE id = $1", experiment_id)

        await self.db.write(tx)

    async def documents(self, experiment_id: str) -> list[Row]:
        rows = await self.db.fetchall(
            "SELECT * FROM experiment_documents WHERE experiment_id = $1 ORDER BY position", experiment_id
        )
        return [_document(r) for r in rows]

    async def document(self, document_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM experiment_documents WHERE id = $1", document_id)
        if row is None:
            raise NotFound(f"Document {document_id} not found", details={"document_id": document_id})
        row["handle_inputs"] = loads(row.pop("handle_inputs_json"), {})
        return row
