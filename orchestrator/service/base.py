"""What the use cases share: their dependencies, the runner link, and the steps several of them take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.core import planning
from orchestrator.engines.base import EngineError
from orchestrator.engines.router import EngineRouter
from orchestrator.errors import NotFound, Unprocessable
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.records import Row, RunRecord


class RunControl(Protocol):
    """The runner as the use cases see it: start a run that was just stored, stop one (False when it
    had ended already). The Scheduler is one."""

    def submit(self, run_id: str) -> None: ...

    async def cancel(self, run_id: str, reason: str) -> bool: ...


@dataclass(frozen=True)
class Deps:
    settings: Settings
    store: Store
    runner: RunControl
    router: EngineRouter | None = None  # what a block's model may name (python modules allowed)


class UseCase:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._store = deps.store

    def _check_model(self, config: Mapping[str, Any] | None) -> None:
        """A block may name a `python:` model only from a module the operator allows: a 422 naming the
        setting, and nothing is imported."""
        model = (config or {}).get("model")
        router = self._deps.router
        if router is None or not isinstance(model, str):
            return
        try:
            router.check_allowed(model)
        except EngineError as exc:
            raise Unprocessable(
                exc.message,
                code=exc.code,
                details={
                    "setting": "python_modules",
                    "errors": [{"loc": ["body", "config", "model"], "msg": exc.message, "type": exc.code}],
                },
            ) from None

    async def _launch(
        self, run: dict[str, Any], children: list[dict[str, Any]] | None = None, *, experiment_id: str | None = None
    ) -> RunRecord:
        """Store a run with its children (one transaction; the store publishes its first event), then
        tell the runner."""
        row, _event = await self._store.runs.create_run(run, children, experiment_id=experiment_id)
        self._deps.runner.submit(row["id"])
        return row

    async def _draft_version(self, workflow_id: str) -> str:
        blocks = await self._store.workflows.all_blocks(workflow_id)
        edges = await self._store.workflows.all_edges(workflow_id)
        return planning.draft_version_id(blocks, edges)

    async def current_fingerprints(self, exp: Row) -> tuple[Row | None, str | None, str]:
        """An experiment's (block, its execution fingerprint, documents fingerprint) as they are now;
        no block once it was deleted."""
        try:
            block = await self._store.workflows.get_block(exp["block_id"], exp["workflow_id"])
        except NotFound:
            return None, None, exp["documents_fingerprint"]
        bfp = planning.block_execution_fingerprint(block["type"], block.get("config"))
        return block, bfp, exp["documents_fingerprint"]

    async def _require_files(self, handle_inputs: Mapping[str, Any]) -> None:
        """Every file a handle input names exists (a 422 naming the handle otherwise)."""
        for handle, payload in handle_inputs.items():
            doc = payload.get("document") if isinstance(payload, dict) else None
            if isinstance(doc, dict):
                fid = doc.get("id") or doc.get("original_id")
                try:
                    await self._store.files.get(str(fid))
                except NotFound as exc:
                    raise Unprocessable(
                        f"Handle input {handle!r} refers to unknown file {fid}",
                        code="file_not_found",
                        details={"handle": handle, "file_id": fid},
                    ) from exc
