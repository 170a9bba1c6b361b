"""POST /v1/consensus's rules (core.consensus.reconcile): the same consensus as the runs' engine, flat
likelihoods, supporting counts, the alignment, and every kind of bad input refused with its reason."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.consensus import reduce_passes
from orchestrator.core.consensus.reconcile import (
    MAX_INPUT_BYTES,
    MAX_INPUTS,
    MAX_LIST_ITEMS,
    reconcile,
    validate_inputs,
)
from orchestrator.errors import OrchestratorError

WIDGET = {"description": "Widget", "quantity": 2, "unit_price": 3.5}
GADGET = {"description": "Gadget", "quantity": 1, "unit_price": 10.0}
INPUTS: list[dict[str, Any]] = [
    {"invoice_number": "PO 123", "total": 210.09, "line_items": [WIDGET, GADGET]},
    {"invoice_number": "PO-123", "total": 217.02, "line_items": [GADGET, WIDGET]},
    {"invoice_number": "PO 123", "total": 217.02, "line_items": [WIDGET, {**GADGET, "unit_price": 12.0}]},
]
SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}, "invoice_number": {"type": "string"}}}


def test_the_consensus_is_the_run_engines() -> None:
    r = reconcile(validate_inputs(INPUTS), SCHEMA)
    record = reduce_passes("extract", INPUTS, schema=SCHEMA)
    assert r.consensus == record["value"]
    assert list(r.consensus) == ["total", "invoice_number", "line_items"]  # the schema's order first
    assert r.consensus["total"] == 217.02 and r.consensus["invoice_number"] == "PO 123"
    assert r.consensus["line_items"] == [WIDGET, GADGET]


def test_flat_likelihoods_and_fields() -> None:
    r = reconcile(validate_inputs(INPUTS), SCHEMA)
    assert r.likelihoods["total"] == pytest.approx(2 / 3)  # an exact majority (217.02 twice) wins as is
    assert r.likelihoods["line_items.1.unit_price"] == pytest.approx(2 / 3)
    assert set(r.likelihoods) == {f.path for f in r.fields}
    by_path = {f.path: f for f in r.fields}
    price = by_path["line_items.1.unit_price"]
    assert (price.value, price.supporting_input_count, price.total_input_count) == (10.0, 2, 3)
    assert by_path["invoice_number"].supporting_input_count == 3  # "PO 123" and "PO-123" agree (§4.3)


def test_alignment_says_where_each_value_was() -> None:
    r = reconcile(validate_inputs(INPUTS), SCHEMA, include_alignment=True)
    a = r.alignment
    assert a.aligned_inputs is not None and a.path_alignments is not None
    # Input 1 listed the gadget first: aligned, it follows the consensus order.
    assert a.aligned_inputs[1]["line_items"] == [WIDGET, GADGET]
    sources = dict(a.path_alignments)
    assert sources["line_items.0.description"] == [
        "line_items.0.description",
        "line_items.1.description",
        "line_items.0.description",
    ]
    assert sources["total"] == ["total", "total", "total"]
    # Input 1 agrees with the consensus on every value (only its list order differs).
    assert a.reference_index == 1
    plain = reconcile(validate_inputs(INPUTS), SCHEMA)
    assert plain.alignment.aligned_inputs is None and plain.alignment.path_alignments is None
    assert plain.consensus == r.consensus


def test_an_absent_item_is_none_in_its_alignment() -> None:
    inputs = [
        {"items": [{"sku": "A"}, {"sku": "B"}]},
        {"items": [{"sku": "A"}, {"sku": "B"}]},
        {"items": [{"sku": "B"}]},
    ]
    r = reconcile(validate_inputs(inputs), include_alignment=True)
    assert r.consensus == {"items": [{"sku": "A"}, {"sku": "B"}]}
    assert dict(r.alignment.path_alignments or [])["items.0.sku"] == ["items.0.sku", "items.0.sku", None]
    assert r.fields[0].supporting_input_count == 2 and r.fields[0].likelihood == pytest.approx(2 / 3)


def test_fields_of_mixed_types_are_reconciled_not_refused() -> None:
    """Inputs disagreeing on a field's type is what consensus is for: the same canonical vote as runs."""
    r = reconcile(validate_inputs([{"total": 5}, {"total": "5"}, {"total": 5}]))
    assert r.consensus == {"total": 5} and r.fields[0].supporting_input_count == 2


def test_empty_objects() -> None:
    r = reconcile(validate_inputs([{}, {}]))
    assert (r.consensus, r.likelihoods, r.fields) == ({}, {}, [])


BIG = {"blob": "x" * (MAX_INPUT_BYTES // 2)}


@pytest.mark.parametrize(
    ("inputs", "schema", "status", "code", "says"),
    [
        (None, None, 422, "invalid_consensus_inputs", "`inputs` is required"),
        ({"a": 1}, None, 422, "invalid_consensus_inputs", "must be a list of objects, not object"),
        ([], None, 422, "invalid_consensus_inputs", "at least 2 inputs, got 0"),
        ([{"a": 1}], None, 422, "invalid_consensus_inputs", "at least 2 inputs, got 1"),
        ([{"a": 1}, 1], None, 422, "invalid_consensus_inputs", "inputs[1] is number"),
        (
            [{"a": 1}, ["a"], "x", None],
            None,
            422,
            "invalid_consensus_inputs",
            "inputs[1] is array, inputs[2] is string",
        ),
        ([{}] * (MAX_INPUTS + 1), None, 422, "invalid_consensus_inputs", f"at most {MAX_INPUTS} inputs"),
        ([{}, {}], ["not", "a", "schema"], 422, "invalid_consensus_inputs", "`json_schema` must be an object"),
        ([BIG, BIG, BIG], None, 413, "consensus_inputs_too_large", "the limit is"),
        ([{"a": {"b": list(range(MAX_LIST_ITEMS + 1))}}, {}], None, 413, "consensus_inputs_too_large", "inputs[0].a.b"),
    ],
)
def test_bad_inputs_are_refused_with_their_reason(inputs: Any, schema: Any, status: int, code: str, says: str) -> None:
    with pytest.raises(OrchestratorError) as info:
        validate_inputs(inputs, schema)
    err = info.value
    assert (err.status, err.code) == (status, code)
    assert says in err.message
