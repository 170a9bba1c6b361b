"""Stored rows → wire JSON, emitting the union of field names of several SDK generations (Appendix A)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.core.freshness import Freshness
from orchestrator.core.lifecycle import lifecycle_counts, outcome_counts
from orchestrator.core.usage import usage_view
from orchestrator.ids import iso, ms_between
from orchestrator.store.records import Record


def workflow(row: Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "workflow",
        "name": row["name"],
        "description": row["description"],
        "project_id": row["project_id"],
        "published": row.get("published"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def block(row: Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "workflow_id": row["workflow_id"],
        "type": row["type"],
        "label": row["label"],
        "position_x": row["position_x"],
        "position_y": row["position_y"],
        "width": row["width"],
        "height": row["height"],
        "config": row.get("config"),
        "parent_id": row["parent_id"],
        "declarative_path": None,
        "declarative_source_block_id": None,
        "resolved_schemas": None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def edge(row: Record) -> dict[str, Any]:
    return {
        k: row[k]
        for k in (
            "id",
            "workflow_id",
            "source_block",
            "target_block",
            "source_handle",
            "target_handle",
            "created_at",
            "updated_at",
        )
    }


def file(row: Record) -> dict[str, Any]:
    return {
        "object": "file",
        "id": row["id"],
        "filename": row["filename"],
        "mime_type": row["mime_type"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "page_count": row.get("page_count"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def upload(row: Record, signature: str, base: str) -> dict[str, Any]:
    """An upload session (`POST /v1/files/upload`); `base` is the server's origin as the client reached it."""
    return {
        "file_id": row["id"],
        "upload_url": f"{base}/v1/files/upload/{row['id']}/content?sig={signature}",
        "upload_method": "PUT",
        "upload_headers": {"Content-Type": row["mime_type"]},
        "expires_at": row["expires_at"],
        "mime_data": {"filename": row["filename"], "url": f"{base}/v1/files/{row['id']}/download"},
    }


def uploaded_file(row: Record, base: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "filename": row["filename"],
        "mime_type": row["mime_type"],
        "url": f"{base}/v1/files/{row['id']}/download",
        "size_bytes": row["size_bytes"],
    }


def download_link(row: Record, base: str) -> dict[str, Any]:
    return {"download_url": f"{base}/v1/files/{row['id']}/download", "expires_in": "1h", "filename": row["filename"]}


def validated_config(block: Record, config_hash: str) -> dict[str, Any]:
    return {
        "ok": True,
        "workflow_id": block["workflow_id"],
        "block_id": block["id"],
        "block_type": block["type"],
        "config_hash": config_hash,
    }


SIMULATED_NOTE = (
    "Blocks whose model matches these patterns run on the offline simulated engine: deterministic rules,"
    " no language model. Route a name to a real model with a models file (--models)."
)


def engines(routes: list[dict[str, Any]], limits: dict[str, Any], simulated: list[str]) -> dict[str, Any]:
    return {"data": routes, "settings": limits, "simulated_models": simulated, "simulated_note": SIMULATED_NOTE}


def worker(row: Record) -> dict[str, Any]:
    """A runner process: where it runs, when it last beat, its share of the pass slots, what it holds."""
    return {
        "id": row["id"],
        "object": "worker",
        "host": row["host"],
        "pid": row["pid"],
        "status": row["status"],
        "started_at": row["started_at"],
        "heartbeat_at": iso(datetime.fromtimestamp(float(row["heartbeat_at"]), UTC)),
        "max_concurrency": row["capacity"],
        "claims": row.get("claims", 0),
    }


def _seed_safe(status: str, kind: str | None) -> str:
    """Seed-era (REPO141) test runs and results reject `queued`; any test client reads `pending` fine."""
    return "pending" if kind == "test" and status == "queued" else status


def handle_inputs(payloads: Any, *, seed: bool = False) -> dict[str, Any]:
    """Handle payloads as stored, made readable by the client era asking (Appendix A).

    Every era: `type` is present (the SDK160 union is not discriminated) and a file reference has
    `id` (the SDK160 FileRef needs it even when a seed-era client sent only `original_id`).
    `seed=True` (the REPO141 routes) adds `original_id` + `gcs_uri` of its MaterializedDocument;
    they stay off the SDK routes so a stored payload reads back exactly as it was written."""
    if not isinstance(payloads, dict):
        return {}
    out: dict[str, Any] = {}
    for handle, payload in payloads.items():
        if isinstance(payload, dict) and isinstance(payload.get("document"), dict):
            doc = dict(payload["document"])
            fid = doc.get("id") or doc.get("original_id")
            doc["id"] = fid
            if seed:
                doc["original_id"] = doc.get("original_id") or fid
                doc.setdefault("gcs_uri", f"orchestrator://files/{fid}")
            out[handle] = {**payload, "type": "file", "document": doc}
        elif isinstance(payload, dict):
            out[handle] = {"type": "json", **payload}
        else:
            out[handle] = {"type": "json", "data": payload}
    return out


def source(src: Any, *, seed: bool = False) -> Any:
    if isinstance(src, dict) and src.get("type", "manual") == "manual":
        return {**src, "type": "manual", "handle_inputs": handle_inputs(src.get("handle_inputs"), seed=seed)}
    return src


def lifecycle(status: str, error: dict[str, Any] | None, reason: str | None) -> dict[str, Any]:
    if status == "error":
        err = error or {}
        return {"status": "error", "message": err.get("message") or "(no message)", "details": err}
    if status == "cancelled":
        return {"status": "cancelled", "reason": reason}
    return {"status": status}


def timing(row: Record) -> dict[str, Any]:
    return {
        "created_at": row.get("created_at"),
        "started_at": row.get("started_at"),
        "completed_at": row.get("completed_at"),
        "duration_ms": ms_between(row.get("started_at"), row.get("completed_at")),
    }


def counts(state: Record) -> dict[str, Any]:
    lc, oc = lifecycle_counts(state), outcome_counts(state)
    return {
        "lifecycle_counts": lc,
        "outcome": oc,
        # seed-era flat buckets (REPO141): one per child status
        "queued": lc["pending"] + lc["queued"],
        "running": lc["running"],
        "passed": oc["passed"],
        "failed": oc["failed"],
        "blocked": oc["blocked"],
        "error": lc["error"],
        "cancelled": lc["cancelled"],
    }


def _workflow_ref(row: Record) -> dict[str, Any]:
    return {
        "workflow_id": row["workflow_id"],
        "version_id": row["workflow_version_id"],
        "name_at_run_time": row["workflow_name"],
        "requested_version": "draft",
    }


def freshness(f: Freshness) -> dict[str, Any]:
    return {
        "status": f.status,
        "reasons": list(f.reasons),
        "validity_fingerprint": f.validity_fingerprint,
        "input_fingerprint": f.input_fingerprint,
        "baseline_run_id": f.baseline_run_id,
    }


def eval_run(row: Record, fresh: Freshness | None = None) -> dict[str, Any]:
    """One body for eval runs (SDK160) and test runs (SDK143–155, seed era). Without `fresh` (the live
    feed does not judge it) the freshness is `unknown`."""
    fps = row.get("fingerprints") or {}
    if fresh is None:
        fresh = Freshness("unknown", (), fps.get("validity_fingerprint"), fps.get("input_fingerprint"))
    target = {"type": "block", "block_id": row["block_id"]} if row.get("block_id") else None
    total = row["total"]
    return {
        "id": row["id"],
        "object": f"workflow_{row['kind']}_run",
        "workflow_id": row["workflow_id"],
        "workflow_version_id": row["workflow_version_id"],
        "workflow": _workflow_ref(row),
        "trigger": {"type": row.get("trigger_type") or "api"},
        "lifecycle": lifecycle(_seed_safe(row["status"], row["kind"]), row.get("error"), row.get("cancel_reason")),
        "timing": timing(row),
        "target": target,
        "eval_id": row.get("check_id"),
        "test_id": row.get("check_id"),
        "total_evals": total,
        "total_tests": total,
        "counts": counts(row),
        "n_consensus": row.get("n_consensus"),
        "freshness": freshness(fresh),
        "stats": row.get("stats") or {},
        "usage": usage_view(row.get("stats")),
        "cache": row.get("cache_enabled", True) is not False,
    }


def experiment_run(row: Record) -> dict[str, Any]:
    fps = row.get("fingerprints") or {}
    lc = lifecycle_counts(row)
    return {
        "id": row["id"],
        "object": "experiment_run",
        "workflow_id": row["workflow_id"],
        "workflow_version_id": row["workflow_version_id"],
        "workflow": _workflow_ref(row),
        "trigger": {"type": row.get("trigger_type") or "api"},
        "experiment_id": row["experiment_id"],
        "block_id": row["block_id"],
        "block_type": row["block_type"],
        "block_kind": row["block_type"],
        "n_consensus": row["n_consensus"],
        "lifecycle": lifecycle(row["status"], row.get("error"), row.get("cancel_reason")),
        "timing": timing(row),
        "parent_run_id": None,
        "block_version_id": None,
        "metrics_validity_fingerprint": fps.get("metrics_validity_fingerprint"),
        "metrics_validity_fingerprint_version": 1,
        "block_execution_fingerprint": fps.get("block_execution_fingerprint", ""),
        "definition_fingerprint": fps.get("block_execution_fingerprint", ""),
        "documents_fingerprint": fps.get("documents_fingerprint", ""),
        "score": row.get("score"),
        "total_document_count": row["total"],
        "completed_document_count": lc["completed"],
        "document_count": row["total"],
        "error_count": lc["error"],
        "cancelled_document_count": lc["cancelled"],
        "counts": counts(row),
        "stats": row.get("stats") or {},
        "usage": usage_view(row.get("stats")),
        "cache": row.get("cache_enabled", True) is not False,
    }


def run(row: Record, fresh: Freshness | None = None) -> dict[str, Any]:
    return experiment_run(row) if row["kind"] == "experiment" else eval_run(row, fresh)


def _artifact_ref(child: Record) -> dict[str, Any] | None:
    if not child.get("artifact_id"):
        return None
    op = {"extract": "extraction", "classifier": "classification", "split": "split"}.get(
        child["block_type"], "extraction"
    )
    return {"id": child["artifact_id"], "operation": op}


def _handles(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    return {k: {"type": "json", "data": v} for k, v in data.items()}


def eval_result(child: Record, check: Record | None, *, seed: bool = False) -> dict[str, Any]:
    result = child.get("result") or {}
    fps = result.get("fingerprints") or {}
    outputs = result.get("handle_outputs")
    return {
        "id": child["id"],
        "object": "workflow_eval_result",
        "workflow_eval_run_id": child["run_id"],
        "workflow_test_run_id": child["run_id"],
        "run_id": child["run_id"],
        "eval_id": child["check_id"],
        "test_id": child["check_id"],
        "eval_name": (check or {}).get("name"),
        "workflow_id": child.get("workflow_id"),
        "block_id": child["block_id"],
        "block_type": child["block_type"],
        "target": {"type": "block", "block_id": child["block_id"]},
        "source": source(
            (check or {}).get("source") or {"type": "manual", "handle_inputs": child.get("handle_inputs")}, seed=seed
        ),
        "lifecycle": lifecycle(
            _seed_safe(child["status"], child.get("run_kind")), child.get("error"), child.get("cancel_reason")
        ),
        "timing": timing(child),
        "verdict": child.get("verdict"),
        "execution_fingerprint": fps.get("execution_fingerprint"),
        "handle_inputs_fingerprint": fps.get("handle_inputs_fingerprint"),
        "workflow_draft_fingerprint": fps.get("workflow_draft_fingerprint"),
        "block_execution_fingerprint": fps.get("block_execution_fingerprint"),
        "block_config_fingerprint": fps.get("block_execution_fingerprint"),
        "artifact": _artifact_ref(child),
        "handle_inputs": handle_inputs(child.get("handle_inputs"), seed=seed),
        "handle_outputs": _handles(outputs),
        "outputs": outputs,
        "routing_decisions": result.get("routing_decisions") or [],
        "warnings": [e["message"] for e in result.get("pass_errors") or []] + list(result.get("warnings") or []),
        "assertion_result": result.get("assertion_result"),
        "verdict_summary": result.get("verdict_summary"),
        "error": child.get("error"),
        "skipped": False,
        "engine": result.get("engine"),
        "model": result.get("model"),
        "n_passes": result.get("n_passes"),
    }


def experiment_result(child: Record) -> dict[str, Any]:
    result = child.get("result") or {}
    record = result.get("consensus") or {}
    return {
        "id": child["id"],
        "object": "experiment_result",
        "experiment_run_id": child["run_id"],
        "experiment_id": child.get("experiment_id"),
        "document_id": child["document_id"],
        "lifecycle": lifecycle(child["status"], child.get("error"), child.get("cancel_reason")),
        "timing": timing(child),
        "block_type": child["block_type"],
        "handle_inputs": handle_inputs(child.get("handle_inputs")),
        "handle_outputs": _handles(result.get("handle_outputs")) or {},
        "artifact": _artifact_ref(child),
        "attempt": child.get("attempt") or 0,
        "score": child.get("score"),
        "engine": result.get("engine"),
        "model": result.get("model"),
        "likelihoods": record.get("likelihoods"),
    }


def check(row: Record, fresh: Freshness, dialect: str, *, seed: bool = False) -> dict[str, Any]:
    """A saved eval or test (`dialect`), with its read-time freshness."""

    def summary(s: dict[str, Any] | None) -> dict[str, Any] | None:
        if not s:
            return None
        return {**s, "block_config_fingerprint": s.get("block_execution_fingerprint")}

    return {
        "id": row["id"],
        "object": f"workflow_{dialect}",
        "workflow_id": row["workflow_id"],
        "target": {"type": "block", "block_id": row["block_id"]},
        "source": source(row["source"], seed=seed),
        "name": row["name"],
        "assertion": row["assertion"],
        "assertion_schema_dep": None,
        "assertion_drift_status": None,
        "schema_drift": "unknown",
        "freshness": freshness(fresh),
        "drift": {"status": "unknown", "affected_targets": []},
        "validation_status": "valid",
        "validation_issues": [],
        "latest_run_summary": summary(row.get("latest")),
        "latest_passing_run_summary": summary(row.get("latest_passing")),
        "latest_failing_run_summary": summary(row.get("latest_failing")),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
