"""Eval runs and test runs (spec §2.7–2.10): create from a scope, cancel, read with freshness, results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.core import planning
from orchestrator.core.freshness import Freshness, eval_run_freshness, same_scope
from orchestrator.core.lifecycle import TERMINAL
from orchestrator.errors import NotFound
from orchestrator.ids import RunKind, new_run_id
from orchestrator.service.base import UseCase
from orchestrator.store.records import Page, PageRequest, ResultRecord, Row, RunRecord
from orchestrator.wire.dialects import TEST

CANCEL_REASON = "cancelled by request"
BASELINE_WINDOW = 50  # completed runs of a workflow looked at for an open run's baseline


@dataclass(frozen=True)
class RunView:
    """A run as read now: eval/test runs carry their freshness (None for experiment runs)."""

    row: RunRecord
    freshness: Freshness | None = None


@dataclass(frozen=True)
class ResultView:
    """One child of an eval/test run, with the saved check it ran (None once that was deleted)."""

    child: ResultRecord
    check: Row | None


class RunService(UseCase):
    async def create(
        self,
        kind: RunKind,
        workflow_id: str,
        scope: dict[str, Any] | None,
        n_consensus: int | None,
        *,
        trigger: str = "api",
        cache: bool = True,
    ) -> RunView:
        wf = await self._store.workflows.get_workflow(workflow_id)
        scope = scope or {"type": "workflow"}
        check_id, block_id = planning.scope_target(scope)
        if check_id:
            await self._store.checks.get(check_id, workflow_id, noun="Eval" if kind == "eval" else "Test")
        if block_id:
            await self._store.workflows.get_block(block_id, workflow_id)
        checks = await self._store.checks.for_scope(workflow_id, check_id=check_id, block_id=block_id)
        blocks = {b["id"]: b for b in await self._store.workflows.all_blocks(workflow_id)}
        plan = planning.plan_check_run(scope, checks, blocks)
        run = {
            "id": new_run_id(kind),
            "kind": kind,
            "workflow_id": workflow_id,
            "workflow_version_id": await self._draft_version(workflow_id),
            "workflow_name": wf["name"],
            "block_id": plan.block_id,
            "check_id": plan.check_id,
            "scope": scope,
            "n_consensus": n_consensus,
            "fingerprints": plan.fingerprints,
            "trigger_type": trigger,
            "cache_enabled": cache,
        }
        row = await self._launch(run, plan.children)
        return RunView(row, eval_run_freshness(row, plan.fingerprints, await self._baseline(row)))

    async def list_page(
        self, kinds: tuple[RunKind, ...], req: PageRequest, filters: dict[str, Any]
    ) -> tuple[Page[RunRecord], list[RunView]]:
        """Runs of the given kinds, newest first (every kind at once: the page's runs list)."""
        page = await self._store.runs.list_page(kinds, req, filters)
        return page, await self._views(page.rows)

    async def get(self, run_id: str, kinds: tuple[RunKind, ...]) -> RunView:
        return (await self._views([await self._store.runs.get(run_id, kinds)]))[0]

    async def cancel(self, run_id: str, kinds: tuple[RunKind, ...]) -> RunView:
        """404 `not_cancellable` once the run has ended."""
        run = await self._store.runs.get(run_id, kinds)
        if run["status"] in TERMINAL or not await self._deps.runner.cancel(run_id, CANCEL_REASON):
            raise NotFound(
                f"Run {run_id} is {run['status']} and cannot be cancelled",
                code="not_cancellable",
                details={"run_id": run_id, "status": run["status"]},
            )
        return await self.get(run_id, kinds)

    async def results(
        self, run_id: str, kinds: tuple[RunKind, ...], req: PageRequest
    ) -> tuple[Page[ResultRecord], list[ResultView]]:
        run = await self._store.runs.get(run_id, kinds)
        page = await self._store.children.list_page(run["id"], req)
        checks = {
            c["id"]: c for c in await self._store.checks.for_scope(run["workflow_id"], check_id=None, block_id=None)
        }
        views = []
        for child in page.rows:
            child["workflow_id"] = run["workflow_id"]
            child["run_kind"] = run["kind"]
            views.append(ResultView(child, checks.get(child["check_id"])))
        return page, views

    async def result(self, result_id: str, kinds: tuple[RunKind, ...]) -> ResultView:
        child = await self._store.children.get(result_id, kinds)
        check = None
        if child["check_id"]:
            try:
                check = await self._store.checks.get(child["check_id"])
            except NotFound:
                check = None
        return ResultView(child, check)

    async def result_of_check(self, run_id: str, check_id: str) -> ResultView:
        """Seed era: a test run's result addressed by the saved test it ran."""
        child = await self._store.children.by_check(run_id, check_id)
        return await self.result(child["id"], TEST.run_kinds)

    async def _views(self, rows: list[RunRecord]) -> list[RunView]:
        """Eval/test runs with their freshness: what each recorded (or, still open, what it will run)
        against the plan its scope would make now (one read of the checks per scope, of the blocks per
        workflow), and an open run against the latest completed run of its scope."""
        blocks: dict[str, dict[str, Row]] = {}
        plans: dict[tuple[str, str | None, str | None], dict[str, str]] = {}
        views = []
        for row in rows:
            recorded = row.get("fingerprints") or {}
            if row["kind"] == "experiment":
                views.append(RunView(row))
                continue
            is_open = row["status"] not in TERMINAL
            if not is_open and not recorded.get("validity_fingerprint"):  # nothing to compare: no plan needed
                views.append(RunView(row, eval_run_freshness(row, None)))
                continue
            wid = row["workflow_id"]
            check_id, block_id = planning.scope_target(row.get("scope"))
            key = (wid, check_id, block_id)
            if key not in plans:
                if wid not in blocks:
                    blocks[wid] = {b["id"]: b for b in await self._store.workflows.all_blocks(wid)}
                checks = await self._store.checks.for_scope(wid, check_id=check_id, block_id=block_id)
                plans[key] = planning.plan_check_run(row.get("scope"), checks, blocks[wid]).fingerprints
            baseline = await self._baseline(row) if is_open else None
            views.append(RunView(row, eval_run_freshness(row, plans[key], baseline)))
        return views

    async def _baseline(self, run: RunRecord) -> RunRecord | None:
        """The latest completed run of the same kind, workflow and scope (among the recent ones)."""
        check_id, _ = planning.scope_target(run.get("scope"))
        filters = {"workflow_id": run["workflow_id"], "check_id": check_id, "statuses": ["completed"]}
        page = await self._store.runs.list_page((run["kind"],), PageRequest(limit=BASELINE_WINDOW), filters)
        for other in page.rows:
            if other["id"] != run["id"] and same_scope(other.get("scope"), run.get("scope")):
                fps = other.get("fingerprints") or {}
                if fps.get("validity_fingerprint"):
                    return other
        return None
