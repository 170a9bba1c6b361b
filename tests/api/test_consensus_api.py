"""POST /v1/consensus as retab 0.0.160's `client.consensus.create` sends it: a ReconciliationResult the
SDK parses, the run engine's consensus, the error envelope on every bad input, never on the event loop."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from retab.types.consensus import ReconciliationResult

from orchestrator.core.consensus import reconcile as reconcile_mod
from orchestrator.core.consensus import reduce_passes
from orchestrator.service import consensus as service_mod
from tests.api.test_support import assert_envelope, raw, sdk
from tests.conftest import Api

ITEMS = [
    {"description": "Widget", "quantity": 2, "unit_price": 3.5},
    {"description": "Gadget", "quantity": 1, "unit_price": 10.0},
    {"description": "Sprocket", "quantity": 7, "unit_price": 0.25},
]
INPUTS = [
    {"vendor": "ACME Inc", "total": 253.79, "line_items": ITEMS},
    {"vendor": "Acme Inc.", "total": 253.79, "line_items": [ITEMS[1], ITEMS[0], ITEMS[2]]},
    {"vendor": "ACME INC", "total": 235.79, "line_items": [ITEMS[0], ITEMS[1]]},
]
SCHEMA = {"type": "object", "properties": {"vendor": {"type": "string"}, "total": {"type": "number"}}}


@pytest.mark.stores("sqlite")
async def test_the_sdk_parses_it_and_it_is_the_run_engines_consensus(api: Api) -> None:
    # The SDK's own request model shapes the body (exclude_none, by_alias), as client.consensus.create does.
    from retab.types.consensus import CreateConsensusRequest

    body = CreateConsensusRequest(inputs=INPUTS, json_schema=SCHEMA, include_alignment=True).model_dump(
        mode="json", exclude_none=True, by_alias=True
    )
    got = await api.post("/v1/consensus", body, expect=200)
    parsed = sdk(ReconciliationResult, got)
    record = reduce_passes("extract", INPUTS, schema=SCHEMA)
    assert parsed.consensus == record["value"]
    assert parsed.consensus["vendor"] == "ACME Inc" and parsed.consensus["total"] == 253.79
    assert [i["description"] for i in parsed.consensus["line_items"]] == ["Widget", "Gadget", "Sprocket"]
    assert parsed.likelihoods["total"] == pytest.approx(2 / 3)
    assert parsed.likelihoods["line_items.2.description"] == pytest.approx(2 / 3)  # one input has no sprocket
    fields = {f.path: f for f in parsed.fields_ or []}
    assert (fields["total"].supporting_input_count, fields["total"].total_input_count) == (2, 3)
    assert parsed.alignment.aligned_inputs is not None and len(parsed.alignment.aligned_inputs) == 3
    assert parsed.alignment.aligned_inputs[1]["line_items"] == ITEMS  # input 1's list, aligned
    sources = {p.canonical_path: p.source_paths for p in parsed.alignment.path_alignments or []}
    assert sources["line_items.0.unit_price"] == [
        "line_items.0.unit_price",
        "line_items.1.unit_price",
        "line_items.0.unit_price",
    ]
    assert sources["line_items.2.unit_price"][2] is None

    plain = sdk(ReconciliationResult, await api.post("/v1/consensus", {"inputs": INPUTS}, expect=200))
    assert plain.alignment.aligned_inputs is None and plain.alignment.path_alignments is None
    assert plain.consensus == reduce_passes("extract", INPUTS)["value"]


@pytest.mark.stores("sqlite")
async def test_the_reduction_runs_in_a_worker_thread(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[threading.Thread] = []

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(threading.current_thread())
        return reconcile_mod.reconcile(*args, **kw)

    monkeypatch.setattr(service_mod, "reconcile", spy)
    await api.post("/v1/consensus", {"inputs": INPUTS}, expect=200)
    assert seen and seen[0] is not threading.main_thread()


@pytest.mark.stores("sqlite")
@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        ({}, 422, "invalid_consensus_inputs", "`inputs` is required"),
        ({"inputs": [{"a": 1}]}, 422, "invalid_consensus_inputs", "at least 2 inputs, got 1"),
        ({"inputs": [{"a": 1}, 7]}, 422, "invalid_consensus_inputs", "inputs[1] is number"),
        ({"inputs": [{"a": 1}, [1], "x"]}, 422, "invalid_consensus_inputs", "inputs[1] is array, inputs[2] is string"),
        ({"inputs": "nope"}, 422, "invalid_consensus_inputs", "not string"),
        ({"inputs": [{}] * 16}, 422, "invalid_consensus_inputs", "at most 15 inputs"),
        ({"inputs": [{}, {}], "json_schema": "x"}, 422, "validation_error", "json_schema"),
        ({"inputs": [{}, {}], "include_alignment": "maybe"}, 422, "validation_error", "include_alignment"),
        ({"inputs": [{"s": "x" * 600_000}] * 2}, 413, "consensus_inputs_too_large", "the limit is"),
        ({"inputs": [{"items": list(range(201))}, {}]}, 413, "consensus_inputs_too_large", "inputs[0].items"),
    ],
)
async def test_bad_input_gets_a_4xx_envelope(api: Api, body: Any, status: int, code: str, says: str) -> None:
    detail = assert_envelope(await raw(api, "POST", "/v1/consensus", json=body), status, code)
    assert says in detail["message"] or says in str(detail["details"]), detail


@pytest.mark.stores("sqlite")
async def test_malformed_json_and_non_object_bodies(api: Api) -> None:
    assert_envelope(await raw(api, "POST", "/v1/consensus", data=b"{nope"), 400, "invalid_json")
    assert_envelope(await raw(api, "POST", "/v1/consensus", json=[{"a": 1}, {"a": 2}]), 422)
    assert_envelope(await raw(api, "POST", "/v1/consensus", json={"inputs": INPUTS}, auth=False), 401)
