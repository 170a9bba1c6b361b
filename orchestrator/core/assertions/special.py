"""Evaluators for the structured kinds: split page IoU and LLM-judged conditions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.core.assertions.common import (
    MISSING,
    SIMULATED_JUDGE,
    Blocked,
    Check,
    Evaluator,
    JudgeKey,
    Judgement,
    Judgements,
    canonical_json,
    fmt,
    num,
    present,
    req,
    type_error,
)


def _page_sets(splits: Any, *, side: str) -> dict[str, set[Any]]:
    if isinstance(splits, Mapping):
        splits = splits.get("splits")
    if not isinstance(splits, list | tuple):
        raise _bad_split(side, "a list of {name, pages} (or an object with 'splits')", splits)
    pages: dict[str, set[Any]] = {}
    for entry in splits:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise _bad_split(side, "split entries with a string 'name'", entry)
        entry_pages = entry.get("pages") or []
        if not isinstance(entry_pages, list | tuple):
            raise _bad_split(side, "'pages' as an array", entry_pages)
        # Several subdocuments may share a name (two invoices); their pages pool together.
        pages.setdefault(entry["name"], set()).update(p for p in entry_pages if not isinstance(p, list | dict))
    return pages


def _bad_split(side: str, wanted: str, value: Any) -> Blocked:
    if side == "expected":
        return Blocked("invalid_condition", f"split_iou_gte 'expected' needs {wanted}, got {fmt(value, 80)}")
    return type_error("split_iou_gte", wanted, value)


def split_iou(actual: Mapping[str, set[Any]], expected: Mapping[str, set[Any]]) -> float:
    names = set(actual) | set(expected)
    if not names:
        return 1.0
    total = 0.0
    for name in names:
        a, e = actual.get(name, set()), expected.get(name, set())
        union = a | e
        total += 1.0 if not union else len(a & e) / len(union)
    return total / len(names)


def split_iou_check(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    expected = _page_sets(req(cond, "expected"), side="expected")
    raw_threshold = cond.get("threshold")
    threshold = 1.0 if raw_threshold is None else num(cond, "threshold")
    if not present(found, value):
        return Check(False, f"expected a split result, but the {MISSING}", threshold=threshold, metric_kind="iou")
    score = split_iou(_page_sets(value, side="actual"), expected)
    passed = score >= threshold - 1e-9
    message = "" if passed else f"split IoU {score:.3f} < threshold {threshold:g}"
    return Check(passed, message, score=score, threshold=threshold, metric_kind="iou")


def judge_key(cond: Mapping[str, Any], value: Any) -> JudgeKey:
    rubric = req(cond, "rubric")
    label = cond.get("expected_label")
    if not isinstance(rubric, str) or not (label is None or isinstance(label, str)):
        raise Blocked("invalid_condition", "llm conditions need a string 'rubric' and optional 'expected_label'")
    return JudgeKey(rubric=rubric, expected_label=label, value_json=canonical_json(value))


def judge_note(rubric: str, judgement: Judgement) -> str:
    """The line every verdict of the simulated judge carries, pass or fail (result warnings)."""
    return f"llm judgement of {rubric!r} by the simulated engine, not a language model: {judgement.reasoning}"


def llm_evaluator(negate: bool) -> Evaluator:
    def evaluate(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
        key = judge_key(cond, value)
        judgement = j.get(key)
        if judgement is None:
            raise Blocked(
                "judge_unavailable",
                "no LLM judgement is available for this assertion",
                {"rubric": key.rubric},
            )
        simulated = judgement.engine == SIMULATED_JUDGE
        details = {
            "label": judgement.label,
            "judge_passed": judgement.passed,
            "reasoning": judgement.reasoning,
            "engine": judgement.engine or None,
            "simulated": simulated,
        }
        who = "the simulated judge (keyword rules, not a language model)" if simulated else "the judge"
        if not judgement.decided:
            raise Blocked("judge_undecided", f"{who} could not decide: {judgement.reasoning}", details)
        notes = (judge_note(key.rubric, judgement),) if simulated else ()
        metric = "simulated_judge" if simulated else "llm_judge"
        label_ok = key.expected_label is None or judgement.label.strip().lower() == (key.expected_label.strip().lower())
        judged = judgement.passed and label_ok
        if judged != negate:
            return Check(True, details=details, metric_kind=metric, notes=notes)
        target = f"label {key.expected_label!r}" if key.expected_label else "the rubric"
        verb = "was judged as" if negate else "was not judged as"
        message = f"value {verb} {target} by {who} (judge label {judgement.label!r}): {judgement.reasoning}"
        return Check(False, message, details=details, metric_kind=metric, notes=notes)

    return evaluate
