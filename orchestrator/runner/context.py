"""Everything a run needs to execute its children, resolved once when the run starts."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core import planning
from orchestrator.engines.base import Document, EngineError, HandleValue, JsonInput
from orchestrator.engines.documents import load_document
from orchestrator.errors import NotFound
from orchestrator.store import Store
from orchestrator.store.db import Row


class RunSetupError(Exception):
    """The run itself cannot execute (workflow or block gone, block type not runnable)."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass
class RunContext:
    run: Row
    blocks: dict[str, Row]
    draft_fp: str
    checks: dict[str, Row] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.run["kind"])

    def block(self, block_id: str) -> Row | None:
        return self.blocks.get(block_id)

    def n_for(self, block: Row) -> int:
        return planning.effective_n(block.get("config"), self.run.get("n_consensus"))


async def prepare(store: Store, run: Row) -> RunContext:
    """Resolve the run against the CURRENT draft (spec §2.7: runs execute the draft)."""
    try:
        await store.workflows.get_workflow(run["workflow_id"])
    except NotFound as exc:
        raise RunSetupError(
            f"Workflow {run['workflow_id']} no longer exists", {"error_code": "workflow_not_found"}
        ) from exc
    blocks = await store.workflows.all_blocks(run["workflow_id"])
    edges = await store.workflows.all_edges(run["workflow_id"])
    by_id = {b["id"]: b for b in blocks}
    checks: dict[str, Row] = {}
    if run["kind"] in ("eval", "test"):
        checks = {c["id"]: c for c in await store.checks.for_scope(run["workflow_id"], check_id=None, block_id=None)}
    if run["kind"] == "experiment":
        block = by_id.get(run.get("block_id") or "")
        if block is None:
            raise RunSetupError(
                f"Block {run.get('block_id')} no longer exists in workflow {run['workflow_id']}",
                {"block_id": run.get("block_id"), "error_code": "block_not_found"},
            )
        if block["type"] not in planning.RUNNABLE_TYPES:
            raise RunSetupError(
                f"Blocks of type {block['type']} cannot run experiments here",
                {"block_id": block["id"], "error_code": "block_type_unsupported"},
            )
    return RunContext(run=run, blocks=by_id, draft_fp=planning.draft_fingerprint(blocks, edges), checks=checks)


class DocumentCache:
    """Decoded documents by file id: many checks share one document, parse it once."""

    def __init__(self, store: Store, size: int = 256) -> None:
        self.store = store
        self.size = size
        self._items: OrderedDict[str, Document] = OrderedDict()

    async def get(self, ref: dict[str, Any]) -> Document:
        file_id = str(ref.get("id") or ref.get("original_id") or "")
        hit = self._items.get(file_id)
        if hit is not None:
            self._items.move_to_end(file_id)
            return hit
        try:
            meta = await self.store.files.get(file_id)
            data = await self.store.files.data(file_id)
        except NotFound as exc:
            raise EngineError(
                kind="input", code="file_not_found", message=f"File {file_id} not found", details={"file_id": file_id}
            ) from exc
        doc = load_document(filename=meta["filename"], mime_type=meta["mime_type"], data=data or b"")
        self._items[file_id] = doc
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return doc


async def resolve_inputs(cache: DocumentCache, handle_inputs: dict[str, Any]) -> dict[str, HandleValue]:
    out: dict[str, HandleValue] = {}
    for handle, payload in handle_inputs.items():
        if isinstance(payload, dict) and (payload.get("type") == "file" or "document" in payload):
            out[handle] = await cache.get(payload.get("document") or {})
        elif isinstance(payload, dict):
            out[handle] = JsonInput(payload.get("data"))
        else:
            out[handle] = JsonInput(payload)
    return out
