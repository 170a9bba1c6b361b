"""`GET /v1/cache`, `POST /v1/cache/clear`, and the `cache` switch of run creation: shapes, and bad input as
a 422 in the Retab envelope (never a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_support import assert_envelope, raw
from tests.conftest import Api
from tests.runner.helpers import json_inputs


async def _experiment(api: Api) -> str:
    wf, block = await api.workflow_with_extract()
    body = {"workflow_id": wf, "block_id": block, "name": "c", "n_consensus": 3}
    body["documents"] = [{"handle_inputs": json_inputs(i)} for i in range(2)]
    return str((await api.post("/v1/workflows/experiments", body, expect=201))["id"])


async def test_the_cache_answers_its_state_and_clears(api: Api) -> None:
    empty = await api.get("/v1/cache", expect=200)
    assert empty == {
        "object": "pass_cache",
        "enabled": True,
        "entries": 0,
        "bytes": 0,
        "max_bytes": 1024 << 20,
        "hits": 0,
        "misses": 0,
        "hit_rate": None,
        "oldest_entry_at": None,
        "models": [],
    }
    exp = await _experiment(api)
    for _ in range(2):
        run = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp}, expect=201)
        assert run["cache"] is True and run["usage"]["engine_calls"] == 0  # created: nothing ran yet
        await api.wait_run(run["id"])
    full = await api.get("/v1/cache", expect=200)
    assert (full["entries"], full["hits"], full["misses"], full["hit_rate"]) == (6, 6, 6, 0.5)
    assert full["models"] == [{"model": "simulated", "engine": "simulated", "entries": 6, "bytes": full["bytes"]}]
    assert full["oldest_entry_at"].endswith("Z")
    kept = await api.post("/v1/cache/clear", {"model": "gpt-*", "older_than": "30d"}, expect=200)
    assert kept["removed"] == 0 and kept["cache"]["entries"] == 6
    cleared = await api.post("/v1/cache/clear", {}, expect=200)
    assert cleared["removed"] == 6 and cleared["cache"]["entries"] == 0 and cleared["cache"]["hits"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"older_than": "soon"},
        {"older_than": "-3d"},
        {"older_than": -5},
        {"older_than": True},
        {"older_than": [1]},
        {"model": ""},
        {"model": 3},
        [],
    ],
)
async def test_bad_clear_bodies_are_422(api: Api, body: Any) -> None:
    assert_envelope(await raw(api, "POST", "/v1/cache/clear", json=body), 422)


@pytest.mark.parametrize(
    "path", ["/v1/workflows/evals/runs", "/v1/workflows/tests/runs", "/v1/workflows/experiments/runs"]
)
async def test_the_run_switch_is_a_boolean(api: Api, path: str) -> None:
    body: dict[str, Any] = {"workflow_id": "wf_x", "experiment_id": "exp_x", "cache": "sometimes"}
    detail = assert_envelope(await raw(api, "POST", path, json=body), 422)
    assert "cache" in str(detail["details"])
    assert_envelope(await raw(api, "POST", path, json={**body, "cache": None}, params={"cache": "2"}), 422)


async def test_openapi_describes_the_cache_routes(api: Api) -> None:
    spec = await api.get("/v1/openapi.json", expect=200)
    assert "/v1/cache" in spec["paths"] and "/v1/cache/clear" in spec["paths"]
    assert "ClearCache" in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["CreateExperimentRun"]["properties"]["cache"]
