from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.core.assertions import (
    AssertionOutcome,
    JudgeKey,
    Judgement,
    assertion_result_json,
    evaluate,
    judge_requests,
    resolve_target,
    verdict_summary_json,
)
from orchestrator.core.assertions.special import split_iou

H = "output-json-0"
DATA: dict[str, Any] = {
    "invoice_number": "INV-2024-001",
    "total": 1200,
    "ratio": 0.5,
    "paid": True,
    "note": None,
    "vendor": {"name": "ACME Corp", "address": {"city": "Paris", "zip": "75001"}, "tags": ["a", "b"]},
    "line_items": [
        {"sku": "A1", "unit_price": 10.0, "qty": 2},
        {"sku": "B2", "unit_price": 25.5, "qty": 1},
    ],
    "tags": ["urgent", "paid", 3],
    "empty": [],
}
OUTPUTS: dict[str, Any] = {H: DATA}


def spec(condition: dict[str, Any], path: str | None = None, handle: str = H) -> dict[str, Any]:
    return {
        "id": "assert_abc123abc123",
        "target": {"output_handle_id": handle, "path": path},
        "condition": condition,
        "label": "my label",
    }


def run(condition: dict[str, Any], path: str | None = None) -> AssertionOutcome:
    return evaluate(spec(condition, path), OUTPUTS)


# (path, condition, expected outcome, expected failure code or None)
CASES: list[tuple[str | None, dict[str, Any], str, str | None]] = [
    # exists / not_exists
    ("total", {"kind": "exists"}, "passed", None),
    ("missing", {"kind": "exists"}, "failed", "assertion_failed"),
    ("note", {"kind": "exists"}, "failed", "assertion_failed"),
    ("missing", {"kind": "not_exists"}, "passed", None),
    ("note", {"kind": "not_exists"}, "passed", None),
    ("total", {"kind": "not_exists"}, "failed", "assertion_failed"),
    # equals / not_equals
    ("total", {"kind": "equals", "expected": 1200}, "passed", None),
    ("total", {"kind": "equals", "expected": 1200.0}, "passed", None),
    ("total", {"kind": "equals", "expected": 1234.56}, "failed", "assertion_failed"),
    ("total", {"kind": "equals", "expected": "1200"}, "failed", "assertion_failed"),
    ("paid", {"kind": "equals", "expected": 1}, "failed", "assertion_failed"),
    ("paid", {"kind": "equals", "expected": True}, "passed", None),
    ("note", {"kind": "equals"}, "passed", None),
    ("missing", {"kind": "equals", "expected": None}, "passed", None),
    ("vendor.address", {"kind": "equals", "expected": {"zip": "75001", "city": "Paris"}}, "passed", None),
    ("vendor.address", {"kind": "equals", "expected": {"city": "Paris"}}, "failed", "assertion_failed"),
    (
        "line_items.0",
        {"kind": "equals", "expected": {"sku": "A1", "unit_price": 10, "qty": 2.0}},
        "passed",
        None,
    ),
    ("tags", {"kind": "equals", "expected": ["paid", "urgent", 3]}, "failed", "assertion_failed"),
    ("total", {"kind": "not_equals", "expected": 1}, "passed", None),
    ("total", {"kind": "not_equals", "expected": 1200.0}, "failed", "assertion_failed"),
    # number_compare
    ("total", {"kind": "number_compare", "op": "gt", "expected": 1000}, "passed", None),
    ("total", {"kind": "number_compare", "op": "gte", "expected": 1200}, "passed", None),
    ("total", {"kind": "number_compare", "op": "lt", "expected": 1200}, "failed", "assertion_failed"),
    ("total", {"kind": "number_compare", "op": "lte", "expected": 1200.0}, "passed", None),
    ("total", {"kind": "number_compare", "op": "eq", "expected": 1200}, "passed", None),
    ("total", {"kind": "number_compare", "op": "neq", "expected": 1200}, "failed", "assertion_failed"),
    ("total", {"kind": "number_compare", "op": "ConditionOp.GTE", "expected": 1}, "passed", None),
    ("invoice_number", {"kind": "number_compare", "op": "gt", "expected": 1}, "blocked", "type_error"),
    ("paid", {"kind": "number_compare", "op": "gt", "expected": 0}, "blocked", "type_error"),
    ("missing", {"kind": "number_compare", "op": "gt", "expected": 0}, "failed", "assertion_failed"),
    ("total", {"kind": "number_compare", "op": "approx", "expected": 0}, "blocked", "invalid_condition"),
    ("total", {"kind": "number_compare", "op": "gt"}, "blocked", "invalid_condition"),
    # contains / not_contains
    ("invoice_number", {"kind": "contains", "expected": "2024"}, "passed", None),
    ("invoice_number", {"kind": "contains", "expected": "2025"}, "failed", "assertion_failed"),
    ("tags", {"kind": "contains", "expected": "paid"}, "passed", None),
    ("tags", {"kind": "contains", "expected": 3.0}, "passed", None),
    ("tags", {"kind": "contains", "expected": "pai"}, "failed", "assertion_failed"),
    ("vendor", {"kind": "contains", "expected": "address"}, "passed", None),
    ("vendor", {"kind": "contains", "expected": "Paris"}, "failed", "assertion_failed"),
    ("total", {"kind": "contains", "expected": 1}, "blocked", "type_error"),
    ("missing", {"kind": "contains", "expected": "x"}, "failed", "assertion_failed"),
    ("invoice_number", {"kind": "not_contains", "expected": "2025"}, "passed", None),
    ("tags", {"kind": "not_contains", "expected": "urgent"}, "failed", "assertion_failed"),
    ("missing", {"kind": "not_contains", "expected": "x"}, "passed", None),
    # object_contains
    ("vendor", {"kind": "object_contains", "expected": {"name": "ACME Corp"}}, "passed", None),
    ("vendor", {"kind": "object_contains", "expected": {"address": {"city": "Paris"}}}, "passed", None),
    ("vendor", {"kind": "object_contains", "expected": {"tags": ["b"]}}, "passed", None),
    (
        "vendor",
        {"kind": "object_contains", "expected": {"address": {"city": "Lyon"}}},
        "failed",
        "assertion_failed",
    ),
    ("vendor", {"kind": "object_contains", "expected": {"phone": None}}, "failed", "assertion_failed"),
    ("tags", {"kind": "object_contains", "expected": {"a": 1}}, "blocked", "type_error"),
    (None, {"kind": "object_contains", "expected": {"line_items": [{"sku": "B2"}]}}, "passed", None),
    # array_contains
    ("line_items", {"kind": "array_contains", "expected": {"sku": "B2"}}, "passed", None),
    (
        "line_items",
        {"kind": "array_contains", "expected": {"sku": "B2", "qty": 2}},
        "failed",
        "assertion_failed",
    ),
    ("tags", {"kind": "array_contains", "expected": "urgent"}, "passed", None),
    ("vendor", {"kind": "array_contains", "expected": {"sku": "B2"}}, "blocked", "type_error"),
    # matches_regex
    ("invoice_number", {"kind": "matches_regex", "pattern": r"INV-\d{4}-\d+"}, "passed", None),
    ("invoice_number", {"kind": "matches_regex", "pattern": r"^\d+$"}, "failed", "assertion_failed"),
    ("total", {"kind": "matches_regex", "pattern": r"^12\d\d$"}, "passed", None),
    ("paid", {"kind": "matches_regex", "pattern": r"^true$"}, "passed", None),
    ("invoice_number", {"kind": "matches_regex", "pattern": "(unclosed"}, "blocked", "invalid_regex"),
    ("vendor", {"kind": "matches_regex", "pattern": "ACME"}, "blocked", "type_error"),
    # json_schema_valid
    (
        None,
        {"kind": "json_schema_valid", "schema": {"type": "object", "required": ["total"]}},
        "passed",
        None,
    ),
    ("total", {"kind": "json_schema_valid", "schema": {"type": "string"}}, "failed", "assertion_failed"),
    ("total", {"kind": "json_schema_valid", "schema": {"type": "not-a-type"}}, "blocked", "schema_invalid"),
    ("total", {"kind": "json_schema_valid"}, "passed", None),
    ("total", {"kind": "json_schema_valid", "schema": None}, "passed", None),
    # similarity_gte
    ("vendor.name", {"kind": "similarity_gte", "reference": "ACME Corp", "threshold": 1.0}, "passed", None),
    ("vendor.name", {"kind": "similarity_gte", "reference": "ACME corp.", "threshold": 0.8}, "passed", None),
    (
        "vendor.name",
        {"kind": "similarity_gte", "reference": "Globex", "threshold": 0.8},
        "failed",
        "assertion_failed",
    ),
    (
        "vendor.name",
        {"kind": "similarity_gte", "reference": "ACME", "threshold": 0.5, "method": "embeddings"},
        "blocked",
        "unsupported_method",
    ),
    ("total", {"kind": "similarity_gte", "reference": 1200, "threshold": 1}, "passed", None),
    # length_compare
    ("line_items", {"kind": "length_compare", "op": "eq", "expected": 2}, "passed", None),
    ("invoice_number", {"kind": "length_compare", "op": "gte", "expected": 20}, "failed", "assertion_failed"),
    ("vendor", {"kind": "length_compare", "op": "eq", "expected": 3}, "passed", None),
    ("empty", {"kind": "length_compare", "op": "eq", "expected": 0}, "passed", None),
    ("total", {"kind": "length_compare", "op": "gt", "expected": 1}, "blocked", "type_error"),
    # between
    ("total", {"kind": "between", "lower": 1000, "upper": 1200}, "passed", None),
    (
        "total",
        {"kind": "between", "lower": 1000, "upper": 1200, "inclusive": False},
        "failed",
        "assertion_failed",
    ),
    ("ratio", {"kind": "between", "lower": 0, "upper": 1, "inclusive": False}, "passed", None),
    ("total", {"kind": "between", "lower": 0, "upper": 10}, "failed", "assertion_failed"),
    ("invoice_number", {"kind": "between", "lower": 0, "upper": 10}, "blocked", "type_error"),
    # starts_with / ends_with
    ("invoice_number", {"kind": "starts_with", "expected": "INV-"}, "passed", None),
    ("invoice_number", {"kind": "starts_with", "expected": "2024"}, "failed", "assertion_failed"),
    ("invoice_number", {"kind": "ends_with", "expected": "001"}, "passed", None),
    ("invoice_number", {"kind": "ends_with", "expected": "INV"}, "failed", "assertion_failed"),
    ("total", {"kind": "starts_with", "expected": "12"}, "blocked", "type_error"),
    ("tags", {"kind": "ends_with", "expected": "3"}, "blocked", "type_error"),
    # all_items_match / any_item_matches (nested)
    (
        "line_items",
        {"kind": "all_items_match", "condition": {"kind": "object_contains", "expected": {"qty": 1}}},
        "failed",
        "assertion_failed",
    ),
    (
        "line_items",
        {"kind": "any_item_matches", "condition": {"kind": "object_contains", "expected": {"qty": 1}}},
        "passed",
        None,
    ),
    (
        "line_items",
        {
            "kind": "all_items_match",
            "condition": {"kind": "json_schema_valid", "schema": {"required": ["sku"]}},
        },
        "passed",
        None,
    ),
    ("empty", {"kind": "all_items_match", "condition": {"kind": "exists"}}, "passed", None),
    ("empty", {"kind": "any_item_matches", "condition": {"kind": "exists"}}, "failed", "assertion_failed"),
    (
        "tags",
        {"kind": "all_items_match", "condition": {"kind": "matches_regex", "pattern": "^u"}},
        "failed",
        None,
    ),
    (
        "tags",
        {"kind": "any_item_matches", "condition": {"kind": "number_compare", "op": "gt", "expected": 1}},
        "blocked",
        "type_error",
    ),
    ("vendor", {"kind": "all_items_match", "condition": {"kind": "exists"}}, "blocked", "type_error"),
    (
        None,
        {
            "kind": "all_items_match",
            "condition": {"kind": "exists"},
        },
        "blocked",
        "type_error",
    ),
    (
        "line_items",
        {
            "kind": "all_items_match",
            "condition": {
                "kind": "any_item_matches",
                "condition": {"kind": "equals", "expected": "A1"},
            },
        },
        "blocked",
        "type_error",
    ),
    (
        "line_items",
        {"kind": "any_item_matches", "condition": {"kind": "bogus"}},
        "blocked",
        "invalid_condition",
    ),
    # malformed stored conditions
    ("total", {"kind": "no_such_kind"}, "blocked", "invalid_condition"),
    ("total", {"expected": 1}, "blocked", "invalid_condition"),
    ("total", {"kind": "matches_regex"}, "blocked", "invalid_condition"),
    ("total", {"kind": "between", "lower": "0", "upper": 10}, "blocked", "invalid_condition"),
]


@pytest.mark.parametrize(("path", "condition", "outcome", "code"), CASES)
def test_condition_table(path: str | None, condition: dict[str, Any], outcome: str, code: str | None) -> None:
    result = run(condition, path)
    assert result.outcome == outcome, result.failure
    if outcome == "passed":
        assert result.failure is None
    else:
        assert result.failure is not None
        if code is not None:
            assert result.failure["code"] == code
        assert result.failure["message"]
        assert isinstance(result.failure["details"], dict)


def test_failure_message_is_helpful() -> None:
    result = run({"kind": "equals", "expected": 1234.56}, "total")
    assert result.failure is not None
    assert "expected 1234.56, got 1200" in result.failure["message"]
    assert result.actual_value == 1200
    assert result.expected_value == 1234.56


def test_similarity_reports_score() -> None:
    result = run({"kind": "similarity_gte", "reference": "ACME corp.", "threshold": 0.8}, "vendor.name")
    # The metric says what it is: a normalised Levenshtein similarity (it said "levenshtein" while it
    # computed rapidfuzz's Indel ratio).
    assert result.metric_kind == "normalized_levenshtein"
    assert result.threshold == 0.8
    assert result.score is not None and 0.8 <= result.score < 1.0


@pytest.mark.parametrize(
    ("actual", "reference", "threshold", "score", "outcome"),
    [
        # The examples: Indel ratio said 0.875 and passed at 0.85; true normalised Levenshtein is
        # 1 - 3/17 = 0.824, and fails.
        ("Acme Supply Ltd", "Acme Supplies Ltd", 0.85, 1 - 3 / 17, "failed"),
        ("Acme Supply Ltd", "Acme Supplies Ltd", 0.8, 1 - 3 / 17, "passed"),
        # Case and whitespace are not differences (was 0.294).
        ("ACME SUPPLIES LTD", "Acme Supplies Ltd", 1.0, 1.0, "passed"),
        ("  Acme   Supplies\tLtd ", "acme supplies ltd", 1.0, 1.0, "passed"),
        # Punctuation still is: 3 deletions over 14 characters.
        ("Initech LLC", "Initech L.L.C.", 0.8, 1 - 3 / 14, "failed"),
        ("kitten", "sitting", 0.5, 1 - 3 / 7, "passed"),
        ("", "", 1.0, 1.0, "passed"),
    ],
)
def test_similarity_is_normalised_levenshtein_on_folded_text(
    actual: str, reference: str, threshold: float, score: float, outcome: str
) -> None:
    result = evaluate(
        spec({"kind": "similarity_gte", "reference": reference, "threshold": threshold}, "v"), {H: {"v": actual}}
    )
    assert result.outcome == outcome
    assert result.score == pytest.approx(score)
    if result.failure is not None:
        assert result.failure["details"]["method"] == "normalized_levenshtein"
        assert "normalized_levenshtein similarity" in result.failure["message"]


def test_regex_invalid_blocks_even_without_value() -> None:
    result = run({"kind": "matches_regex", "pattern": "[a-"}, "missing")
    assert result.outcome == "blocked"
    assert result.failure is not None and result.failure["code"] == "invalid_regex"


def test_block_error_blocks() -> None:
    outcome = evaluate(
        spec({"kind": "equals", "expected": 1}, "total"),
        {},
        block_error={"message": "extraction timed out", "error_code": "timeout"},
    )
    assert outcome.outcome == "blocked"
    assert outcome.failure == {
        "code": "block_execution_failed",
        "message": "extraction timed out",
        "details": {"message": "extraction timed out", "error_code": "timeout"},
    }
    assert outcome.expected_value == 1


def test_missing_condition_object_blocks() -> None:
    outcome = evaluate({"id": "a", "target": {"output_handle_id": H}}, OUTPUTS)
    assert outcome.outcome == "blocked"
    assert outcome.failure is not None and outcome.failure["code"] == "invalid_condition"


# --- path resolution ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "target", "expected"),
    [
        (OUTPUTS, {"output_handle_id": H}, (True, DATA)),
        (OUTPUTS, {"output_handle_id": H, "path": ""}, (True, DATA)),
        (OUTPUTS, {"output_handle_id": H, "path": None}, (True, DATA)),
        (OUTPUTS, {"output_handle_id": H, "path": "line_items.1.unit_price"}, (True, 25.5)),
        (OUTPUTS, {"output_handle_id": H, "path": "line_items[1].sku"}, (True, "B2")),
        (OUTPUTS, {"output_handle_id": H, "path": "data.vendor.address.city"}, (True, "Paris")),
        (OUTPUTS, {"output_handle_id": H, "path": "data"}, (True, DATA)),
        (OUTPUTS, {"output_handle_id": H, "path": "line_items.2"}, (False, None)),
        (OUTPUTS, {"output_handle_id": H, "path": "line_items.-1"}, (False, None)),
        (OUTPUTS, {"output_handle_id": H, "path": "line_items.sku"}, (False, None)),
        (OUTPUTS, {"output_handle_id": H, "path": "total.value"}, (False, None)),
        (OUTPUTS, {"output_handle_id": H, "path": "note"}, (True, None)),
        (OUTPUTS, {"output_handle_id": "other"}, (False, None)),
        ({H: {"data": {"x": 1}, "x": 2}}, {"output_handle_id": H, "path": "data.x"}, (True, 1)),
        ({H: {"0": "zero"}}, {"output_handle_id": H, "path": "0"}, (True, "zero")),
        ({H: [{"name": "a", "pages": [1]}]}, {"output_handle_id": H, "path": "0.name"}, (True, "a")),
        ({H: "plain"}, {"output_handle_id": H, "path": "a"}, (False, None)),
    ],
)
def test_resolve_target(outputs: dict[str, Any], target: dict[str, Any], expected: tuple[bool, Any]) -> None:
    assert resolve_target(outputs, target) == expected


def test_absent_handle_is_a_missing_value() -> None:
    assert evaluate(spec({"kind": "not_exists"}, None, handle="nope"), OUTPUTS).outcome == "passed"
    failed = evaluate(spec({"kind": "exists"}, None, handle="nope"), OUTPUTS)
    assert failed.outcome == "failed"
    assert failed.failure is not None and failed.failure["details"]["found"] is False


# --- split IoU ---------------------------------------------------------------------------

EXPECTED_SPLITS = {"splits": [{"name": "invoice", "pages": [1, 2]}, {"name": "receipt", "pages": [3]}]}


@pytest.mark.parametrize(
    ("actual", "threshold", "score", "outcome"),
    [
        ([{"name": "invoice", "pages": [1, 2]}, {"name": "receipt", "pages": [3]}], None, 1.0, "passed"),
        (
            {"splits": [{"name": "invoice", "pages": [1, 2]}, {"name": "receipt", "pages": [3]}]},
            1,
            1.0,
            "passed",
        ),
        ([{"name": "invoice", "pages": [1]}, {"name": "receipt", "pages": [2, 3]}], 0.5, 0.5, "passed"),
        ([{"name": "invoice", "pages": [1]}, {"name": "receipt", "pages": [2, 3]}], None, 0.5, "failed"),
        ([{"name": "invoice", "pages": [1, 2]}], 0.4, 0.5, "passed"),
        (
            [
                {"name": "invoice", "pages": [1, 2]},
                {"name": "receipt", "pages": [3]},
                {"name": "x", "pages": [4]},
            ],
            None,
            2 / 3,
            "failed",
        ),
        (
            [
                {"name": "invoice", "pages": [1]},
                {"name": "invoice", "pages": [2]},
                {"name": "receipt", "pages": [3]},
            ],
            None,
            1.0,
            "passed",
        ),
        ([], 0.1, 0.0, "failed"),
    ],
)
def test_split_iou(actual: Any, threshold: float | None, score: float, outcome: str) -> None:
    cond: dict[str, Any] = {"kind": "split_iou_gte", "expected": EXPECTED_SPLITS}
    if threshold is not None:
        cond["threshold"] = threshold
    result = evaluate(spec(cond), {H: actual})
    assert result.outcome == outcome
    assert result.metric_kind == "iou"
    assert result.score == pytest.approx(score)
    assert result.threshold == (1.0 if threshold is None else threshold)


def test_split_iou_edge_cases() -> None:
    assert split_iou({}, {}) == 1.0
    assert split_iou({"a": set()}, {"a": set()}) == 1.0
    bad_actual = evaluate(spec({"kind": "split_iou_gte", "expected": EXPECTED_SPLITS}), {H: "invoice"})
    assert bad_actual.failure is not None and bad_actual.failure["code"] == "type_error"
    bad_expected = evaluate(spec({"kind": "split_iou_gte", "expected": {"nope": 1}}), {H: []})
    assert bad_expected.failure is not None and bad_expected.failure["code"] == "invalid_condition"
    missing = evaluate(spec({"kind": "split_iou_gte", "expected": EXPECTED_SPLITS}), {})
    assert missing.outcome == "failed"


# --- LLM judged --------------------------------------------------------------------------


def _key(rubric: str, value: Any, label: str | None = None) -> JudgeKey:
    return JudgeKey(rubric, label, json.dumps(value, sort_keys=True, separators=(",", ":")))


@pytest.mark.parametrize(
    ("kind", "label", "judgement", "outcome"),
    [
        ("llm_judged_as", None, Judgement("pass", True, "ok"), "passed"),
        ("llm_judged_as", None, Judgement("fail", False, "nope"), "failed"),
        ("llm_judged_as", "Formal", Judgement("formal", True), "passed"),
        ("llm_judged_as", "formal", Judgement("casual", True), "failed"),
        ("llm_not_judged_as", None, Judgement("pass", True), "failed"),
        ("llm_not_judged_as", None, Judgement("fail", False), "passed"),
        ("llm_not_judged_as", "formal", Judgement("casual", True), "passed"),
    ],
)
def test_llm_judged(kind: str, label: str | None, judgement: Judgement, outcome: str) -> None:
    cond: dict[str, Any] = {"kind": kind, "rubric": "is it a company?"}
    if label is not None:
        cond["expected_label"] = label
    assertion = spec(cond, "vendor.name")
    keys = judge_requests(assertion, OUTPUTS)
    assert keys == [_key("is it a company?", "ACME Corp", label)]
    result = evaluate(assertion, OUTPUTS, judgements={keys[0]: judgement})
    assert result.outcome == outcome
    if outcome == "failed":
        assert result.failure is not None and result.failure["details"]["label"] == judgement.label


@pytest.mark.parametrize(
    ("kind", "judgement", "outcome"),
    [
        ("llm_judged_as", Judgement("pass", True, "simulated: 2/2 terms", engine="simulated"), "passed"),
        ("llm_judged_as", Judgement("fail", False, "simulated: 0/2 terms", engine="simulated"), "failed"),
        ("llm_not_judged_as", Judgement("fail", False, "simulated: 0/2 terms", engine="simulated"), "passed"),
        ("llm_judged_as", Judgement("undecided", False, "simulated: two negations", "simulated", False), "blocked"),
        ("llm_judged_as", Judgement("undecided", False, "can't tell", "openai", False), "blocked"),
    ],
)
def test_every_simulated_judgement_says_so(kind: str, judgement: Judgement, outcome: str) -> None:
    """Pass or fail, a verdict of the simulated (keyword) judge carries a note shown as the result's warning
    and a metric kind that names it; an undecided judge blocks the assertion, it never passes it."""
    assertion = spec({"kind": kind, "rubric": "is it a company?"}, "vendor.name")
    (key,) = judge_requests(assertion, OUTPUTS)
    result = evaluate(assertion, OUTPUTS, judgements={key: judgement})
    assert result.outcome == outcome
    simulated = judgement.engine == "simulated"
    if outcome == "blocked":
        assert result.failure is not None and result.failure["code"] == "judge_undecided"
        assert ("simulated judge" in result.failure["message"]) is simulated
        assert judgement.reasoning in result.failure["message"]
        return
    assert result.metric_kind == "simulated_judge"
    assert len(result.notes) == 1 and "simulated engine, not a language model" in result.notes[0]
    assert judgement.reasoning in result.notes[0]
    if outcome == "failed":
        assert result.failure is not None and "simulated judge" in result.failure["message"]
        assert result.failure["details"]["simulated"] is True


def test_a_real_judge_carries_no_simulation_note() -> None:
    assertion = spec({"kind": "llm_judged_as", "rubric": "r"}, "vendor.name")
    (key,) = judge_requests(assertion, OUTPUTS)
    result = evaluate(assertion, OUTPUTS, judgements={key: Judgement("pass", True, "ok", engine="openai")})
    assert (result.outcome, result.metric_kind, result.notes) == ("passed", "llm_judge", ())


def test_notes_of_items_reach_the_result() -> None:
    inner = {"kind": "llm_judged_as", "rubric": "is a sku"}
    assertion = spec({"kind": "all_items_match", "condition": inner}, "line_items")
    keys = judge_requests(assertion, OUTPUTS)
    yes = {k: Judgement("pass", True, "simulated: sku found", engine="simulated") for k in keys}
    result = evaluate(assertion, OUTPUTS, judgements=yes)
    assert result.outcome == "passed" and len(result.notes) == 1


def test_llm_judge_missing_blocks() -> None:
    assertion = spec({"kind": "llm_judged_as", "rubric": "r"}, "vendor.name")
    result = evaluate(assertion, OUTPUTS)
    assert result.outcome == "blocked"
    assert result.failure is not None and result.failure["code"] == "judge_unavailable"
    other = {_key("r", "something else"): Judgement("pass", True)}
    assert evaluate(assertion, OUTPUTS, judgements=other).outcome == "blocked"


def test_judge_requests_walks_nested_items() -> None:
    inner = {"kind": "llm_judged_as", "rubric": "is a sku", "expected_label": "yes"}
    assertion = spec({"kind": "all_items_match", "condition": inner}, "line_items")
    keys = judge_requests(assertion, OUTPUTS)
    assert keys == [_key("is a sku", item, "yes") for item in DATA["line_items"]]
    all_yes = {k: Judgement("yes", True) for k in keys}
    assert evaluate(assertion, OUTPUTS, judgements=all_yes).outcome == "passed"
    one_no = {**all_yes, keys[1]: Judgement("no", False)}
    assert evaluate(assertion, OUTPUTS, judgements=one_no).outcome == "failed"
    assert evaluate(assertion, OUTPUTS, judgements={keys[0]: Judgement("yes", True)}).outcome == "blocked"


def test_judge_requests_none_for_plain_conditions() -> None:
    assert judge_requests(spec({"kind": "equals", "expected": 1}, "total"), OUTPUTS) == []
    assert judge_requests({"target": {}}, OUTPUTS) == []
    nested_on_scalar = spec(
        {"kind": "any_item_matches", "condition": {"kind": "llm_judged_as", "rubric": "r"}}, "total"
    )
    assert judge_requests(nested_on_scalar, OUTPUTS) == []


def test_judge_key_for_missing_value_is_null() -> None:
    keys = judge_requests(spec({"kind": "llm_not_judged_as", "rubric": "r"}, "missing"), OUTPUTS)
    assert keys == [JudgeKey("r", None, "null")]


# --- JSON shapes -------------------------------------------------------------------------


def test_assertion_result_json_shape() -> None:
    assertion = spec({"kind": "number_compare", "op": "gte", "expected": 2000}, "total")
    body = assertion_result_json(assertion, evaluate(assertion, OUTPUTS))
    assert body["assertion_id"] == "assert_abc123abc123"
    assert body["condition_kind"] == "number_compare"
    assert body["outcome"] == body["status"] == "failed"
    assert body["actual_value"] == 1200
    assert body["expected_value"] == 2000
    assert body["assertion_label"] == "my label"
    assert body["failure"]["code"] == "assertion_failed"
    assert {"score", "threshold", "metric_kind"} <= body.keys()
    json.dumps(body)


@pytest.mark.parametrize(
    ("condition", "outcome", "counts", "ids"),
    [
        ({"kind": "exists"}, "passed", (1, 0, 0), []),
        ({"kind": "not_exists"}, "failed", (0, 1, 0), ["assert_abc123abc123"]),
        ({"kind": "starts_with", "expected": "x"}, "blocked", (0, 0, 1), ["assert_abc123abc123"]),
    ],
)
def test_verdict_summary(condition: dict[str, Any], outcome: str, counts: tuple[int, int, int], ids: list[str]) -> None:
    assertion = spec(condition, "total")
    result = evaluate(assertion, OUTPUTS)
    assert result.outcome == outcome
    summary = verdict_summary_json(assertion, result)
    assert summary["passed"] is summary["result"] is (outcome == "passed")
    assert (
        summary["assertions_passed"],
        summary["assertions_failed"],
        summary["blocked_assertions"],
    ) == counts
    assert summary["failed_assertion_ids"] == ids


def test_results_validate_with_sdk_models() -> None:
    results = pytest.importorskip("retab.types.workflows.evals.results")
    for path, condition, _, _ in CASES:
        assertion = spec(condition, path)
        outcome = evaluate(assertion, OUTPUTS)
        results.AssertionResult.model_validate(assertion_result_json(assertion, outcome))
