"""core.lifecycle as tables: transitions, counts arithmetic, the final status and the score of a run."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core import lifecycle as lc

TS = "2026-01-01T00:00:00.000Z"


def state(kind_total: int = 4, **counts: Any) -> dict[str, Any]:
    st = lc.new_state(kind_total)
    st.update(counts)
    st.setdefault("started_at", None)
    st.setdefault("completed_at", None)
    st.setdefault("error", None)
    st.setdefault("cancel_reason", None)
    st.setdefault("stats", {})
    return st


@pytest.mark.parametrize(
    ("src", "dst", "allowed"),
    [
        ("pending", "queued", True),
        ("pending", "running", True),
        ("pending", "cancelled", True),
        ("queued", "running", True),
        ("queued", "pending", True),  # a claim given up
        ("running", "pending", True),  # a runner that died: the child runs again
        ("running", "completed", True),
        ("running", "error", True),
        ("running", "queued", False),
        ("completed", "running", False),
        ("completed", "pending", False),
        ("error", "completed", False),
        ("cancelled", "queued", False),
        ("nonsense", "queued", False),
    ],
)
def test_transitions(src: str, dst: str, allowed: bool) -> None:
    assert lc.can_transition(src, dst) is allowed


@pytest.mark.parametrize(
    ("child", "starts"),
    [
        ("queued", True),
        ("pending", False),
        ("running", False),
        ("completed", False),
        ("cancelled", False),
        (None, False),
    ],
)
def test_a_child_starts_only_once_claimed(child: str | None, starts: bool) -> None:
    assert lc.can_start(child) is starts


@pytest.mark.parametrize(
    ("child", "new", "finishes"),
    [
        ("running", "completed", True),
        ("running", "error", True),
        ("queued", "completed", True),  # finished before its start was committed
        ("pending", "completed", False),
        ("completed", "completed", False),  # committed twice (a crash between commit and ack)
        ("cancelled", "completed", False),  # its run was cancelled meanwhile
        ("running", "cancelled", False),  # cancelling is the run's business, not a finish
        ("running", "running", False),
        (None, "completed", False),
    ],
)
def test_a_finish_applies_only_to_an_open_claimed_child(child: str | None, new: str, finishes: bool) -> None:
    assert lc.can_finish(child, new) is finishes


def test_counts_follow_a_child_through_its_life() -> None:
    st = state(3)
    assert lc.queue(st) and st["status"] == "queued"
    assert not lc.queue(st)
    lc.claim(st, 2)
    assert (st["c_pending"], st["c_queued"]) == (1, 2)
    lc.start(st, TS)
    assert (st["status"], st["started_at"], st["c_queued"], st["c_running"]) == ("running", TS, 1, 1)
    lc.start(st, "2026-01-02T00:00:00.000Z")
    assert st["started_at"] == TS, "the first start stays the run's start"
    lc.finish(st, "running", "completed", "passed", None)
    lc.finish(st, "running", "completed", "failed", None)
    assert (st["c_running"], st["c_completed"], st["o_passed"], st["o_failed"]) == (0, 2, 1, 1)
    assert not lc.close_if_done("eval", st, TS), "one child is still pending"
    lc.claim(st, 1)
    lc.finish(st, "queued", "error", None, None)
    assert lc.close_if_done("eval", st, TS)
    assert (st["status"], st["completed_at"], st["error"]) == ("completed", TS, None)
    assert lc.invariant_violations(st) == []
    assert not lc.close_if_done("eval", st, TS), "terminal already"


@pytest.mark.parametrize(
    ("kind", "completed", "errors", "status", "code"),
    [
        ("eval", 0, 3, "completed", None),  # eval children that err are results, not a run failure
        ("test", 2, 1, "completed", None),
        ("experiment", 2, 1, "completed", None),
        ("experiment", 0, 3, "error", "all_documents_failed"),
        ("experiment", 0, 0, "completed", None),  # an empty experiment
    ],
)
def test_final_status(kind: str, completed: int, errors: int, status: str, code: str | None) -> None:
    st = state(completed + errors, c_pending=0, c_completed=completed, c_error=errors)
    got, error = lc.final_status(kind, st)
    assert got == status
    assert (error or {}).get("error_code") == code


@pytest.mark.parametrize(
    ("kind", "scores", "expected"),
    [
        ("experiment", [1.0, 0.5], 0.75),
        ("experiment", [0.2], 0.2),
        ("experiment", [], None),
        ("eval", [], None),
    ],
)
def test_the_run_score_is_the_mean_document_score(kind: str, scores: list[float], expected: float | None) -> None:
    st = state(len(scores) or 1, c_pending=0 if scores else 1)
    for s in scores:
        lc.finish(st, "pending", "completed", None, s)
    got = lc.run_score(kind, st)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)
        assert lc.mean_score(sum(scores), len(scores)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("counts", "status", "cancelled"),
    [
        ({"c_pending": 2, "c_queued": 1, "c_running": 1, "c_completed": 1}, "cancelled", 4),
        ({"c_pending": 0, "c_completed": 5}, "error", 0),
    ],
)
def test_terminate_cancels_every_open_child(counts: dict[str, int], status: lc.RunStatus, cancelled: int) -> None:
    st = state(5, **counts)
    n = lc.terminate("eval", st, status, TS, error=None, reason="because")
    assert n == cancelled
    assert lc.open_count(st) == 0 and st["c_cancelled"] == cancelled
    assert (st["status"], st["cancel_reason"], st["completed_at"]) == (status, "because", TS)
    assert lc.invariant_violations(st) == []


def test_release_returns_claimed_and_running_children_to_pending() -> None:
    st = state(5, c_pending=1, c_queued=2, c_running=1, c_completed=1)
    lc.release(st, 2, 1)
    assert (st["c_pending"], st["c_queued"], st["c_running"], st["c_completed"]) == (4, 0, 0, 1)
    assert lc.invariant_violations(st) == []


def test_stats_add_up() -> None:
    st = state(1)
    lc.add_stats(st, {"retried": 2})
    lc.add_stats(st, {"retried": 1, "timed_out": 1})
    lc.add_stats(st, {})
    assert st["stats"] == {"retried": 3, "timed_out": 1}


@pytest.mark.parametrize(
    ("counts", "problem"),
    [
        ({"total": 3, "c_pending": 2}, "lifecycle counts sum to 2"),
        ({"total": 1, "c_pending": 0, "c_completed": 1, "o_passed": 1, "o_failed": 1}, "outcomes sum to 2"),
        ({"total": 0, "c_pending": -1, "c_completed": 1}, "negative"),
        ({"total": 1, "status": "completed"}, "still open"),
    ],
)
def test_invariant_violations_name_the_problem(counts: dict[str, Any], problem: str) -> None:
    st = state(1)
    st.update(counts)
    assert any(problem in p for p in lc.invariant_violations(st))
