"""Freshness and staleness (spec §3.6–3.7): does an earlier verdict still hold for the current block
config, inputs and assertion? Pure comparisons of the fingerprints a run recorded with the current ones."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.core.lifecycle import OPEN
from orchestrator.core.planning import check_fingerprints, metrics_validity_fingerprint, scope_target

FreshnessStatus = Literal["fresh", "stale", "unknown"]
PlanMode = Literal["run", "noop", "conflict"]

# Spec §3.7: an experiment's public status is its latest run's, in the experiment's words.
_EXPERIMENT_STATUS = {
    "pending": "processing",
    "queued": "processing",
    "running": "processing",
    "completed": "completed",
    "error": "failed",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Fingerprints:
    """The three a verdict depends on; `block` is one block's execution fingerprint, or a workflow's blocks'."""

    validity: str | None = None
    inputs: str | None = None
    block: str | None = None


@dataclass(frozen=True)
class Freshness:
    status: FreshnessStatus
    reasons: tuple[str, ...] = ()
    validity_fingerprint: str | None = None
    input_fingerprint: str | None = None
    baseline_run_id: str | None = None


NO_BASELINE = Freshness("unknown", ("no_baseline",))


def compare(recorded: Fingerprints, current: Fingerprints | None) -> tuple[FreshnessStatus, tuple[str, ...]]:
    """Fresh when the validity fingerprints agree; else stale, saying what moved. `current` is None
    when what the verdict was about is gone (its block was deleted)."""
    if current is None:
        return "stale", ("validity_changed",)
    if recorded.validity is not None and recorded.validity == current.validity:
        return "fresh", ()
    reasons = ["inputs_changed"] if recorded.inputs != current.inputs else []
    if recorded.block != current.block or not reasons:
        # The config moved, or nothing else explains the change (the assertion or the engine version).
        reasons.insert(0, "validity_changed")
    return "stale", tuple(reasons)


def check_freshness(
    latest: Mapping[str, Any] | None,
    block: Mapping[str, Any] | None,
    source: Mapping[str, Any] | None,
    assertion: Any,
) -> Freshness:
    """A saved eval/test (the authoritative read-time verdict): its latest run summary against its
    block, inputs and assertion as they are now. `block` is None when the block was deleted."""
    if not latest:
        return NO_BASELINE
    recorded = Fingerprints(
        latest.get("validity_fingerprint"),
        latest.get("handle_inputs_fingerprint"),
        latest.get("block_execution_fingerprint"),
    )
    current = None
    if block is not None:
        fps = check_fingerprints(block, source, assertion)
        current = Fingerprints(
            fps["validity_fingerprint"], fps["handle_inputs_fingerprint"], fps["block_execution_fingerprint"]
        )
    status, reasons = compare(recorded, current)
    return Freshness(status, reasons, recorded.validity, recorded.inputs, latest.get("run_record_id"))


def _run_fingerprints(fps: Mapping[str, Any]) -> Fingerprints:
    return Fingerprints(
        fps.get("validity_fingerprint"),
        fps.get("input_fingerprint"),
        fps.get("block_execution_fingerprint") or fps.get("blocks_fingerprint"),
    )


def eval_run_freshness(
    run: Mapping[str, Any], current: Mapping[str, Any] | None, baseline: Mapping[str, Any] | None = None
) -> Freshness:
    """An eval/test run (the compatibility copy on the run; spec §3.6). `current` is the plan its scope
    makes now (`planning.plan_check_run`), `baseline` the latest completed run of the same scope.

    * An open run (pending, queued, running) has no verdict yet. It will check what its scope plans now
      (runs execute the current draft), so its fingerprints are the plan's; it is fresh or stale against
      the baseline's (with what moved since), unknown (`no_baseline`) without one.
    * A finished run is its own baseline: the fingerprints it recorded when planned against the plan
      now, stale after a block, assertion or input edit. Unknown if it recorded no validity
      (planned by an earlier version)."""
    recorded = run.get("fingerprints") or {}
    if run.get("status") in OPEN:
        plan = _run_fingerprints(current if current is not None else recorded)
        if baseline is None:
            return Freshness("unknown", ("no_baseline",), plan.validity, plan.inputs, None)
        status, reasons = compare(_run_fingerprints(baseline.get("fingerprints") or {}), plan)
        return Freshness(status, reasons, plan.validity, plan.inputs, baseline.get("id"))
    mine = _run_fingerprints(recorded)
    if mine.validity is None:
        return Freshness("unknown", ("no_baseline",), None, mine.inputs, None)
    status, reasons = compare(mine, None if current is None else _run_fingerprints(current))
    return Freshness(status, reasons, mine.validity, mine.inputs, run.get("id"))


def same_scope(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two eval/test runs over the same checks: the same scope type and target (`workflow` = omitted)."""

    def key(scope: Mapping[str, Any] | None) -> tuple[str, str | None, str | None]:
        return ((scope or {}).get("type") or "workflow", *scope_target(scope))

    return key(a) == key(b)


def experiment_freshness(
    last_run: Mapping[str, Any] | None, block_fp: str | None, documents_fp: str, n_consensus: int | None = None
) -> Freshness:
    """An experiment: its latest run against the block config, the document set and the number of
    passes (`n_consensus`, which the experiment sets over the block's) as they are now."""
    if last_run is None:
        return Freshness("unknown", ("no_baseline",), block_fp, documents_fp, None)
    fps = last_run.get("fingerprints") or {}
    reasons = []
    moved_n = n_consensus is not None and last_run.get("n_consensus") not in (None, n_consensus)
    if fps.get("block_execution_fingerprint") != block_fp or moved_n:
        reasons.append("validity_changed")
    if fps.get("documents_fingerprint") != documents_fp:
        reasons.append("inputs_changed")
    return Freshness("stale" if reasons else "fresh", tuple(reasons), block_fp, documents_fp, last_run.get("id"))


@dataclass(frozen=True)
class ExperimentPlan:
    """What a new run of an experiment would do (spec §3.6 run plan)."""

    mode: PlanMode
    rerunnable_document_count: int
    plan_token: str | None


def experiment_plan(
    freshness: Freshness,
    last_status: str | None,
    document_count: int,
    block_fp: str | None,
    documents_fp: str,
    n_consensus: int | None = None,
) -> ExperimentPlan:
    """`conflict` while the latest run is in flight, `noop` when it completed and still holds, else `run`.
    The plan token pins the previewed config, documents and passes (None when the block is gone)."""
    if last_status in OPEN:
        mode: PlanMode = "conflict"
    elif freshness.status == "fresh" and last_status == "completed":
        mode = "noop"
    else:
        mode = "run"
    token = metrics_validity_fingerprint(block_fp, documents_fp, n_consensus) if block_fp else None
    return ExperimentPlan(mode, document_count if mode == "run" else 0, token)


def plan_token_holds(token: str | None, block_fp: str, documents_fp: str, n_consensus: int | None = None) -> bool:
    """A run created with a previewed plan's token: refused when the config, documents or passes moved."""
    return not token or token == metrics_validity_fingerprint(block_fp, documents_fp, n_consensus)


def experiment_status(last_status: str | None) -> str:
    """`draft` until the first run, then the latest run's status in the experiment's words."""
    return _EXPERIMENT_STATUS.get(last_status, "draft") if last_status else "draft"


def metrics_staleness(
    recorded: Mapping[str, Any],
    block_fp: str | None,
    documents_fp: str,
    run_n: int | None = None,
    current_n: int | None = None,
) -> tuple[str, ...]:
    """Why a run's metrics no longer describe the experiment (empty: they still do). Scores of 5 passes
    do not describe an experiment of 7: its `n_consensus` is part of what they measure."""
    reasons = []
    if recorded.get("block_execution_fingerprint") != block_fp:
        reasons.append("config_changed")
    if recorded.get("documents_fingerprint") != documents_fp:
        reasons.append("documents_changed")
    if run_n is not None and current_n is not None and run_n != current_n:
        reasons.append("n_consensus_changed")
    return tuple(reasons)
