"""Saved-check assertions: the condition catalogue → passed / failed / blocked (spec §2.6)."""

from __future__ import annotations

from orchestrator.core.assertions.common import Blocked, JudgeKey, Judgement
from orchestrator.core.assertions.evaluate import (
    AssertionOutcome,
    Outcome,
    assertion_result_json,
    evaluate,
    expected_value_of,
    judge_requests,
    resolve_target,
    verdict_summary_json,
)

__all__ = [
    "AssertionOutcome",
    "Blocked",
    "JudgeKey",
    "Judgement",
    "Outcome",
    "assertion_result_json",
    "evaluate",
    "expected_value_of",
    "judge_requests",
    "resolve_target",
    "verdict_summary_json",
]
