"""Saved evals / saved tests: one table, two wire dialects."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import NotFound
from orchestrator.ids import new_id, now_iso
from orchestrator.store.postgres.db import Conn, Database, one
from orchestrator.store.postgres.paging import Where, page
from orchestrator.store.records import Page, PageRequest, Row
from orchestrator.store.sqlite.jsoncol import dumps, loads


def _check(row: Row) -> Row:
    for col in ("source", "assertion", "latest", "latest_passing", "latest_failing"):
        row[col] = loads(row.pop(f"{col}_json"))
    return row


def _missing(check_id: str, noun: str) -> NotFound:
    return NotFound(f"{noun} {check_id} not found", details={f"{noun.lower()}_id": check_id})


async def _get(conn: Conn, check_id: str, workflow_id: str | None = None, noun: str = "Eval") -> Row:
    row = await one(conn, "SELECT * FROM checks WHERE id = $1", check_id)
    if row is None or (workflow_id and row["workflow_id"] != workflow_id):
        raise _missing(check_id, noun)
    return _check(row)


class CheckStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        prefix: str,
        workflow_id: str,
        block_id: str,
        name: str | None,
        source: dict[str, Any],
        assertion: dict[str, Any],
    ) -> Row:
        cid = new_id(prefix)
        ts = now_iso()

        async def tx(conn: Conn) -> Row:
            await conn.execute(
                "INSERT INTO checks(id, workflow_id, block_id, name, source_json, assertion_json, created_at,"
                " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                cid,
                workflow_id,
                block_id,
                name,
                dumps(source),
                dumps(assertion),
                ts,
            )
            return await _get(conn, cid)

        return await self.db.write(tx)

    async def get(self, check_id: str, workflow_id: str | None = None, *, noun: str = "Eval") -> Row:
        row = await self.db.fetchone("SELECT * FROM checks WHERE id = $1", check_id)
        if row is None or (workflow_id and row["workflow_id"] != workflow_id):
            raise _missing(check_id, noun)
        return _check(row)

    async def list_page(self, workflow_id: str, req: PageRequest, *, block_id: str | None) -> Page[Row]:
        p = await page(self.db, "checks", Where().eq("workflow_id", workflow_id).eq("block_id", block_id), req)
        p.rows = [_check(r) for r in p.rows]
        return p

    async def for_scope(self, workflow_id: str, *, check_id: str | None, block_id: str | None) -> list[Row]:
        where = Where().eq("workflow_id", workflow_id).eq("id", check_id).eq("block_id", block_id)
        rows = await self.db.fetchall(f"SELECT * FROM checks WHERE {where} ORDER BY n", *where.params)
        return [_check(r) for r in rows]

    async def update(self, check_id: str, changes: dict[str, Any]) -> Row:
        sets: dict[str, Any] = {}
        if "name" in changes:
            sets["name"] = changes["name"]
        for col in ("source", "assertion"):
            if col in changes:
                sets[f"{col}_json"] = dumps(changes[col])

        async def tx(conn: Conn) -> Row:
            await _get(conn, check_id)
            if sets:
                cols = ", ".join(f"{k} = ${i + 1}" for i, k in enumerate(sets))
                n = len(sets)
                sql = f"UPDATE checks SET {cols}, updated_at = ${n + 1} WHERE id = ${n + 2}"
                await conn.execute(sql, *sets.values(), now_iso(), check_id)
            return await _get(conn, check_id)

        return await self.db.write(tx)

    async def delete(self, check_id: str, workflow_id: str | None = None, *, noun: str = "Eval") -> None:
        async def tx(conn: Conn) -> None:
            await _get(conn, check_id, workflow_id, noun)
            await conn.execute("DELETE FROM checks WHERE id = $1", check_id)

        await self.db.write(tx)
