"""Assertion engine: evaluate one saved-eval assertion against a block's handle outputs.

Pure and synchronous. LLM-judged conditions are two-phase: the runner asks
``judge_requests`` which judgements it must obtain, calls the judge, then passes them to
``evaluate``. Outcome vocabulary and failure codes follow spec §2.6/§2.8/§3.2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.core.assertions.common import Blocked, JudgeKey, Judgement
from orchestrator.core.assertions.kinds import check_condition, collect_judge_keys

__all__ = [
    "AssertionOutcome",
    "JudgeKey",
    "Judgement",
    "assertion_result_json",
    "evaluate",
    "judge_requests",
    "resolve_target",
    "verdict_summary_json",
]

Outcome = Literal["passed", "failed", "blocked"]

_BRACKET_INDEX = re.compile(r"\[(-?\d+)\]")


@dataclass(frozen=True)
class AssertionOutcome:
    outcome: Outcome
    actual_value: Any
    expected_value: Any
    score: float | None = None
    threshold: float | None = None
    metric_kind: str | None = None
    failure: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()  # shown as the result's warnings, whatever the outcome


def _segments(path: str) -> list[str]:
    # Accept "items[0].price" as well as "items.0.price".
    return [s for s in _BRACKET_INDEX.sub(r".\1", path).split(".") if s != ""]


def _step(current: Any, segment: str) -> tuple[bool, Any]:
    if isinstance(current, Mapping):
        return (True, current[segment]) if segment in current else (False, None)
    if isinstance(current, list | tuple) and segment.isdigit():
        index = int(segment)
        return (True, current[index]) if index < len(current) else (False, None)
    return False, None


def resolve_target(handle_outputs: Mapping[str, Any], target: Mapping[str, Any]) -> tuple[bool, Any]:
    """Return (found, value) for ``target`` = {output_handle_id, path}. Absent → (False, None)."""
    handle_id = target.get("output_handle_id")
    if not isinstance(handle_id, str) or handle_id not in handle_outputs:
        return False, None
    current = handle_outputs[handle_id]
    path = target.get("path")
    segments = _segments(path) if isinstance(path, str) else []
    # Paths written against the wire envelope ({"type","data"}) start with "data."; the runner
    # hands us the unwrapped data, so skip it unless the data really has a "data" key.
    if segments and segments[0] == "data" and not (isinstance(current, Mapping) and "data" in current):
        segments = segments[1:]
    for segment in segments:
        found, current = _step(current, segment)
        if not found:
            return False, None
    return True, current


def _condition(assertion: Mapping[str, Any]) -> Mapping[str, Any]:
    cond = assertion.get("condition")
    if not isinstance(cond, Mapping):
        raise Blocked("invalid_condition", "the assertion has no condition object")
    return cond


def _target(assertion: Mapping[str, Any]) -> Mapping[str, Any]:
    target = assertion.get("target")
    if not isinstance(target, Mapping) or not isinstance(target.get("output_handle_id"), str):
        raise Blocked("invalid_condition", "the assertion has no target.output_handle_id")
    return target


def expected_value_of(cond: Mapping[str, Any]) -> Any:
    """What the condition compares against, for AssertionResult.expected_value."""
    kind = cond.get("kind")
    if kind == "matches_regex":
        return cond.get("pattern")
    if kind == "json_schema_valid":
        return cond.get("schema", cond.get("schema_"))
    if kind == "similarity_gte":
        return cond.get("reference")
    if kind in ("llm_judged_as", "llm_not_judged_as"):
        return {"rubric": cond.get("rubric"), "expected_label": cond.get("expected_label")}
    if kind == "between":
        inclusive = cond.get("inclusive")
        return {
            "lower": cond.get("lower"),
            "upper": cond.get("upper"),
            "inclusive": True if inclusive is None else inclusive,
        }
    if kind in ("all_items_match", "any_item_matches"):
        return cond.get("condition")
    return cond.get("expected")


def judge_requests(assertion: Mapping[str, Any], handle_outputs: Mapping[str, Any]) -> list[JudgeKey]:
    """Every LLM judgement ``evaluate`` may look up for this assertion (deduplicated, in order)."""
    try:
        cond, target = _condition(assertion), _target(assertion)
    except Blocked:
        return []
    found, value = resolve_target(handle_outputs, target)
    keys: list[JudgeKey] = []
    collect_judge_keys(cond, found, value, keys)
    return keys


def evaluate(
    assertion: Mapping[str, Any],
    handle_outputs: Mapping[str, Any],
    judgements: Mapping[JudgeKey, Judgement] | None = None,
    block_error: Mapping[str, Any] | None = None,
) -> AssertionOutcome:
    raw_cond = assertion.get("condition")
    expected = expected_value_of(raw_cond) if isinstance(raw_cond, Mapping) else None
    if block_error is not None:
        message = str(block_error.get("message") or "the block execution failed")
        return AssertionOutcome(
            "blocked",
            None,
            expected,
            failure={"code": "block_execution_failed", "message": message, "details": dict(block_error)},
        )
    found, value = False, None
    try:
        cond, target = _condition(assertion), _target(assertion)
        found, value = resolve_target(handle_outputs, target)
        check = check_condition(cond, found, value, judgements or {})
    except Blocked as exc:
        return AssertionOutcome(
            "blocked",
            value,
            expected,
            failure={"code": exc.code, "message": exc.message, "details": exc.details},
        )
    failure = None
    if not check.passed:
        details = dict(check.details)
        path = target.get("path")
        if path:
            details.setdefault("path", path)
        if not found:
            details["found"] = False
        message = check.message or "the assertion did not hold"
        if path:
            message = f"{path}: {message}"
        failure = {"code": "assertion_failed", "message": message, "details": details}
    return AssertionOutcome(
        "passed" if check.passed else "failed",
        value,
        expected,
        score=check.score,
        threshold=check.threshold,
        metric_kind=check.metric_kind,
        failure=failure,
        notes=check.notes,
    )


def _kind(assertion: Mapping[str, Any]) -> str:
    cond = assertion.get("condition")
    kind = cond.get("kind") if isinstance(cond, Mapping) else None
    return kind if isinstance(kind, str) else "unknown"


def assertion_result_json(assertion: Mapping[str, Any], outcome: AssertionOutcome) -> dict[str, Any]:
    """SDK AssertionResult body, plus ``status`` (= outcome) for pre-0.0.156 clients."""
    return {
        "assertion_id": str(assertion.get("id") or ""),
        "condition_kind": _kind(assertion),
        "outcome": outcome.outcome,
        "status": outcome.outcome,
        "actual_value": outcome.actual_value,
        "expected_value": outcome.expected_value,
        "score": outcome.score,
        "threshold": outcome.threshold,
        "metric_kind": outcome.metric_kind,
        "assertion_label": assertion.get("label"),
        "failure": outcome.failure,
    }


def verdict_summary_json(assertion: Mapping[str, Any], outcome: AssertionOutcome) -> dict[str, Any]:
    """SDK VerdictSummary for a single-assertion eval, plus ``result`` (= passed) for old clients."""
    passed = outcome.outcome == "passed"
    assertion_id = str(assertion.get("id") or "")
    return {
        "passed": passed,
        "result": passed,
        "assertions_passed": 1 if passed else 0,
        "assertions_failed": 1 if outcome.outcome == "failed" else 0,
        "blocked_assertions": 1 if outcome.outcome == "blocked" else 0,
        "failed_assertion_ids": [] if passed or not assertion_id else [assertion_id],
    }
