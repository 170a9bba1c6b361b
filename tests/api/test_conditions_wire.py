from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.wire.conditions import AssertionSpec, validate_assertion

VALID_CONDITIONS: list[dict[str, Any]] = [
    {"kind": "exists"},
    {"kind": "not_exists"},
    {"kind": "equals", "expected": {"a": [1, 2]}},
    {"kind": "not_equals", "expected": "x"},
    {"kind": "number_compare", "op": "gte", "expected": 12.5},
    {"kind": "contains", "expected": "abc"},
    {"kind": "not_contains", "expected": 3},
    {"kind": "object_contains", "expected": {"a": {"b": 1}}},
    {"kind": "array_contains", "expected": {"sku": "A1"}},
    {"kind": "matches_regex", "pattern": r"^\d+$"},
    {"kind": "json_schema_valid", "schema": {"type": "object"}},
    {"kind": "json_schema_valid"},
    {"kind": "similarity_gte", "reference": "ACME", "threshold": 0.9, "method": "levenshtein"},
    {"kind": "llm_judged_as", "rubric": "polite?", "expected_label": "yes"},
    {"kind": "llm_not_judged_as", "rubric": "rude?"},
    {"kind": "length_compare", "op": "lt", "expected": 4},
    {"kind": "between", "lower": 0, "upper": 1.5, "inclusive": False},
    {"kind": "starts_with", "expected": "INV"},
    {"kind": "ends_with", "expected": "001"},
    {"kind": "all_items_match", "condition": {"kind": "exists"}},
    {"kind": "any_item_matches", "condition": {"kind": "all_items_match", "condition": {"kind": "exists"}}},
    {
        "kind": "split_iou_gte",
        "expected": {"splits": [{"name": "invoice", "pages": [1, 2]}]},
        "threshold": 0.8,
    },
]


def body(condition: Any, **extra: Any) -> dict[str, Any]:
    return {"target": {"output_handle_id": "output-json-0", "path": "a.b"}, "condition": condition, **extra}


@pytest.mark.parametrize("condition", VALID_CONDITIONS, ids=lambda c: str(c["kind"]))
def test_every_kind_validates_and_keeps_values(condition: dict[str, Any]) -> None:
    out = validate_assertion(body(condition))
    for key, value in condition.items():
        if key != "condition":
            assert out["condition"][key] == value
    assert out["target"] == {"output_handle_id": "output-json-0", "path": "a.b"}


@pytest.mark.parametrize("condition", VALID_CONDITIONS, ids=lambda c: str(c["kind"]))
def test_normalised_form_parses_with_sdk(condition: dict[str, Any]) -> None:
    evals = pytest.importorskip("retab.types.workflows.evals")
    out = validate_assertion(body(condition))
    parsed = evals.AssertionSpec.model_validate(out)
    assert parsed.condition.kind == condition["kind"]


@pytest.mark.parametrize(
    "condition",
    [
        {"kind": "nope"},
        {"expected": 1},
        {"kind": "number_compare", "op": "gt"},
        {"kind": "number_compare", "expected": 1},
        {"kind": "number_compare", "op": "approx", "expected": 1},
        {"kind": "number_compare", "op": "gt", "expected": "1"},
        {"kind": "number_compare", "op": "gt", "expected": True},
        {"kind": "object_contains"},
        {"kind": "object_contains", "expected": [1]},
        {"kind": "array_contains"},
        {"kind": "matches_regex"},
        {"kind": "json_schema_valid", "schema": "string"},
        {"kind": "similarity_gte", "threshold": 0.5},
        {"kind": "similarity_gte", "reference": "a"},
        {"kind": "similarity_gte", "reference": "a", "threshold": 0.5, "method": "cosine"},
        {"kind": "llm_judged_as"},
        {"kind": "llm_not_judged_as", "expected_label": "x"},
        {"kind": "length_compare", "op": "gt", "expected": 1.5},
        {"kind": "between", "lower": 0},
        {"kind": "starts_with"},
        {"kind": "ends_with", "expected": 5},
        {"kind": "all_items_match"},
        {"kind": "any_item_matches", "condition": {"kind": "nope"}},
        {"kind": "split_iou_gte"},
        {"kind": "split_iou_gte", "expected": {"splits": [{"pages": [1]}]}},
        {"kind": "split_iou_gte", "expected": {"splits": [{"name": "a", "pages": ["1"]}]}},
        "exists",
    ],
)
def test_invalid_conditions_rejected(condition: Any) -> None:
    with pytest.raises(ValidationError):
        validate_assertion(body(condition))


@pytest.mark.parametrize(
    "raw",
    [
        {"condition": {"kind": "exists"}},
        {"target": {}, "condition": {"kind": "exists"}},
        {"target": {"output_handle_id": "h"}},
        None,
        [],
    ],
)
def test_invalid_specs_rejected(raw: Any) -> None:
    with pytest.raises(ValidationError):
        validate_assertion(raw)


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("op", "LengthCompareConditionOp.GTE", "gte"),
        ("op", "NumberCompareConditionOp.NEQ", "neq"),
        ("op", "LT", "lt"),
        ("op", "eq", "eq"),
    ],
)
def test_op_enum_leniency(field: str, raw: str, expected: str) -> None:
    for kind in ("number_compare", "length_compare"):
        out = validate_assertion(body({"kind": kind, field: raw, "expected": 3}))
        assert out["condition"][field] == expected


def test_method_enum_leniency_and_default() -> None:
    cond = {
        "kind": "similarity_gte",
        "reference": "a",
        "threshold": 0.5,
        "method": "SimilarityGteConditionMethod.EMBEDDINGS",
    }
    assert validate_assertion(body(cond))["condition"]["method"] == "embeddings"
    cond = {"kind": "similarity_gte", "reference": "a", "threshold": 0.5}
    assert validate_assertion(body(cond))["condition"]["method"] == "levenshtein"


def test_sdk_enum_members_accepted() -> None:
    evals = pytest.importorskip("retab.types.workflows.evals")
    out = validate_assertion(body({"kind": "length_compare", "op": evals.LengthCompareConditionOp.GTE, "expected": 1}))
    assert out["condition"]["op"] == "gte"


def test_id_assigned_when_missing() -> None:
    first = validate_assertion(body({"kind": "exists"}))
    second = validate_assertion(body({"kind": "exists"}, id=None))
    assert re.fullmatch(r"assert_[0-9a-f]{12}", first["id"])
    assert re.fullmatch(r"assert_[0-9a-f]{12}", second["id"])
    assert first["id"] != second["id"]
    assert validate_assertion(body({"kind": "exists"}, id="assert_mine"))["id"] == "assert_mine"


def test_schema_alias_round_trip() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    out = validate_assertion(body({"kind": "json_schema_valid", "schema": schema}))
    assert out["condition"] == {"kind": "json_schema_valid", "schema": schema}
    assert "schema_" not in out["condition"]
    assert validate_assertion(out) == out
    spec = AssertionSpec.model_validate(out)
    assert spec.condition.kind == "json_schema_valid"
    assert spec.condition.schema_ == schema


@pytest.mark.parametrize("kind", ["equals", "not_equals", "contains", "not_contains"])
def test_absent_expected_is_null(kind: str) -> None:
    out = validate_assertion(body({"kind": kind}))
    assert "expected" in out["condition"]
    assert out["condition"]["expected"] is None


def test_defaults_and_extras() -> None:
    out = validate_assertion(
        body(
            {"kind": "between", "lower": 1, "upper": 2, "unknown_extra": 1},
            label="range",
            something_else=True,
        )
    )
    assert out["condition"] == {"kind": "between", "lower": 1, "upper": 2, "inclusive": True}
    assert out["label"] == "range"
    assert "something_else" not in out
    split = validate_assertion(body({"kind": "split_iou_gte", "expected": {"splits": [], "note": "kept"}}))
    assert split["condition"]["threshold"] == 1
    assert split["condition"]["expected"] == {"splits": [], "note": "kept"}


def test_nested_condition_normalised() -> None:
    raw = {
        "kind": "all_items_match",
        "condition": {"kind": "number_compare", "op": "ConditionOp.LTE", "expected": 5},
    }
    out = validate_assertion(body(raw))
    assert out["condition"]["condition"] == {"kind": "number_compare", "op": "lte", "expected": 5}


def test_values_are_kept_verbatim() -> None:
    expected = {"nested": {"deep": [1, 2.5, None, True, "x"]}, "extra_key": {}}
    out = validate_assertion(body({"kind": "equals", "expected": expected}))
    assert out["condition"]["expected"] == expected
