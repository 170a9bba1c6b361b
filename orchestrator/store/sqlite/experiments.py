"""Experiments and their document sets."""

from __future__ import annotations

import sqlite3
from typing import Any

from orchestrator.core.planning import DocumentSet
from orchestrator.core.planning import document_filename as document_filename  # used by other stores
from orchestrator.errors import NotFound
from orchestrator.ids import new_id, now_iso
from orchestrator.store.records import Documents, Page, PageRequest, Row
from orchestrator.store.sqlite.db import Database, one
from orchestrator.store.sqlite.jsoncol import loads
from orchestrator.store.sqlite.paging import Where, page


def _get(conn: sqlite3.Connection, experiment_id: str) -> Row:
    row = one(conn, "SELECT * FROM experiments WHERE id = ?", (experiment_id,))
    if row is None:
        raise NotFound(f"Experiment {experiment_id} not found", details={"experiment_id": experiment_id})
    return row


def _insert_documents(conn: sqlite3.Connection, experiment_id: str, documents: DocumentSet) -> None:
    # One statement per chunk of the set's rows, however many documents (see db.py).
    position = 0
    for chunk in documents.chunks:
        position += conn.execute(
            "INSERT INTO experiment_documents(id, experiment_id, position, filename, handle_inputs_json,"
            " provenance_json) SELECT 'expdoc_' || lower(hex(randomblob(9))), ?, ? + j.key, j.value ->> 0,"
            " j.value -> 1, nullif(j.value -> 2, 'null') FROM json_each(?) AS j",
            (experiment_id, position, chunk.decode()),
        ).rowcount


def _document_set(documents: Documents) -> DocumentSet:
    return documents if isinstance(documents, DocumentSet) else DocumentSet.of(documents)


class ExperimentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, *, workflow_id: str, block_id: str, name: str, n_consensus: int, documents: Documents
    ) -> Row:
        eid = new_id("exp")
        ts = now_iso()
        docs = _document_set(documents)

        def tx(conn: sqlite3.Connection) -> Row:
            conn.execute(
                "INSERT INTO experiments(id, workflow_id, block_id, name, n_consensus, document_count,"
                " documents_fingerprint, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (eid, workflow_id, block_id, name, n_consensus, docs.count, docs.fingerprint, ts, ts),
            )
            _insert_documents(conn, eid, docs)
            return _get(conn, eid)

        return await self.db.write(tx)

    async def get(self, experiment_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM experiments WHERE id = ?", (experiment_id,))
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

        def tx(conn: sqlite3.Connection) -> Row:
            _get(conn, experiment_id)
            if not sets:
                return _get(conn, experiment_id)  # an empty update changes nothing, not even updated_at
            cols = ", ".join(f"{k} = ?" for k in sets)
            sql = f"UPDATE experiments SET {cols}, updated_at = ? WHERE id = ?"
            conn.execute(sql, (*sets.values(), now_iso(), experiment_id))
            if docs is not None:
                conn.execute("DELETE FROM experiment_documents WHERE experiment_id = ?", (experiment_id,))
                _insert_documents(conn, experiment_id, docs)
            return _get(conn, experiment_id)

        return await self.db.write(tx)

    async def delete(self, experiment_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE experiment_id = ?)", (experiment_id,)
            )
            conn.execute("DELETE FROM runs WHERE experiment_id = ?", (experiment_id,))
            conn.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))

        await self.db.write(tx)

    async def documents(self, experiment_id: str) -> list[Row]:
        rows = await self.db.fetchall(
            "SELECT * FROM experiment_documents WHERE experiment_id = ? ORDER BY position", (experiment_id,)
        )
        for r in rows:
            r["handle_inputs"] = loads(r.pop("handle_inputs_json"), {})
            r["provenance"] = loads(r.pop("provenance_json"))
        return rows

    async def document(self, document_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM experiment_documents WHERE id = ?", (document_id,))
        if row is None:
            raise NotFound(f"Document {document_id} not found", details={"document_id": document_id})
        row["handle_inputs"] = loads(row.pop("handle_inputs_json"), {})
        return row
