"""What a run will execute: its children and the fingerprints that identify the work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.ids import fingerprint

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


def handle_inputs_fingerprint(handle_inputs: Mapping[str, Any]) -> str:
    return fingerprint(dict(handle_inputs))


def execution_fingerprint(block_fp: str, inputs_fp: str) -> str:
    return fingerprint([block_fp, inputs_fp])


def validity_fingerprint(block_fp: str, inputs_fp: str, assertion: Any) -> str:
    return fingerprint([block_fp, inputs_fp, assertion, ENGINE_VERSION])


def metrics_validity_fingerprint(block_fp: str, documents_fp: str) -> str:
    return fingerprint([block_fp, documents_fp, METRICS_VERSION])


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


def scope_checks(checks: Sequence[Mapping[str, Any]], scope: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """scope single / block / workflow / omitted → the saved checks the run will execute, in order."""
    kind = (scope or {}).get("type", "workflow")
    if kind == "single":
        wanted = scope.get("eval_id") or scope.get("test_id") if scope else None
        return [c for c in checks if c["id"] == wanted]
    if kind == "block":
        return [c for c in checks if c["block_id"] == (scope or {}).get("block_id")]
    return list(checks)
