"""Saved evals and saved tests (spec §2.5–2.6), each read with its freshness (§3.6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.core.freshness import Freshness, check_freshness
from orchestrator.errors import Unprocessable
from orchestrator.ids import CHECK_PREFIX
from orchestrator.service.base import UseCase
from orchestrator.store.records import Page, PageRequest, Row
from orchestrator.wire import requests as rq
from orchestrator.wire.dialects import Dialect
from orchestrator.wire.validation import checked_assertion


@dataclass(frozen=True)
class CheckView:
    row: Row
    freshness: Freshness


class CheckService(UseCase):
    async def list_page(
        self, workflow_id: str, req: PageRequest, *, block_id: str | None
    ) -> tuple[Page[Row], list[CheckView]]:
        await self._store.workflows.get_workflow(workflow_id)
        page = await self._store.checks.list_page(workflow_id, req, block_id=block_id)
        return page, await self._views(page.rows)

    async def create(
        self, dialect: Dialect, workflow_id: str, body: rq.CreateCheck | rq.CreateCheckNested
    ) -> CheckView:
        await self._store.workflows.get_workflow(workflow_id)
        await self._store.workflows.get_block(body.target.block_id, workflow_id)
        source = body.source.model_dump(mode="json", exclude_none=True)
        if source.get("type") == "run_step":
            raise Unprocessable(
                "run_step sources need workflow runs, which this server does not record; "
                "use a manual source with handle_inputs",
                code="unsupported_source",
            )
        await self._require_files(source.get("handle_inputs", {}))
        row = await self._store.checks.create(
            prefix=CHECK_PREFIX[dialect.kind],
            workflow_id=workflow_id,
            block_id=body.target.block_id,
            name=body.name,
            source=source,
            assertion=checked_assertion(body.assertion),
        )
        return (await self._views([row]))[0]

    async def get(self, dialect: Dialect, check_id: str, workflow_id: str | None = None) -> CheckView:
        row = await self._store.checks.get(check_id, workflow_id, noun=dialect.noun)
        return (await self._views([row]))[0]

    async def update(
        self, dialect: Dialect, check_id: str, body: rq.UpdateCheck, workflow_id: str | None = None
    ) -> CheckView:
        await self._store.checks.get(check_id, workflow_id, noun=dialect.noun)
        changes: dict[str, Any] = {}
        if body.name is not None:
            changes["name"] = body.name
        if body.assertion is not None:
            changes["assertion"] = checked_assertion(body.assertion)
        if body.source is not None:
            source = body.source.model_dump(mode="json", exclude_none=True)
            await self._require_files(source.get("handle_inputs", {}))
            changes["source"] = source
        row = await self._store.checks.update(check_id, changes)
        return (await self._views([row]))[0]

    async def delete(self, dialect: Dialect, check_id: str, workflow_id: str | None = None) -> None:
        await self._store.checks.delete(check_id, workflow_id, noun=dialect.noun)

    async def _views(self, rows: list[Row]) -> list[CheckView]:
        """Each check with its read-time verdict: its latest run against its block as it is now."""
        blocks: dict[str, Row] = {}
        for wid in {r["workflow_id"] for r in rows if r.get("latest")}:
            blocks.update({b["id"]: b for b in await self._store.workflows.all_blocks(wid)})
        return [
            CheckView(
                r, check_freshness(r.get("latest"), blocks.get(r["block_id"]), r.get("source"), r.get("assertion"))
            )
            for r in rows
        ]
