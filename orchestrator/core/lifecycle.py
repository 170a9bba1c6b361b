"""Statuses, transitions, counts arithmetic, the final status and the score of a run (spec §3.1–3.3).

A run's mutable state is a `RunState` mapping whose keys mirror the stored columns (`c_<status>` lifecycle
counts, `o_<verdict>` outcome counts, `score_sum` …). Every change to it goes through the functions here;
a store reads the state, applies one of them, and writes the result in the same transaction, so each
rule has exactly one implementation whatever the store.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

RunStatus = Literal["pending", "queued", "running", "completed", "error", "cancelled"]
ChildStatus = RunStatus
Verdict = Literal["passed", "failed", "blocked"]
RunKind = Literal["eval", "test", "experiment"]

STATUSES: tuple[RunStatus, ...] = ("pending", "queued", "running", "completed", "error", "cancelled")
VERDICTS: tuple[Verdict, ...] = ("passed", "failed", "blocked")
TERMINAL: frozenset[str] = frozenset({"completed", "error", "cancelled"})
OPEN: frozenset[str] = frozenset({"pending", "queued", "running"})

# A run and a child move forward only. `queued` means claimed by a runner; a claim that is given up
# (a runner that stopped or died) goes back to `pending`, which is the one step back.
_ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"queued", "running", "completed", "error", "cancelled"}),
    "queued": frozenset({"pending", "running", "completed", "error", "cancelled"}),
    "running": frozenset({"pending", "completed", "error", "cancelled"}),
    "completed": frozenset(),
    "error": frozenset(),
    "cancelled": frozenset(),
}

RunState = MutableMapping[str, Any]


def can_transition(src: str, dst: str) -> bool:
    return dst in _ALLOWED.get(src, frozenset())


def can_start(child_status: str | None) -> bool:
    """A child starts only from `queued` (claimed): never twice, never after its run was cancelled."""
    return child_status == "queued"


def can_finish(child_status: str | None, new_status: str) -> bool:
    """A finish applies only to an open, claimed child: a result committed before a crash, or one of a
    child cancelled meanwhile, is never counted twice."""
    return (
        child_status in ("queued", "running")
        and new_status in ("completed", "error")
        and can_transition(child_status, new_status)
    )


def lifecycle_counts(state: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(state.get(f"c_{k}") or 0) for k in STATUSES}


def outcome_counts(state: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(state.get(f"o_{k}") or 0) for k in VERDICTS}


def open_count(state: Mapping[str, Any]) -> int:
    return sum(int(state.get(f"c_{k}") or 0) for k in ("pending", "queued", "running"))


def new_state(total: int) -> dict[str, Any]:
    """A run just created: every child pending."""
    state: dict[str, Any] = {f"c_{k}": 0 for k in STATUSES} | {f"o_{k}": 0 for k in VERDICTS}
    return state | {"status": "pending", "total": total, "c_pending": total, "score_sum": 0.0, "score": None}


def queue(state: RunState) -> bool:
    """pending → queued when a runner takes the run up; False when it is past that."""
    if state["status"] != "pending":
        return False
    state["status"] = "queued"
    return True


def claim(state: RunState, n: int) -> None:
    """`n` pending children were claimed (pending → queued)."""
    _move(state, "pending", "queued", n)


def release(state: RunState, n_queued: int, n_running: int) -> None:
    """Claimed or running children given back (a runner stopped or died): they will run again."""
    _move(state, "queued", "pending", n_queued)
    _move(state, "running", "pending", n_running)


def start(state: RunState, ts: str) -> None:
    """A claimed child started (queued → running); the run is running from its first start."""
    _move(state, "queued", "running", 1)
    if state["status"] in ("pending", "queued"):
        state["status"] = "running"
    state["started_at"] = state.get("started_at") or ts


def finish(state: RunState, old: str, new: str, verdict: str | None, score: float | None) -> None:
    """An open child finished: counts, outcome, and the experiment score accumulator."""
    _move(state, old, new, 1)
    if new == "completed" and verdict in VERDICTS:
        state[f"o_{verdict}"] = int(state.get(f"o_{verdict}") or 0) + 1
    if new == "completed" and score is not None:
        state["score_sum"] = float(state.get("score_sum") or 0.0) + float(score)


def cancel_open(state: RunState) -> int:
    """Every open child is cancelled; returns how many."""
    n = open_count(state)
    state["c_cancelled"] = int(state.get("c_cancelled") or 0) + n
    for k in ("pending", "queued", "running"):
        state[f"c_{k}"] = 0
    return n


def add_stats(state: RunState, stats: Mapping[str, int]) -> None:
    """Per-pass counters (retries, timeouts …) summed over the run."""
    if not stats:
        return
    total = dict(state.get("stats") or {})
    for k, v in stats.items():
        total[k] = int(total.get(k, 0)) + int(v)
    state["stats"] = total


def mean_score(score_sum: float, count: int) -> float | None:
    """The one score formula: the mean of the completed children's scores (experiments: documents)."""
    return score_sum / count if count else None


def run_score(kind: str, state: Mapping[str, Any]) -> float | None:
    """An experiment's score is the mean document score; eval/test runs keep what they have (none)."""
    completed = int(state.get("c_completed") or 0)
    if kind == "experiment" and completed:
        return mean_score(float(state.get("score_sum") or 0.0), completed)
    score: float | None = state.get("score")
    return score


def experiment_final_status(state: Mapping[str, Any]) -> tuple[RunStatus, str | None]:
    """An experiment fails only when every document failed; a failing document never fails the run."""
    total = int(state.get("total") or 0)
    if total and int(state.get("c_error") or 0) == total:
        return "error", "Every document failed"
    return "completed", None


def final_status(kind: str, state: Mapping[str, Any]) -> tuple[RunStatus, dict[str, Any] | None]:
    """How a run ends once no child is open: (status, error or None)."""
    if kind == "experiment":
        status, message = experiment_final_status(state)
        if message is not None:
            return status, {"message": message, "error_code": "all_documents_failed"}
    return "completed", None


def close_if_done(kind: str, state: RunState, ts: str) -> bool:
    """End a run that has no open child left: final status, score, completion time. False when the run
    is terminal already or still has work."""
    if state["status"] in TERMINAL or open_count(state):
        return False
    state["status"], state["error"] = final_status(kind, state)
    state["completed_at"] = ts
    state["score"] = run_score(kind, state)
    return True


def terminate(
    kind: str, state: RunState, status: RunStatus, ts: str, *, error: dict[str, Any] | None, reason: str | None
) -> int:
    """Cancel or fail a run: its open children are cancelled; returns how many. The caller checks the
    run is not terminal already."""
    n = cancel_open(state)
    state["status"] = status
    state["completed_at"] = ts
    state["error"] = error
    state["cancel_reason"] = reason
    state["score"] = run_score(kind, state)
    return n


def invariant_violations(state: Mapping[str, Any]) -> list[str]:
    """Empty when the counts agree with §3.3."""
    lc, oc = lifecycle_counts(state), outcome_counts(state)
    problems = []
    if sum(lc.values()) != int(state.get("total") or 0):
        problems.append(f"lifecycle counts sum to {sum(lc.values())}, total is {state.get('total')}")
    if sum(oc.values()) > lc["completed"]:
        problems.append(f"outcomes sum to {sum(oc.values())} > completed {lc['completed']}")
    if any(v < 0 for v in lc.values()):
        problems.append("a lifecycle count is negative")
    status = state.get("status")
    if status in TERMINAL and lc["pending"] + lc["queued"] + lc["running"]:
        problems.append(f"run is {status} but children are still open")
    return problems


def _move(state: RunState, src: str, dst: str, n: int) -> None:
    if n:
        state[f"c_{src}"] = int(state.get(f"c_{src}") or 0) - n
        state[f"c_{dst}"] = int(state.get(f"c_{dst}") or 0) + n
