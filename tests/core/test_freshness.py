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
    same_scope,
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
    done = {"id": "wfevalrun_1", "status": "completed", "fingerprints": recorded}
    f = eval_run_freshness(done, plan(scope, checks_now, blocks_now))
    assert (f.status, f.reasons) == (status, reasons)
    assert (f.validity_fingerprint, f.input_fingerprint, f.baseline_run_id) == (
        recorded["validity_fingerprint"],
        recorded["input_fingerprint"],
        "wfevalrun_1",  # a finished run is its own baseline
    )


def test_eval_run_freshness_without_a_recorded_validity_is_unknown() -> None:
    """Workflow-scoped runs planned before runs recorded a validity fingerprint for every scope."""
    old = {"id": "wfevalrun_old", "status": "completed", "fingerprints": {"input_fingerprint": "abc"}}
    f = eval_run_freshness(old, plan(None, CHECKS, BLOCKS))
    assert f == Freshness("unknown", ("no_baseline",), None, "abc", None)


@pytest.mark.parametrize("status", ["pending", "queued", "running"])
@pytest.mark.parametrize(
    ("baseline_checks", "baseline_blocks", "fresh", "reasons"),
    [
        (None, None, "unknown", ("no_baseline",)),  # never run: nothing to be fresh against
        (CHECKS, BLOCKS, "fresh", ()),  # it will confirm the latest completed run
        (CHECKS, {"blk": OTHER_BLOCK}, "stale", ("validity_changed",)),  # the block moved since the baseline
        ([CHECKS[0], _check("c2", total=3)], BLOCKS, "stale", ("inputs_changed",)),  # an input moved
        (
            [CHECKS[0], {**CHECKS[1], "assertion": {**ASSERTION, "condition": {"kind": "not_exists"}}}],
            BLOCKS,
            "stale",
            ("validity_changed",),
        ),  # an assertion moved
    ],
)
def test_an_open_run_is_computed_from_its_plan(
    status: str,
    baseline_checks: list[dict[str, Any]] | None,
    baseline_blocks: dict[str, Any] | None,
    fresh: str,
    reasons: tuple[str, ...],
) -> None:
    """Pending (or running): no verdict of its own yet. Its fingerprints are the plan's (what it will run,
    never "fresh" by itself), compared with the latest completed run of its scope."""
    now = plan(BY_BLOCK, CHECKS, BLOCKS)
    # What the run recorded when created may be older than the plan now: the plan wins (runs execute the draft).
    run = {"id": "wfevalrun_2", "status": status, "fingerprints": plan(BY_BLOCK, CHECKS, {"blk": OTHER_BLOCK})}
    baseline = None
    if baseline_checks is not None and baseline_blocks is not None:
        baseline = {
            "id": "wfevalrun_1",
            "status": "completed",
            "fingerprints": plan(BY_BLOCK, baseline_checks, baseline_blocks),
        }
    f = eval_run_freshness(run, now, baseline)
    assert (f.status, f.reasons) == (fresh, reasons)
    assert (f.validity_fingerprint, f.input_fingerprint) == (now["validity_fingerprint"], now["input_fingerprint"])
    assert f.baseline_run_id == (None if baseline is None else "wfevalrun_1")


def test_a_one_check_run_has_the_checks_own_fingerprints() -> None:
    """The run of a single eval (or of a block with one eval) and the eval itself: the same fingerprints."""
    own = planning.check_fingerprints(BLOCK, CHECKS[0]["source"], CHECKS[0]["assertion"])
    for scope in (SINGLE, BY_BLOCK):
        fps = plan(scope, CHECKS[:1], BLOCKS)
        assert fps["validity_fingerprint"] == own["validity_fingerprint"]
        assert fps["input_fingerprint"] == own["handle_inputs_fingerprint"]
        assert fps["block_execution_fingerprint"] == own["block_execution_fingerprint"]
    summary = {"run_record_id": "wfevalrun_1", **own}
    eval_view = check_freshness(summary, BLOCK, CHECKS[0]["source"], CHECKS[0]["assertion"])
    run_view = eval_run_freshness(
        {"id": "wfevalrun_1", "status": "completed", "fingerprints": plan(SINGLE, CHECKS[:1], BLOCKS)},
        plan(SINGLE, CHECKS[:1], BLOCKS),
    )
    assert (eval_view.validity_fingerprint, eval_view.input_fingerprint, eval_view.baseline_run_id) == (
        run_view.validity_fingerprint,
        run_view.input_fingerprint,
        run_view.baseline_run_id,
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (None, {"type": "workflow"}, True),
        ({"type": "single", "eval_id": "c1"}, {"type": "single", "test_id": "c1"}, True),
        ({"type": "single", "eval_id": "c1"}, {"type": "single", "eval_id": "c2"}, False),
        ({"type": "block", "block_id": "b"}, {"type": "workflow"}, False),
    ],
)
def test_same_scope(a: dict[str, Any] | None, b: dict[str, Any] | None, same: bool) -> None:
    assert same_scope(a, b) is same


def run(status: str, bfp: str = "bfp", dfp: str = "dfp", n: int = 5) -> dict[str, Any]:
    fingerprints = {"block_execution_fingerprint": bfp, "documents_fingerprint": dfp}
    return {"id": "exprun_1", "status": status, "fingerprints": fingerprints, "n_consensus": n}


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
        # n_consensus 5 → 7: the n = 5 run no longer describes the experiment (it said fresh / noop).
        (run("completed", n=7), "bfp", "stale", ("validity_changed",), "run", 4),
        (run("completed", "old", n=7), "bfp", "stale", ("validity_changed",), "run", 4),
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
    f = experiment_freshness(last, block_fp, "dfp", 5)
    assert (f.status, f.reasons) == (status, reasons)
    assert (f.validity_fingerprint, f.input_fingerprint) == (block_fp, "dfp")
    assert f.baseline_run_id == (last["id"] if last else None)
    p = experiment_plan(f, last["status"] if last else None, 4, block_fp, "dfp", 5)
    assert (p.mode, p.rerunnable_document_count) == (mode, rerunnable)
    assert p.plan_token == (planning.metrics_validity_fingerprint(block_fp, "dfp", 5) if block_fp else None)


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


def test_plan_token_pins_n_consensus() -> None:
    token = planning.metrics_validity_fingerprint("bfp", "dfp", 5)
    assert plan_token_holds(token, "bfp", "dfp", 5)
    assert not plan_token_holds(token, "bfp", "dfp", 7)


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


@pytest.mark.parametrize(
    ("run_n", "current_n", "reasons"),
    [(5, 5, ()), (5, 7, ("n_consensus_changed",)), (None, 7, ()), (3, None, ())],
)
def test_metrics_of_other_n_consensus_are_stale(
    run_n: int | None, current_n: int | None, reasons: tuple[str, ...]
) -> None:
    fps = {"block_execution_fingerprint": "bfp", "documents_fingerprint": "dfp"}
    assert metrics_staleness(fps, "bfp", "dfp", run_n, current_n) == reasons
