"""Experiments and their document sets."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import NotFound
from orchestrator.ids import fingerprint, new_id, now_iso
from orchestrator.store.sqlite.db import Database, Row
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.paging import Page, PageRequest, page


def document_filename(handle_inputs: dict[str, Any], position: int) -> str:
    for payload in handle_inputs.values():
        if isinstance(payload, dict) and isinstance(payload.get("document"), dict):
            name = payload["document"].get("filename")
            if name:
                return str(name)
    return f"document-{position + 1}.json"


def documents_fingerprint(documents: list[dict[str, Any]]) -> str:
    return fingerprint([d.get("handle_inputs", {}) for d in documents])


class ExperimentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, *, workflow_id: str, block_id: str, name: str, n_consensus: int, documents: list[dict[str, Any]]
    ) -> Row:
        eid = new_id("exp")
        ts = now_iso()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO experiments(id, workflow_id, block_id, name, n_consensus, document_count,"
                " documents_fingerprint, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    eid,
                    workflow_id,
                    block_id,
                    name,
                    n_consensus,
                    len(documents),
                    documents_fingerprint(documents),
                    ts,
                    ts,
                ),
            )
            await self._insert_documents(conn, eid, documents)
        return await self.get(eid)

    async def _insert_documents(self, conn: Any, experiment_id: str, documents: list[dict[str, Any]]) -> None:
        await conn.executemany(
            "INSERT INTO experiment_documents(id, experiment_id, position, filename, handle_inputs_json,"
            " provenance_json) VALUES (?,?,?,?,?,?)",
            [
                (
                    new_id("expdoc"),
                    experiment_id,
                    i,
                    document_filename(d.get("handle_inputs", {}), i),
                    dumps(d.get("handle_inputs", {})),
                    dumps(d.get("provenance")),
                )
                for i, d in enumerate(documents)
            ],
        )

    async def get(self, experiment_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM experiments WHERE id = ?", (experiment_id,))
        if row is None:
            raise NotFound(f"Experiment {experiment_id} not found", details={"experiment_id": experiment_id})
        return row

    async def list_page(self, workflow_id: str, req: PageRequest, *, block_id: str | None) -> Page:
        where, params = ["workflow_id = ?"], [workflow_id]
        if block_id:
            where.append("block_id = ?")
            params.append(block_id)
        return await page(self.db, "experiments", where, params, req)

    async def update(
        self, experiment_id: str, *, name: str | None, n_consensus: int | None, documents: list[dict[str, Any]] | None
    ) -> Row:
        await self.get(experiment_id)
        sets: dict[str, Any] = {}
        if name is not None:
            sets["name"] = name
        if n_consensus is not None:
            sets["n_consensus"] = n_consensus
        if documents is not None:
            sets["document_count"] = len(documents)
            sets["documents_fingerprint"] = documents_fingerprint(documents)
        if not sets:
            return await self.get(experiment_id)  # an empty update changes nothing, not even updated_at
        sets["updated_at"] = now_iso()
        cols = ", ".join(f"{k} = ?" for k in sets)
        async with self.db.transaction() as conn:
            await conn.execute(f"UPDATE experiments SET {cols} WHERE id = ?", (*sets.values(), experiment_id))
            if documents is not None:
                await conn.execute("DELETE FROM experiment_documents WHERE experiment_id = ?", (experiment_id,))
                await self._insert_documents(conn, experiment_id, documents)
        return await self.get(experiment_id)

    async def delete(self, experiment_id: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE experiment_id = ?)", (experiment_id,)
            )
            await conn.execute("DELETE FROM runs WHERE experiment_id = ?", (experiment_id,))
            await conn.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))

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

    async def set_last_run(self, conn: Any, experiment_id: str, run_id: str) -> None:
        await conn.execute("UPDATE experiments SET last_run_id = ? WHERE id = ?", (run_id, experiment_id))
