"""Workflows, blocks and edges."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import Conflict, NotFound
from orchestrator.ids import new_id, now_iso
from orchestrator.store.postgres.db import Conn, Database, one
from orchestrator.store.postgres.paging import Where, page
from orchestrator.store.records import Page, PageRequest, Row
from orchestrator.store.sqlite.jsoncol import dumps, loads


def _workflow(row: Row) -> Row:
    row["published"] = loads(row.pop("published_json"))
    return row


def _block(row: Row) -> Row:
    row["config"] = loads(row.pop("config_json"))
    return row


async def _get_workflow(conn: Conn, workflow_id: str) -> Row:
    row = await one(conn, "SELECT * FROM workflows WHERE id = $1", workflow_id)
    if row is None:
        raise NotFound(f"Workflow {workflow_id} not found", details={"workflow_id": workflow_id})
    return _workflow(row)


async def _get_block(conn: Conn, block_id: str, workflow_id: str | None = None) -> Row:
    row = await one(conn, "SELECT * FROM blocks WHERE id = $1", block_id)
    if row is None or (workflow_id and row["workflow_id"] != workflow_id):
        raise NotFound(f"Block {block_id} not found", details={"block_id": block_id})
    return _block(row)


async def _get_edge(conn: Conn, edge_id: str, workflow_id: str | None = None) -> Row:
    row = await one(conn, "SELECT * FROM edges WHERE id = $1", edge_id)
    if row is None or (workflow_id and row["workflow_id"] != workflow_id):
        raise NotFound(f"Edge {edge_id} not found", details={"edge_id": edge_id})
    return row


async def _touch(conn: Conn, workflow_id: str, ts: str) -> None:
    await conn.execute("UPDATE workflows SET updated_at = $1 WHERE id = $2", ts, workflow_id)


async def _update_workflow(conn: Conn, workflow_id: str, sets: dict[str, Any]) -> Row:
    await _get_workflow(conn, workflow_id)
    if sets:
        cols = ", ".join(f"{k} = ${i + 1}" for i, k in enumerate(sets))
        n = len(sets)
        sql = f"UPDATE workflows SET {cols}, updated_at = ${n + 1} WHERE id = ${n + 2}"
        await conn.execute(sql, *sets.values(), now_iso(), workflow_id)
    return await _get_workflow(conn, workflow_id)


class WorkflowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_workflow(
        self,
        *,
        name: str,
        description: str,
        project_id: str | None,
        workflow_id: str | None = None,
        start_block_id: str | None = None,
    ) -> Row:
        wid = workflow_id or new_id("wf")
        ts = now_iso()

        async def tx(conn: Conn) -> Row:
            await conn.execute(
                "INSERT INTO workflows(id, name, description, project_id, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $5)",
                wid,
                name,
                description,
                project_id,
                ts,
            )
            await conn.execute(
                "INSERT INTO blocks(id, workflow_id, type, label, config_json, created_at, updated_at)"
                " VALUES ($1, $2, 'start_document', 'Document', NULL, $3, $3)",
                start_block_id or new_id("blk"),
                wid,
                ts,
            )
            return await _get_workflow(conn, wid)

        return await self.db.write(tx)

    async def get_workflow(self, workflow_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM workflows WHERE id = $1", workflow_id)
        if row is None:
            raise NotFound(f"Workflow {workflow_id} not found", details={"workflow_id": workflow_id})
        return _workflow(row)

    async def list_workflows(self, req: PageRequest, *, project_id: str | None, sort_by: str) -> Page[Row]:
        sort = "created_at" if sort_by == "created_at" else "updated_at"
        p = await page(self.db, "workflows", Where().eq("project_id", project_id), req, sort=sort)
        p.rows = [_workflow(r) for r in p.rows]
        return p

    async def update_workflow(self, workflow_id: str, changes: dict[str, Any]) -> Row:
        sets = {k: v for k, v in changes.items() if k in ("name", "description", "published_json")}
        return await self.db.write(lambda conn: _update_workflow(conn, workflow_id, sets))

    async def set_published(self, workflow_id: str, published: dict[str, Any]) -> Row:
        sets = {"published_json": dumps(published)}
        return await self.db.write(lambda conn: _update_workflow(conn, workflow_id, sets))

    async def delete_workflow(self, workflow_id: str) -> None:
        async def tx(conn: Conn) -> None:
            await _get_workflow(conn, workflow_id)
            await conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE workflow_id = $1)", workflow_id
            )
            await conn.execute("DELETE FROM workflows WHERE id = $1", workflow_id)

        await self.db.write(tx)

    async def create_block(self, workflow_id: str, fields: dict[str, Any]) -> Row:
        bid = fields.get("id") or new_id("blk")
        ts = now_iso()

        async def tx(conn: Conn) -> Row:
            await _get_workflow(conn, workflow_id)
            if await one(conn, "SELECT 1 AS x FROM blocks WHERE id = $1", bid):
                raise Conflict(f"Block id {bid} is already in use", code="block_id_conflict", details={"block_id": bid})
            await conn.execute(
                "INSERT INTO blocks(id, workflow_id, type, label, position_x, position_y, width, height,"
                " config_json, parent_id, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$11)",
                bid,
                workflow_id,
                fields["type"],
                fields.get("label") or "",
                float(fields.get("position_x") or 0),
                float(fields.get("position_y") or 0),
                _float(fields.get("width")),
                _float(fields.get("height")),
                dumps(fields.get("config")),
                fields.get("parent_id"),
                ts,
            )
            await _touch(conn, workflow_id, ts)
            return await _get_block(conn, bid)

        return await self.db.write(tx)

    async def get_block(self, block_id: str, workflow_id: str | None = None) -> Row:
        row = await self.db.fetchone("SELECT * FROM blocks WHERE id = $1", block_id)
        if row is None or (workflow_id and row["workflow_id"] != workflow_id):
            raise NotFound(f"Block {block_id} not found", details={"block_id": block_id})
        return _block(row)

    async def list_blocks(self, workflow_id: str, req: PageRequest) -> Page[Row]:
        await self.get_workflow(workflow_id)
        p = await page(self.db, "blocks", Where().eq("workflow_id", workflow_id), req, sort="updated_at")
        p.rows = [_block(r) for r in p.rows]
        return p

    async def all_blocks(self, workflow_id: str) -> list[Row]:
        rows = await self.db.fetchall("SELECT * FROM blocks WHERE workflow_id = $1 ORDER BY n", workflow_id)
        return [_block(r) for r in rows]

    async def update_block(self, block_id: str, changes: dict[str, Any]) -> Row:
        sets: dict[str, Any] = {}
        for key in ("label", "position_x", "position_y", "width", "height", "parent_id"):
            if key in changes:
                value = changes[key]
                sets[key] = _float(value) if key in ("position_x", "position_y", "width", "height") else value
        if "config" in changes:
            sets["config_json"] = dumps(changes["config"])

        async def tx(conn: Conn) -> Row:
            current = await _get_block(conn, block_id)
            if sets:
                ts = now_iso()
                cols = ", ".join(f"{k} = ${i + 1}" for i, k in enumerate(sets))
                n = len(sets)
                await conn.execute(
                    f"UPDATE blocks SET {cols}, updated_at = ${n + 1} WHERE id = ${n + 2}", *sets.values(), ts, block_id
                )
                await _touch(conn, current["workflow_id"], ts)
            return await _get_block(conn, block_id)

        return await self.db.write(tx)

    async def delete_block(self, block_id: str, workflow_id: str | None = None) -> None:
        async def tx(conn: Conn) -> None:
            block = await _get_block(conn, block_id, workflow_id)
            await conn.execute(
                "DELETE FROM edges WHERE workflow_id = $1 AND (source_block = $2 OR target_block = $2)",
                block["workflow_id"],
                block_id,
            )
            await conn.execute("DELETE FROM blocks WHERE id = $1", block_id)
            await _touch(conn, block["workflow_id"], now_iso())

        await self.db.write(tx)

    async def create_edge(self, workflow_id: str, fields: dict[str, Any]) -> Row:
        eid = fields.get("id") or new_id("edge")
        ts = now_iso()

        async def tx(conn: Conn) -> Row:
            await _get_workflow(conn, workflow_id)
            for end in ("source_block", "target_block"):
                await _get_block(conn, fields[end], workflow_id)
            if await one(conn, "SELECT 1 AS x FROM edges WHERE id = $1", eid):
                raise Conflict(f"Edge id {eid} is already in use", details={"edge_id": eid})
            await conn.execute(
                "INSERT INTO edges(id, workflow_id, source_block, target_block, source_handle, target_handle,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                eid,
                workflow_id,
                fields["source_block"],
                fields["target_block"],
                fields.get("source_handle"),
                fields.get("target_handle"),
                ts,
            )
            await _touch(conn, workflow_id, ts)
            return await _get_edge(conn, eid)

        return await self.db.write(tx)

    async def get_edge(self, edge_id: str, workflow_id: str | None = None) -> Row:
        row = await self.db.fetchone("SELECT * FROM edges WHERE id = $1", edge_id)
        if row is None or (workflow_id and row["workflow_id"] != workflow_id):
            raise NotFound(f"Edge {edge_id} not found", details={"edge_id": edge_id})
        return row

    async def list_edges(
        self, workflow_id: str, req: PageRequest, *, source_block: str | None, target_block: str | None
    ) -> Page[Row]:
        await self.get_workflow(workflow_id)
        where = Where().eq("workflow_id", workflow_id).eq("source_block", source_block).eq("target_block", target_block)
        return await page(self.db, "edges", where, req)

    async def all_edges(self, workflow_id: str) -> list[Row]:
        return await self.db.fetchall("SELECT * FROM edges WHERE workflow_id = $1 ORDER BY n", workflow_id)

    async def delete_edge(self, edge_id: str) -> None:
        async def tx(conn: Conn) -> None:
            edge = await _get_edge(conn, edge_id)
            await conn.execute("DELETE FROM edges WHERE id = $1", edge_id)
            await _touch(conn, edge["workflow_id"], now_iso())

        await self.db.write(tx)


def _float(value: Any) -> float | None:
    """SQLite takes any number for a REAL column; asyncpg wants a float for double precision."""
    return None if value is None else float(value)
