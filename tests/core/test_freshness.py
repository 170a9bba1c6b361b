"""Freshness and staleness (spec §3.6–3.7) of saved checks, eval/test runs, experiments and metrics, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core import planning
from orchestrator.core.freshness import (
    Fingerprints,
    Freshness,
    check_freshness,
    compare,
    eval_run_freshness,
    experiment_freshness,
    experiment_plan,
    experiment_status,
    metrics_staleness,
    plan_token_holds,
)

VAL, INP, BLK = "validity", "inputs", "block"


@pytest.mark.parametrize(
    ("recorded", "current", "status", "reasons"),
    [
        (Fingerprints(VAL, INP, BLK), Fingerprints(VAL, INP, BLK), "fresh", ()),
        (Fingerprints(VAL, INP, BLK), None, "stale", ("validity_changed",)),  # what it was about is gone
        (Fingerprints(VAL, INP, BLK), Fingerprints("v2", INP, "b2"), "stale", ("validity_changed",)),
        (Fingerprints(VAL, INP, BLK), Fingerprints("v2", "i2", BLK), "stale", ("inputs_changed",)),
        (Fingerprints(VAL, INP, BLK), Fingerprints("v2", "i2", "b2"), "stale", ("validity_changed", "inputs_changed")),
        # Nothing but the validity moved (the assertion, or the engine version): the config is to blame.
        (Fingerprints(VAL, INP, BLK), Fingerprints("v2", INP, BLK), "stale", ("validity_changed",)),
        # A recorded validity of None never matches, even a None.
        (Fingerprints(None, INP, BLK), Fingerprints(None, INP, BLK), "stale", ("validity_changed",)),
    ],
)
def test_compare(recorded: Fingerprints, current: Fingerprints | None, status: str, reasons: tuple[str, ...]) -> None:
    assert compare(recorded, current) == (status, reasons)


BLOCK = {"id": "blk", "type": "extract", "config": {"model": "simulated"}}
SOURCE = {"type": "manual", "handle_inputs": {"in": {"type": "json", "data": {"total": 1}}}}
ASSERTION = {"target": {"output_handle_id": "out", "path": "total"}, "condition": {"kind": "exists"}}


def latest(
    block: dict[str, Any] = BLOCK, source: dict[str, Any] = SOURCE, assertion: Any = ASSERTION
) -> dict[str, Any]:
    """The summary a completed run records on its check (what the executor writes)."""
    fps = planning.check_fingerprints(block, source, assertion)
    return {"run_record_id": "wfevalrun_1", **fps}


OTHER_BLOCK = {**BLOCK, "config": {"model": "other"}}
MOVED_BLOCK = {**BLOCK, "config": {"model": "simulated", "position_x": 40}}
OTHER_SOURCE = {"type": "manual", "handle_inputs": {"in": {"type": "json", "data": {"total": 2}}}}
OTHER_ASSERTION = {**ASSERTION, "condition": {"kind": "not_exists"}}


@pytest.mark.parametrize(
    ("summary", "block", "source", "assertion", "status", "reasons"),
    [
        (None, BLOCK, SOURCE, ASSERTION, "unknown", ("no_baseline",)),
        (latest(), BLOCK, SOURCE, ASSERTION, "fresh", ()),
        (latest(), MOVED_BLOCK, SOURCE, ASSERTION, "fresh", ()),  # layout is not executable
        (latest(), OTHER_BLOCK, SOURCE, ASSERTION, "stale", ("validity_changed",)),
        (latest(), BLOCK, OTHER_SOURCE, ASSERTION, "stale", ("inputs_changed",)),
        (latest(), BLOCK, SOURCE, OTHER_ASSERTION, "stale", ("validity_changed",)),
        (latest(), OTHER_BLOCK, OTHER_SOURCE, ASSERTION, "stale", ("validity_changed", "inputs_changed")),
        (latest(), None, SOURCE, ASSERTION, "stale", ("validity_changed",)),  # the block was deleted
        (latest(OTHER_BLOCK), OTHER_BLOCK, SOURCE, ASSERTION, "fresh", ()),  # changed back
    ],
)
def test_check_freshness(
    summary: dict[str, Any] | None,
    block: dict[str, Any] | None,
    source: dict[str, Any],
    assertion: Any,
    status: str,
    reasons: tuple[str, ...],
) -> None:
    f = check_freshness(summary, block, source, assertion)
    assert (f.status, f.reasons) == (status, reasons)
    if summary is None:
        assert f == Freshness("unknown", ("no_baseline",))
    else:
        assert f.baseline_run_id == "wfevalrun_1"
        assert (f.validity_fingerprint, f.input_fingerprint) == (
            summary["validity_fingerprint"],
            summary["handle_inputs_fingerprint"],
        )


def _check(cid: str, block: str = "blk", total: int = 1) -> dict[str, Any]:
    source = {"type": "manual", "handle_inputs": {"in": {"type": "json", "data": {"total": total}}}}
    return {"id": cid, "block_id": block, "source": source, "assertion": ASSERTION}


BLOCKS = {"blk": BLOCK}
CHECKS = [_check("c1"), _check("c2", total=2)]


def plan(scope: dict[str, Any] | None, checks: list[dict[str, Any]], blocks: dict[str, Any]) -> dict[str, str]:
    return planning.plan_check_run(scope, checks, blocks).fingerprints


BY_BLOCK = {"type": "block", "block_id": "blk"}
SINGLE = {"type": "single", "eval_id": "c1"}


@pytest.mark.parametrize(
    ("scope", "checks_now", "blocks_now", "status", "reasons"),
    [
        (None, CHECKS, BLOCKS, "fresh", ()),
        (None, CHECKS, {"blk": OTHER_BLOCK}, "stale", ("validity_changed",)),
        (None, [CHECKS[0], _check("c2", total=3)], BLOCKS, "stale", ("inputs_changed",)),
        (None, [*CHECKS, _check("c3")], BLOCKS, "stale", ("inputs_changed",)),  # a check was added
        (None, CHECKS[:1], {"blk": OTHER_BLOCK}, "stale", ("validity_changed", "inputs_changed")),
        (BY_BLOCK, CHECKS, BLOCKS, "fresh", ()),
        (BY_BLOCK, CHECKS, {"blk": MOVED_BLOCK}, "fresh", ()),
        (BY_BLOCK, CHECKS, {"blk": OTHER_BLOCK}, "stale", ("validity_changed",)),
        (BY_BLOCK, CHECKS, {}, "stale", ("validity_changed",)),  # the block was deleted
        (SINGLE, CHECKS[:1], BLOCKS, "fresh", ()),
        (SINGLE, [], BLOCKS, "stale", ("validity_changed", "inputs_changed")),  # the check was deleted
    ],
)
def test_eval_run_freshness(
    scope: dict[str, Any] | None,
    checks_now: list[dict[str, Any]],
    blocks_now: dict[str, Any],
    status: str,
    reasons: tuple[str, ...],
) -> None:
    recorded = plan(scope, CHECKS[:1] if scope == SINGLE else CHECKS, BLOCKS)
    f = eval_run_freshness("wfevalrun_1", recorded, plan(scope, checks_now, blocks_now))
    assert (f.status, f.reasons) == (status, reasons)
    assert (f.validity_fingerprint, f.input_fingerprint, f.baseline_run_id) == (
        recorded["validity_fingerprint"],
        recorded["input_fingerprint"],
        "wfevalrun_1",
    )


def test_eval_run_freshness_without_a_recorded_validity_is_unknown() -> None:
    """Workflow-scoped runs planned before runs recorded a validity fingerprint for every scope."""
    f = eval_run_freshness("wfevalrun_old", {"input_fingerprint": "abc"}, plan(None, CHECKS, BLOCKS))
    assert f == Freshness("unknown", ("no_baseline",), None, "abc", None)


def run(status: str, bfp: str = "bfp", dfp: str = "dfp") -> dict[str, Any]:
    fingerprints = {"block_execution_fingerprint": bfp, "documents_fingerprint": dfp}
    return {"id": "exprun_1", "status": status, "fingerprints": fingerprints}


@pytest.mark.parametrize(
    ("last", "block_fp", "status", "reasons", "mode", "rerunnable"),
    [
        (None, "bfp", "unknown", ("no_baseline",), "run", 4),
        (run("completed"), "bfp", "fresh", (), "noop", 0),
        (run("completed", bfp="old"), "bfp", "stale", ("validity_changed",), "run", 4),
        (run("completed", dfp="old"), "bfp", "stale", ("inputs_changed",), "run", 4),
        (run("completed", "old", "old"), "bfp", "stale", ("validity_changed", "inputs_changed"), "run", 4),
        (run("completed"), None, "stale", ("validity_changed",), "run", 4),  # the block was deleted
        (run("running"), "bfp", "fresh", (), "conflict", 0),
        (run("pending", bfp="old"), "bfp", "stale", ("validity_changed",), "conflict", 0),
        (run("queued"), "bfp", "fresh", (), "conflict", 0),
        (run("error"), "bfp", "fresh", (), "run", 4),
        (run("cancelled"), "bfp", "fresh", (), "run", 4),
    ],
)
def test_experiment_freshness_and_plan(
    last: dict[str, Any] | None,
    block_fp: str | None,
    status: str,
    reasons: tuple[str, ...],
    mode: str,
    rerunnable: int,
) -> None:
    f = experiment_freshness(last, block_fp, "dfp")
    assert (f.status, f.reasons) == (status, reasons)
    assert (f.validity_fingerprint, f.input_fingerprint) == (block_fp, "dfp")
    assert f.baseline_run_id == (last["id"] if last else None)
    p = experiment_plan(f, last["status"] if last else None, 4, block_fp, "dfp")
    assert (p.mode, p.rerunnable_document_count) == (mode, rerunnable)
    assert p.plan_token == (planning.metrics_validity_fingerprint(block_fp, "dfp") if block_fp else None)


@pytest.mark.parametrize(
    ("token", "block_fp", "documents_fp", "holds"),
    [
        (None, "bfp", "dfp", True),
        ("", "bfp", "dfp", True),
        (planning.metrics_validity_fingerprint("bfp", "dfp"), "bfp", "dfp", True),
        (planning.metrics_validity_fingerprint("bfp", "dfp"), "other", "dfp", False),
        (planning.metrics_validity_fingerprint("bfp", "dfp"), "bfp", "other", False),
        ("stale", "bfp", "dfp", False),
    ],
)
def test_plan_token(token: str | None, block_fp: str, documents_fp: str, holds: bool) -> None:
    assert plan_token_holds(token, block_fp, documents_fp) is holds


@pytest.mark.parametrize(
    ("last_status", "public"),
    [
        (None, "draft"),
        ("pending", "processing"),
        ("queued", "processing"),
        ("running", "processing"),
        ("completed", "completed"),
        ("error", "failed"),
        ("cancelled", "cancelled"),
        ("unheard_of", "draft"),
    ],
)
def test_experiment_status(last_status: str | None, public: str) -> None:
    assert experiment_status(last_status) == public


@pytest.mark.parametrize(
    ("recorded", "block_fp", "reasons"),
    [
        ({"block_execution_fingerprint": "bfp", "documents_fingerprint": "dfp"}, "bfp", ()),
        ({"block_execution_fingerprint": "old", "documents_fingerprint": "dfp"}, "bfp", ("config_changed",)),
        ({"block_execution_fingerprint": "bfp", "documents_fingerprint": "old"}, "bfp", ("documents_changed",)),
        ({"block_execution_fingerprint": "bfp", "documents_fingerprint": "dfp"}, None, ("config_changed",)),
        ({}, "bfp", ("config_changed", "documents_changed")),
    ],
)
def test_metrics_staleness(recorded: dict[str, Any], block_fp: str | None, reasons: tuple[str, ...]) -> None:
    assert metrics_staleness(recorded, block_fp, "dfp") == reasons
