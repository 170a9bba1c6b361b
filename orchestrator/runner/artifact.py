"""A child's artifact (every pass's output, the likelihoods, per-pass provenance) and the small pieces of its
result that depend only on the block and the inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.engines.base import EngineError, PassOutput
from orchestrator.ids import now_iso
from orchestrator.store.records import ClaimedChild, Row

OPERATION = {"extract": "extraction", "classifier": "classification", "split": "split"}
ARTIFACT_PREFIX = {"extract": "extr", "classifier": "cls", "split": "splt"}


@dataclass
class PassResult:
    output: PassOutput | None
    error: EngineError | None
    attempts: int
    cached: bool = False  # served by the pass cache (or by an identical pass in flight): no engine call


def build(
    run_id: str, child: ClaimedChild, block: Row, model: str, n: int, results: list[PassResult], record: dict[str, Any]
) -> dict[str, Any]:
    config = block.get("config") or {}
    btype = block["type"]
    first = next(r.output for r in results if r.output)
    usage: dict[str, Any] = {"credits": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for r in results:
        if r.output and r.output.usage:
            usage["prompt_tokens"] += r.output.usage.prompt_tokens
            usage["completion_tokens"] += r.output.usage.completion_tokens
            usage["total_tokens"] += r.output.usage.total_tokens
    usage["cached_passes"] = sum(1 for r in results if r.cached)
    body: dict[str, Any] = {
        "id": artifact_id(btype, child["id"]),
        "operation": OPERATION[btype],
        "file": file_ref(child.get("handle_inputs") or {}),
        "model": model,
        "engine": first.engine,
        "n_consensus": n,
        "instructions": config.get("instructions") or config.get("prompt"),
        "status": "completed",
        "output": record["value"],
        "usage": usage,
        "created_at": now_iso(),
        "consensus": {
            "choices": [r.output.output if r.output else None for r in results],
            "likelihoods": record["likelihoods"],
        },
        # Where each pass came from: `cached` passes were not called again (their tokens were spent before).
        "passes": [_pass_json(r) for r in results],
        "metadata": {"run_id": run_id, "result_id": child["id"], "block_id": block["id"]},
    }
    if btype == "extract":
        body["json_schema"] = config.get("json_schema") or {}
    elif btype == "classifier":
        body["categories"] = config.get("categories") or []
    else:
        body["subdocuments"] = config.get("subdocuments") or []
    return {"id": body["id"], "operation": body["operation"], "body": body}


def _pass_json(r: PassResult) -> dict[str, Any]:
    """Short on purpose: one per pass of every child, stored and sent with every artifact."""
    if r.output is None:
        return {"cached": False, "error": r.error.code if r.error else "no_output"}
    u = r.output.usage
    return {
        "cached": r.cached,
        "prompt_tokens": u.prompt_tokens if u else None,
        "completion_tokens": u.completion_tokens if u else None,
    }


def artifact_id(block_type: str, child_id: str) -> str:
    """One artifact per committed child, so the child's unique token names it. Not ids.new_id: that
    reads os.urandom, a syscall that drops the GIL, and getting the GIL back from the busy database
    thread cost the event loop up to a switch interval (5 ms) per child under load."""
    return f"{ARTIFACT_PREFIX[block_type]}_{child_id.partition('_')[2] or child_id}"


def file_ref(handle_inputs: dict[str, Any]) -> dict[str, Any]:
    for payload in handle_inputs.values():
        if isinstance(payload, dict) and isinstance(payload.get("document"), dict):
            d = payload["document"]
            return {
                "id": d.get("id") or d.get("original_id") or "",
                "filename": d.get("filename") or "",
                "mime_type": d.get("mime_type") or "application/octet-stream",
            }
    return {"id": "", "filename": "inputs.json", "mime_type": "application/json"}


def routing(block: Row, value: Any) -> list[str]:
    config = block.get("config") or {}
    if block["type"] == "classifier" and isinstance(value, dict):
        for cat in config.get("categories") or []:
            if cat.get("name") == value.get("category"):
                key = cat.get("handle_key") or str(cat["name"]).lower().replace(" ", "-")
                return [f"output-file-{key}"]
    if block["type"] == "split" and isinstance(value, list):
        keys = {
            s.get("name"): s.get("handle_key") or str(s.get("name")).lower().replace(" ", "-")
            for s in config.get("subdocuments") or []
        }
        return [f"output-file-{keys.get(s.get('name'), s.get('name'))}" for s in value if isinstance(s, dict)]
    return []
