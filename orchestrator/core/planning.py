"""What a run will execute: its children and the fingerprints that identify the work (spec §3.6)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.ids import canonical_json, fingerprint

RUNNABLE_TYPES = ("extract", "classifier", "split")
# Engine/metrics versions: bump when a change makes earlier results or scores incomparable.
ENGINE_VERSION = 1
METRICS_VERSION = 1
_LAYOUT_KEYS = ("position_x", "position_y", "width", "height", "label")


def executable_config(block_type: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a block that decides its output: type + config, never layout."""
    cfg = {k: v for k, v in (config or {}).items() if k not in _LAYOUT_KEYS}
    return {"type": block_type, "config": cfg}


def block_execution_fingerprint(block_type: str, config: Mapping[str, Any] | None) -> str:
    return fingerprint(executable_config(block_type, config))


def draft_fingerprint(blocks: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]) -> str:
    graph = {
        "blocks": sorted(
            (
                {
                    "id": b["id"],
                    **executable_config(str(b["type"]), b.get("config")),
                    "parent_id": b.get("parent_id"),
                }
                for b in blocks
            ),
            key=lambda b: str(b["id"]),
        ),
        "edges": sorted(
            ({k: e.get(k) for k in ("source_block", "target_block", "source_handle", "target_handle")} for e in edges),
            key=lambda e: tuple(str(v) for v in e.values()),
        ),
    }
    return fingerprint(graph)


def draft_version_id(blocks: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]) -> str:
    return "draft_" + draft_fingerprint(blocks, edges)


def published_version(draft_version: str, description: str, published_at: str) -> dict[str, Any]:
    """What publishing records: the draft as it is now, under a version id derived from it."""
    return {
        "version_id": "ver_" + draft_version.removeprefix("draft_"),
        "published_at": published_at,
        "description": description,
    }


def handle_inputs_fingerprint(handle_inputs: Mapping[str, Any]) -> str:
    return fingerprint(dict(handle_inputs))


def execution_fingerprint(block_fp: str, inputs_fp: str) -> str:
    return fingerprint([block_fp, inputs_fp])


def validity_fingerprint(block_fp: str, inputs_fp: str, assertion: Any) -> str:
    return fingerprint([block_fp, inputs_fp, assertion, ENGINE_VERSION])


def documents_fingerprint(documents: Sequence[Mapping[str, Any]]) -> str:
    """An experiment's document set: what its inputs are, in order (names and provenance aside)."""
    return fingerprint([d.get("handle_inputs", {}) for d in documents])


def document_filename(handle_inputs: Mapping[str, Any], position: int) -> str:
    """What a document is called: the first file input's name, else `document-N.json`."""
    for payload in handle_inputs.values():
        if isinstance(payload, dict) and isinstance(payload.get("document"), dict):
            name = payload["document"].get("filename")
            if name:
                return str(name)
    return f"document-{position + 1}.json"


@dataclass(frozen=True)
class DocumentSet:
    """An experiment's documents, validated and encoded for the store: `chunks` are JSON arrays of
    `[filename, handle_inputs, provenance]` rows, in position order, of at most CHUNK rows each (so that
    neither side ever parses or holds the whole set as one value); `fingerprint` equals
    documents_fingerprint."""

    CHUNK = 2000

    chunks: tuple[bytes, ...]
    count: int
    fingerprint: str
    file_ids: frozenset[str]  # every file the documents name, to check they exist

    @staticmethod
    def of(documents: Iterable[Mapping[str, Any]]) -> DocumentSet:
        builder = DocumentSetBuilder()
        for d in documents:
            builder.add(d.get("handle_inputs") or {}, d.get("provenance"))
        return builder.done()


class DocumentSetBuilder:
    """Builds a DocumentSet one document at a time, holding only its encoded rows: a 100,000-document
    experiment never exists as Python objects all at once (the request body is parsed as a stream)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._rows = bytearray(b"[")
        self._hash = hashlib.sha256(b"[")  # of canonical_json([handle_inputs, ...]), built piece by piece
        self._files: set[str] = set()
        self.count = 0

    def add(self, handle_inputs: Mapping[str, Any], provenance: Any = None) -> None:
        if self.count:
            self._hash.update(b",")
            if self.count % DocumentSet.CHUNK == 0:
                self._chunks.append(bytes(self._rows + b"]"))
                self._rows = bytearray(b"[")
            else:
                self._rows += b","
        self._rows += orjson.dumps([document_filename(handle_inputs, self.count), handle_inputs, provenance])
        self._hash.update(canonical_json(handle_inputs))
        for payload in handle_inputs.values():
            doc = payload.get("document") if isinstance(payload, dict) else None
            if isinstance(doc, dict) and (doc.get("id") or doc.get("original_id")):
                self._files.add(str(doc.get("id") or doc.get("original_id")))
        self.count += 1

    def done(self) -> DocumentSet:
        self._hash.update(b"]")
        if len(self._rows) > 1:  # rows since the last full chunk
            self._chunks.append(bytes(self._rows + b"]"))
        return DocumentSet(tuple(self._chunks), self.count, self._hash.hexdigest()[:16], frozenset(self._files))


def metrics_validity_fingerprint(block_fp: str, documents_fp: str, n_consensus: int | None = None) -> str:
    """What an experiment run's scores depend on: config, documents, passes (when given), metrics version."""
    if n_consensus is None:
        return fingerprint([block_fp, documents_fp, METRICS_VERSION])
    return fingerprint([block_fp, documents_fp, METRICS_VERSION, n_consensus])


def check_fingerprints(block: Mapping[str, Any], source: Mapping[str, Any] | None, assertion: Any) -> dict[str, str]:
    """The fingerprints a run of one saved check records, computed from the check and its block now."""
    bfp = block_execution_fingerprint(block["type"], block.get("config"))
    ifp = handle_inputs_fingerprint((source or {}).get("handle_inputs") or {})
    return {
        "block_execution_fingerprint": bfp,
        "handle_inputs_fingerprint": ifp,
        "validity_fingerprint": validity_fingerprint(bfp, ifp, assertion or {}),
    }


def effective_n(block_config: Mapping[str, Any] | None, override: int | None) -> int:
    """Passes per child: the run's override, else the block's n_consensus, else 1."""
    if override:
        return int(override)
    raw = (block_config or {}).get("n_consensus", 1)
    try:
        n = int(raw)
    except (TypeError, ValueError):
        return 1
    return max(1, min(n, 15))


@dataclass(frozen=True)
class CheckRunPlan:
    """An eval/test run before it is stored: what it targets, one child per saved check, its fingerprints."""

    check_id: str | None
    block_id: str | None
    children: list[dict[str, Any]]
    fingerprints: dict[str, str]


def scope_target(scope: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(check id, block id) named by a run scope: `single` names a check, `block` a block, `workflow` neither."""
    kind = (scope or {}).get("type", "workflow")
    if scope and kind == "single":
        return scope.get("eval_id") or scope.get("test_id"), None
    if scope and kind == "block":
        return None, scope.get("block_id")
    return None, None


def plan_check_run(
    scope: Mapping[str, Any] | None, checks: Sequence[Mapping[str, Any]], blocks: Mapping[str, Mapping[str, Any]]
) -> CheckRunPlan:
    """`checks` are the saved checks in scope, in run order; `blocks` the workflow's blocks by id."""
    check_id, block_id = scope_target(scope)
    if check_id and checks:
        block_id = str(checks[0]["block_id"])
    children = [
        {
            "check_id": c["id"],
            "block_id": c["block_id"],
            "block_type": (blocks.get(c["block_id"]) or {}).get("type", "extract"),
            "handle_inputs": (c.get("source") or {}).get("handle_inputs", {}),
        }
        for c in checks
    ]
    return CheckRunPlan(check_id, block_id, children, run_fingerprints(block_id, checks, blocks))


def run_fingerprints(
    block_id: str | None, checks: Sequence[Mapping[str, Any]], blocks: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """What decides whether an eval/test run's verdicts still hold: the inputs of its checks, their
    assertions, and the executable config of the block (one block's scope) or blocks (a workflow's)."""
    if len(checks) == 1 and block_id and block_id in blocks and checks[0]["block_id"] == block_id:
        # One check: exactly the check's own fingerprints, so the run and its eval agree (spec §3.6).
        fps_one = check_fingerprints(blocks[block_id], checks[0].get("source"), checks[0].get("assertion"))
        return {
            "input_fingerprint": fps_one["handle_inputs_fingerprint"],
            "block_execution_fingerprint": fps_one["block_execution_fingerprint"],
            "validity_fingerprint": fps_one["validity_fingerprint"],
        }
    ifp = handle_inputs_fingerprint({c["id"]: (c.get("source") or {}).get("handle_inputs", {}) for c in checks})
    fps = {"input_fingerprint": ifp}
    assertions = [c.get("assertion") for c in checks]
    if block_id:
        if block_id in blocks:
            b = blocks[block_id]
            bfp = block_execution_fingerprint(b["type"], b.get("config"))
            fps["block_execution_fingerprint"] = bfp
            fps["validity_fingerprint"] = validity_fingerprint(bfp, ifp, assertions)
        return fps
    used = sorted({str(c["block_id"]) for c in checks if c["block_id"] in blocks})
    blocks_fp = fingerprint(
        {bid: block_execution_fingerprint(blocks[bid]["type"], blocks[bid].get("config")) for bid in used}
    )
    fps["blocks_fingerprint"] = blocks_fp
    fps["validity_fingerprint"] = validity_fingerprint(blocks_fp, ifp, assertions)
    return fps
