"""One block-config validator for the API and the importer: the same configs are refused by both,
and the importer's message is the API's, placed in the import file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.importer.spec import SpecError, parse
from tests.api.test_support import raw
from tests.conftest import Api

# (block type, config, what the API says when it is not a field's type that is wrong)
BAD: list[tuple[str, dict[str, Any], str | None]] = [
    ("extract", {"json_schema": {"type": "nope"}}, "config.json_schema is not a valid JSON schema"),
    ("extract", {"json_schema": "not an object"}, None),
    ("extract", {"n_consensus": 0}, None),
    ("extract", {"n_consensus": 16}, None),
    ("extract", {"temperature": 2.5}, None),
    ("extract", {"model": 5}, None),
    ("classifier", {"categories": []}, "config.categories must not be empty"),
    ("classifier", {"categories": [{"description": "no name"}]}, None),
    ("split", {"subdocuments": []}, "config.subdocuments must not be empty"),
    ("split", {"subdocuments": [{"name": 3}]}, None),
]
GOOD: list[tuple[str, dict[str, Any]]] = [
    ("extract", {"model": "simulated", "json_schema": {"type": "object"}, "n_consensus": 3}),
    ("extract", {}),
    ("classifier", {"categories": [{"name": "invoice"}]}),
    ("split", {"subdocuments": [{"name": "invoice", "allow_multiple_instances": True}]}),
    ("note", {"categories": [], "json_schema": {"type": "nope"}}),  # the rules are per block type
]


def _import(block_type: str, config: dict[str, Any]) -> None:
    spec = {"workflow": {"name": "wf"}, "blocks": [{"label": "b", "type": block_type, "config": config}]}
    parse(spec, Path("import.yaml"))


async def _create(api: Api, block_type: str, config: dict[str, Any]) -> tuple[int, Any]:
    wf = await api.post("/v1/workflows", {"name": "wf"}, expect=201)
    body = {"workflow_id": wf["id"], "type": block_type, "label": "b", "config": config}
    r = await raw(api, "POST", "/v1/workflows/blocks", json=body)
    return r.status, r.body


@pytest.mark.parametrize(("block_type", "config", "message"), BAD)
async def test_both_refuse(api: Api, block_type: str, config: dict[str, Any], message: str | None) -> None:
    status, body = await _create(api, block_type, config)
    assert status == 422, body
    with pytest.raises(SpecError) as refused:
        _import(block_type, config)
    if message is not None:
        assert body["detail"]["message"].startswith(message)
        assert f"blocks[0] (b).{body['detail']['message']}" in str(refused.value)
    else:
        assert "invalid block config" in str(refused.value)


@pytest.mark.parametrize(("block_type", "config"), GOOD)
async def test_both_accept(api: Api, block_type: str, config: dict[str, Any]) -> None:
    status, body = await _create(api, block_type, config)
    assert status == 201, body
    _import(block_type, config)
