"""Everything a run needs to execute its children, resolved once when the run starts."""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.core import planning
from orchestrator.engines.base import Document, EngineError, HandleValue, JsonInput
from orchestrator.engines.decoding import DecodeLimits, Decoder
from orchestrator.errors import NotFound
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.records import Row, RunRecord


class RunSetupError(Exception):
    """The run itself cannot execute (workflow or block gone, block type not runnable)."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass
class RunContext:
    """Blocks are resolved once per run; each child carries its own assertion (read when claimed),
    so a run over 100,000 saved checks never holds them all."""

    run: RunRecord
    blocks: dict[str, Row]
    draft_fp: str

    @property
    def kind(self) -> str:
        return str(self.run["kind"])

    def block(self, block_id: str) -> Row | None:
        return self.blocks.get(block_id)

    def n_for(self, block: Row) -> int:
        return planning.effective_n(block.get("config"), self.run.get("n_consensus"))

    @property
    def passes_per_child(self) -> int:
        """The most passes one of this run's children asks for: the slots a started child reserves."""
        return max((self.n_for(b) for b in self.blocks.values()), default=1)


async def prepare(store: Store, run: RunRecord) -> RunContext:
    """Resolve the run against the CURRENT draft (spec §2.7: runs execute the draft).

    The run's own target block (experiments; eval/test runs scoped to a block or one check) must
    still exist and be runnable, or the whole run errs. In a workflow-wide eval run a check whose
    block is gone is that child's problem (blocked), not the run's."""
    blocks = await store.workflows.all_blocks(run["workflow_id"])
    if not blocks:  # the common case never pays for this look-up (runs die with their workflow)
        try:
            await store.workflows.get_workflow(run["workflow_id"])
        except NotFound as exc:
            raise RunSetupError(
                f"Workflow {run['workflow_id']} no longer exists",
                {"error_code": "workflow_not_found", "workflow_id": run["workflow_id"]},
            ) from exc
    edges = await store.workflows.all_edges(run["workflow_id"])
    by_id = {b["id"]: b for b in blocks}
    target = run.get("block_id")
    if target:
        block = by_id.get(target)
        if block is None:
            raise RunSetupError(
                f"Block {target} no longer exists in workflow {run['workflow_id']}",
                {"error_code": "block_not_found", "block_id": target, "workflow_id": run["workflow_id"]},
            )
        if block["type"] not in planning.RUNNABLE_TYPES:
            raise RunSetupError(
                f"Blocks of type {block['type']} cannot run here",
                {"error_code": "block_type_unsupported", "block_id": block["id"], "block_type": block["type"]},
            )
    elif run["kind"] == "experiment":
        raise RunSetupError("The experiment run has no target block", {"error_code": "block_not_found"})
    return RunContext(run=run, blocks=by_id, draft_fp=planning.draft_fingerprint(blocks, edges))


def document_bytes(doc: Document) -> int:
    """What a decoded document holds in memory: its text, its pages (a second copy) and its images."""
    return sys.getsizeof(doc.text) + sum(sys.getsizeof(p) for p in doc.pages) + sum(len(i) for i in doc.images)


class DocumentCache:
    """Decoded documents by file id: many checks share one document, parse it once. Bounded by the
    bytes it holds, not by a count: 256 entries of a PDF that decodes to 80 MB kept gigabytes."""

    def __init__(self, store: Store, decoder: Decoder, budget_bytes: int = 64 << 20) -> None:
        self.store = store
        self.decoder = decoder
        self.budget = budget_bytes
        self.held = 0
        self._items: OrderedDict[str, tuple[Document, int]] = OrderedDict()

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> DocumentCache:
        limits = DecodeLimits(
            max_pages=settings.document_max_pages,
            max_chars=settings.document_max_chars,
            timeout_s=settings.document_timeout_s,
        )
        return cls(store, Decoder(limits, settings.document_processes), settings.document_cache_mb << 20)

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, ref: dict[str, Any]) -> Document:
        file_id = str(ref.get("id") or ref.get("original_id") or "")
        hit = self._items.get(file_id)
        if hit is not None:
            self._items.move_to_end(file_id)
            return hit[0]
        try:
            meta = await self.store.files.get(file_id)
            data = await self.store.files.data(file_id)
        except NotFound as exc:
            raise EngineError(
                kind="input", code="file_not_found", message=f"File {file_id} not found", details={"file_id": file_id}
            ) from exc
        doc = await self.decoder.decode(filename=meta["filename"], mime_type=meta["mime_type"], data=data or b"")
        # The whole sha256 of the bytes: part of every pass cache key of this document (content_id is a prefix).
        doc = replace(doc, sha256=hashlib.sha256(data or b"").hexdigest())
        self._keep(file_id, doc)
        return doc

    def _keep(self, file_id: str, doc: Document) -> None:
        size = document_bytes(doc)
        if size > self.budget or file_id in self._items:
            return  # larger than the whole budget: decoded for this child only
        self._items[file_id] = (doc, size)
        self.held += size
        while self.held > self.budget:
            _, (_, freed) = self._items.popitem(last=False)
            self.held -= freed


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
