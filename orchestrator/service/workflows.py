"""Workflows, blocks and edges (spec §2.1–2.3), and publishing a workflow's draft."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.core import planning
from orchestrator.errors import Unprocessable
from orchestrator.ids import now_iso
from orchestrator.service.base import UseCase
from orchestrator.store.records import Page, PageRequest, Row
from orchestrator.wire import requests as rq
from orchestrator.wire.validation import checked_block_config


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects recurse, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


@dataclass(frozen=True)
class ValidatedConfig:
    block: Row
    config_hash: str


class WorkflowService(UseCase):
    # -- workflows
    async def list_workflows(self, req: PageRequest, *, project_id: str | None, sort_by: str) -> Page[Row]:
        return await self._store.workflows.list_workflows(req, project_id=project_id, sort_by=sort_by)

    async def create_workflow(self, body: rq.CreateWorkflow) -> Row:
        return await self._store.workflows.create_workflow(
            name=body.name, description=body.description, project_id=body.project_id
        )

    async def get_workflow(self, workflow_id: str) -> Row:
        return await self._store.workflows.get_workflow(workflow_id)

    async def update_workflow(self, workflow_id: str, body: rq.UpdateWorkflow) -> Row:
        return await self._store.workflows.update_workflow(workflow_id, body.model_dump(exclude_none=True))

    async def delete_workflow(self, workflow_id: str) -> None:
        """Its open runs are cancelled first: deleting would pull the rows from under the runner."""
        await self._store.workflows.get_workflow(workflow_id)
        for run in await self._store.runs.open_runs():
            if run["workflow_id"] == workflow_id:
                await self._deps.runner.cancel(run["id"], "workflow deleted")
        await self._store.workflows.delete_workflow(workflow_id)

    async def publish(self, workflow_id: str, body: rq.PublishWorkflow) -> Row:
        version = await self._draft_version(workflow_id)
        published = planning.published_version(version, body.description, now_iso())
        return await self._store.workflows.set_published(workflow_id, published)

    # -- blocks
    async def list_blocks(self, workflow_id: str, req: PageRequest) -> Page[Row]:
        return await self._store.workflows.list_blocks(workflow_id, req)

    async def create_block(self, body: rq.CreateBlock) -> Row:
        if body.config is not None:
            checked_block_config(body.type, body.config)
            self._check_model(body.config)
        return await self._store.workflows.create_block(body.workflow_id, body.model_dump())

    async def get_block(self, block_id: str, workflow_id: str | None) -> Row:
        return await self._store.workflows.get_block(block_id, workflow_id)

    async def update_block(self, block_id: str, workflow_id: str | None, body: rq.UpdateBlock) -> Row:
        current = await self._store.workflows.get_block(block_id, workflow_id)
        if body.type and body.type != current["type"]:
            raise Unprocessable(
                "The block type cannot be changed", code="block_type_immutable", details={"type": current["type"]}
            )
        changes = body.model_dump(exclude_unset=True, exclude={"config_mode", "type"})
        # null clears the nullable columns (width, height, parent_id); on the others it means "unchanged".
        for key in ("label", "position_x", "position_y"):
            if key in changes and changes[key] is None:
                del changes[key]
        if "config" in changes:
            mode = body.config_mode or "merge"
            new = (
                changes["config"] if mode == "replace" else merge_patch(current.get("config") or {}, changes["config"])
            )
            checked_block_config(current["type"], new)
            self._check_model(new)
            changes["config"] = new
        return await self._store.workflows.update_block(current["id"], changes)

    async def delete_block(self, block_id: str, workflow_id: str | None) -> None:
        await self._store.workflows.delete_block(block_id, workflow_id)

    async def validate_config(
        self, block_id: str, workflow_id: str | None, body: rq.ValidateBlockConfig
    ) -> ValidatedConfig:
        """The config a merge (or replace) would store, checked but not stored, and its hash."""
        current = await self._store.workflows.get_block(block_id, workflow_id)
        cfg = body.config if body.config_mode == "replace" else merge_patch(current.get("config") or {}, body.config)
        checked_block_config(current["type"], cfg)
        self._check_model(cfg)
        return ValidatedConfig(current, planning.block_execution_fingerprint(current["type"], cfg))

    # -- edges
    async def list_edges(
        self, workflow_id: str, req: PageRequest, *, source_block: str | None, target_block: str | None
    ) -> Page[Row]:
        return await self._store.workflows.list_edges(
            workflow_id, req, source_block=source_block, target_block=target_block
        )

    async def create_edge(self, body: rq.CreateEdge) -> Row:
        return await self._store.workflows.create_edge(body.workflow_id, body.model_dump())

    async def get_edge(self, edge_id: str, workflow_id: str | None) -> Row:
        return await self._store.workflows.get_edge(edge_id, workflow_id)

    async def delete_edge(self, edge_id: str) -> None:
        await self._store.workflows.delete_edge(edge_id)
