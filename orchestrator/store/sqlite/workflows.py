"""Workflows, blocks and edges."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import Conflict, NotFound
from orchestrator.ids import new_id, now_iso
from orchestrator.store.sqlite.db import Database, Row
from orchestrator.store.sqlite.jsoncol import dumps, loads
from orchestrator.store.sqlite.paging import Page, PageRequest, page


def _block(row: Row) -> Row:
    row["config"] = loads(row.pop("config_json"))
    return row


class WorkflowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- workflows
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
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO workflows(id, name, description, project_id, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                (wid, name, description, project_id, ts, ts),
            )
            await conn.execute(
                "INSERT INTO blocks(id, workflow_id, type, label, config_json, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (start_block_id or new_id("blk"), wid, "start_document", "Document", None, ts, ts),
            )
        return await self.get_workflow(wid)

    async def get_workflow(self, workflow_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM workflows WHERE id = ?", (workflow_id,))
        if row is None:
            raise NotFound(f"Workflow {workflow_id} not found", details={"workflow_id": workflow_id})
        row["published"] = loads(row.pop("published_json"))
        return row

    async def list_workflows(self, req: PageRequest, *, project_id: str | None, sort_by: str) -> Page:
        where, params = [], []
        if project_id:
            where.append("project_id = ?")
            params.append(project_id)
        sort = "created_at" if sort_by == "created_at" else "updated_at"
        p = await page(self.db, "workflows", where, params, req, sort=sort)
        for row in p.rows:
            row["published"] = loads(row.pop("published_json"))
        return p

    async def update_workflow(self, workflow_id: str, changes: dict[str, Any]) -> Row:
        await self.get_workflow(workflow_id)
        sets = {k: v for k, v in changes.items() if k in ("name", "description", "published_json")}
        if sets:
            sets["updated_at"] = now_iso()
            cols = ", ".join(f"{k} = ?" for k in sets)
            async with self.db.transaction() as conn:
                await conn.execute(f"UPDATE workflows SET {cols} WHERE id = ?", (*sets.values(), workflow_id))
        return await self.get_workflow(workflow_id)

    async def delete_workflow(self, workflow_id: str) -> None:
        await self.get_workflow(workflow_id)
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE workflow_id = ?)", (workflow_id,)
            )
            await conn.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))

    async def touch(self, conn: Any, workflow_id: str, ts: str) -> None:
        await conn.execute("UPDATE workflows SET updated_at = ? WHERE id = ?", (ts, workflow_id))

    # -- blocks
    async def create_block(self, workflow_id: str, fields: dict[str, Any]) -> Row:
        await self.get_workflow(workflow_id)
        bid = fields.get("id") or new_id("blk")
        if await self.db.fetchone("SELECT 1 AS x FROM blocks WHERE id = ?", (bid,)):
            raise Conflict(f"Block id {bid} is already in use", code="block_id_conflict", details={"block_id": bid})
        ts = now_iso()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO blocks(id, workflow_id, type, label, position_x, position_y, width, height,"
                " config_json, parent_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    bid,
                    workflow_id,
                    fields["type"],
                    fields.get("label") or "",
                    fields.get("position_x") or 0,
                    fields.get("position_y") or 0,
                    fields.get("width"),
                    fields.get("height"),
                    dumps(fields.get("config")),
                    fields.get("parent_id"),
                    ts,
                    ts,
                ),
            )
            await self.touch(conn, workflow_id, ts)
        return await self.get_block(bid)

    async def get_block(self, block_id: str, workflow_id: str | None = None) -> Row:
        row = await self.db.fetchone("SELECT * FROM blocks WHERE id = ?", (block_id,))
        if row is None or (workflow_id and row["workflow_id"] != workflow_id):
            raise NotFound(f"Block {block_id} not found", details={"block_id": block_id})
        return _block(row)

    async def list_blocks(self, workflow_id: str, req: PageRequest) -> Page:
        await self.get_workflow(workflow_id)
        p = await page(self.db, "blocks", ["workflow_id = ?"], [workflow_id], req, sort="updated_at")
        p.rows = [_block(r) for r in p.rows]
        return p

    async def all_blocks(self, workflow_id: str) -> list[Row]:
        rows = await self.db.fetchall("SELECT * FROM blocks WHERE workflow_id = ? ORDER BY n", (workflow_id,))
        return [_block(r) for r in rows]

    async def update_block(self, block_id: str, changes: dict[str, Any]) -> Row:
        current = await self.get_block(block_id)
        sets: dict[str, Any] = {}
        for key in ("label", "position_x", "position_y", "width", "height", "parent_id"):
            if key in changes:
                sets[key] = changes[key]
        if "config" in changes:
            sets["config_json"] = dumps(changes["config"])
        if sets:
            ts = now_iso()
            sets["updated_at"] = ts
            cols = ", ".join(f"{k} = ?" for k in sets)
            async with self.db.transaction() as conn:
                await conn.execute(f"UPDATE blocks SET {cols} WHERE id = ?", (*sets.values(), block_id))
                await self.touch(conn, current["workflow_id"], ts)
        return await self.get_block(block_id)

    async def delete_block(self, block_id: str, workflow_id: str | None = None) -> None:
        block = await self.get_block(block_id, workflow_id)
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM edges WHERE workflow_id = ? AND (source_block = ? OR target_block = ?)",
                (block["workflow_id"], block_id, block_id),
            )
            await conn.execute("DELETE FROM blocks WHERE id = ?", (block_id,))
            await self.touch(conn, block["workflow_id"], now_iso())

    # -- edges
    async def create_edge(self, workflow_id: str, fields: dict[str, Any]) -> Row:
        await self.get_workflow(workflow_id)
        for end in ("source_block", "target_block"):
            await self.get_block(fields[end], workflow_id)
        eid = fields.get("id") or new_id("edge")
        if await self.db.fetchone("SELECT 1 AS x FROM edges WHERE id = ?", (eid,)):
            raise Conflict(f"Edge id {eid} is already in use", details={"edge_id": eid})
        ts = now_iso()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO edges(id, workflow_id, source_block, target_block, source_handle, target_handle,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    eid,
                    workflow_id,
                    fields["source_block"],
                    fields["target_block"],
                    fields.get("source_handle"),
                    fields.get("target_handle"),
                    ts,
                    ts,
                ),
            )
            await self.touch(conn, workflow_id, ts)
        return await self.get_edge(eid)

    async def get_edge(self, edge_id: str, workflow_id: str | None = None) -> Row:
        row = await self.db.fetchone("SELECT * FROM edges WHERE id = ?", (edge_id,))
        if row is None or (workflow_id and row["workflow_id"] != workflow_id):
            raise NotFound(f"Edge {edge_id} not found", details={"edge_id": edge_id})
        return row

    async def list_edges(
        self, workflow_id: str, req: PageRequest, *, source_block: str | None, target_block: str | None
    ) -> Page:
        await self.get_workflow(workflow_id)
        where, params = ["workflow_id = ?"], [workflow_id]
        if source_block:
            where.append("source_block = ?")
            params.append(source_block)
        if target_block:
            where.append("target_block = ?")
            params.append(target_block)
        return await page(self.db, "edges", where, params, req)

    async def all_edges(self, workflow_id: str) -> list[Row]:
        return await self.db.fetchall("SELECT * FROM edges WHERE workflow_id = ? ORDER BY n", (workflow_id,))

    async def delete_edge(self, edge_id: str) -> None:
        edge = await self.get_edge(edge_id)
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM edges WHERE id = ?", (edge_id,))
            await self.touch(conn, edge["workflow_id"], now_iso())
