"""Experiments as the SDK reads them (spec §2.11–2.14, §3.6–3.7), and the metrics envelopes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.core.freshness import ExperimentPlan, Freshness
from orchestrator.store.records import Record
from orchestrator.wire.render import freshness, handle_inputs, lifecycle


def experiment(
    exp: Record, block_type: str, last_run: Record | None, status: str, fresh: Freshness, plan: ExperimentPlan
) -> dict[str, Any]:
    """`WorkflowExperiment`: the freshness both as the envelope and in the flat mirror fields."""
    return {
        "id": exp["id"],
        "object": "experiment",
        "workflow_id": exp["workflow_id"],
        "block_id": exp["block_id"],
        "block_type": block_type,
        "name": exp["name"],
        "n_consensus": exp["n_consensus"],
        "document_count": exp["document_count"],
        "last_run_id": exp["last_run_id"],
        "created_at": exp["created_at"],
        "updated_at": exp["updated_at"],
        "status": status,
        "score": last_run.get("score") if last_run else None,
        "is_stale": fresh.status == "stale",
        "freshness": freshness(fresh),
        "freshness_state": fresh.status,
        "freshness_reasons": list(fresh.reasons),
        "run_plan_mode": plan.mode,
        "rerunnable_document_count": plan.rerunnable_document_count,
        "plan_token": plan.plan_token,
        "schema_drift": "unknown",
        "drift": {"status": "unknown", "affected_targets": []},
    }


def documents(docs: Sequence[Record]) -> dict[str, Any]:
    return {
        "data": [
            {"id": d["id"], "filename": d["filename"], "handle_inputs": handle_inputs(d["handle_inputs"])} for d in docs
        ],
        "list_metadata": {"before": None, "after": None},
    }


def cancelled_run(run_id: str, status: str, reason: str | None) -> dict[str, Any]:
    return {"id": run_id, "lifecycle": lifecycle(status, None, reason)}


_WHAT_MOVED = {
    "config_changed": "the block config",
    "documents_changed": "the document set",
    "n_consensus_changed": "the experiment's n_consensus",
}


def _stale_message(reasons: tuple[str, ...]) -> str:
    moved = [_WHAT_MOVED.get(r, r) for r in reasons] or ["the experiment"]
    return f"{' and '.join(moved).capitalize()} changed since this run; run the experiment again."


def stale_metrics(
    view: str, experiment_id: str, run: Record, reasons: tuple[str, ...], current_fp: str | None
) -> dict[str, Any]:
    fps = run.get("fingerprints") or {}
    return {
        "kind": "stale_metrics",
        "view": view,
        "error": "stale_metrics",
        "experiment_id": experiment_id,
        "stale_reasons": list(reasons),
        "current_block_execution_fingerprint": current_fp,
        "current_config_fingerprint": current_fp,
        "last_run": {
            "run_id": run["id"],
            "block_execution_fingerprint": fps.get("block_execution_fingerprint"),
            "definition_fingerprint": fps.get("block_execution_fingerprint"),
            "score": run.get("score"),
            "created_at": run["created_at"],
        },
        "message": _stale_message(reasons),
    }


def no_metrics(view: str, experiment_id: str, run: Record) -> dict[str, Any]:
    return {
        "kind": "no_metrics",
        "view": view,
        "error": "no_metrics",
        "experiment_id": experiment_id,
        "message": f"Run {run['id']} has no completed results to score yet.",
    }
