"""Statuses, allowed transitions and the counts invariants (§3.1–3.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

RunStatus = Literal["pending", "queued", "running", "completed", "error", "cancelled"]
Verdict = Literal["passed", "failed", "blocked"]

TERMINAL: frozenset[str] = frozenset({"completed", "error", "cancelled"})
OPEN: frozenset[str] = frozenset({"pending", "queued", "running"})

_ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"queued", "running", "completed", "error", "cancelled"}),
    "queued": frozenset({"running", "completed", "error", "cancelled"}),
    "running": frozenset({"completed", "error", "cancelled"}),
    "completed": frozenset(),
    "error": frozenset(),
    "cancelled": frozenset(),
}


def can_transition(src: str, dst: str) -> bool:
    return dst in _ALLOWED.get(src, frozenset())


def lifecycle_counts(state: Mapping[str, Any]) -> dict[str, int]:
    return {
        k: int(state.get(f"c_{k}") or 0) for k in ("pending", "queued", "running", "completed", "error", "cancelled")
    }


def outcome_counts(state: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(state.get(f"o_{k}") or 0) for k in ("passed", "failed", "blocked")}


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


def open_count(state: Mapping[str, Any]) -> int:
    return sum(int(state.get(f"c_{k}") or 0) for k in ("pending", "queued", "running"))
