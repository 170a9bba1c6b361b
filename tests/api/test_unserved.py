"""Every route of the pinned SDK (retab 0.0.160) is either served or answers 501 `not_implemented`, naming
the resource and pointing to README's list: never a route-less 404, a misleading "Workflow runs not
found" (the workflow route's path parameter) or a 405 (a bare APIError in the SDK)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import retab

from orchestrator.api.routes.unserved import README_SECTION, UNSERVED
from tests.api.test_support import assert_envelope, raw
from tests.conftest import Api

SDK_RESOURCES = Path(retab.__file__).parent / "resources"
_PREPARED = re.compile(r'method="([A-Z]+)", url=f?"([^"]+)"')
_DYNAMIC = re.compile(r'__url = f?"([^"]+)"')


def sdk_routes() -> list[tuple[str, str]]:
    """(method, path) of every request the SDK can prepare, read from its source."""
    found: set[tuple[str, str]] = set()
    for path in SDK_RESOURCES.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= set(_PREPARED.findall(text))
        # `workflows.apply/plan` build their URL first (with or without a workflow id); both are POSTs.
        found |= {("POST", url) for url in _DYNAMIC.findall(text)}
    return sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x_missing", path)


UNSERVED_ROUTES = {tuple(e.split(" ", 1)) for entries in UNSERVED.values() for e in entries}


def test_the_sdk_source_was_read() -> None:
    routes = sdk_routes()
    assert ("POST", "/v1/consensus") in routes and ("GET", "/v1/workflows/runs/{run_id}") in routes
    assert len(routes) > 130
    assert UNSERVED_ROUTES <= set(routes), "a listed route the SDK does not have"


@pytest.mark.stores("sqlite")
@pytest.mark.parametrize(("method", "path"), sdk_routes(), ids=[f"{m} {p}" for m, p in sdk_routes()])
async def test_every_sdk_route_is_served_or_says_it_is_not(api: Api, method: str, path: str) -> None:
    r = await raw(api, method, concrete(path), json={} if method in ("POST", "PUT", "PATCH") else None)
    if (method, path) in UNSERVED_ROUTES:
        detail = assert_envelope(r, 501, "not_implemented")
        assert detail["details"]["see"] == README_SECTION and detail["details"]["resource"] in detail["message"]
        return
    assert r.status not in (405, 501), (r.status, r.body)
    if r.status == 404:
        assert r.body["detail"]["code"] != "route_not_found", r.body


@pytest.mark.stores("sqlite")
async def test_the_misleading_answers_are_gone(api: Api) -> None:
    runs = assert_envelope(await raw(api, "GET", "/v1/workflows/runs"), 501, "not_implemented")
    assert runs["details"]["resource"] == "workflow runs" and "Workflow runs not found" not in runs["message"]
    step = assert_envelope(await raw(api, "GET", "/v1/workflows/steps/step_1"), 501, "not_implemented")
    assert step["details"]["resource"] == "workflow run steps"
    review = assert_envelope(await raw(api, "POST", "/v1/workflows/reviews/rev_1/approve", json={}), 501)
    assert review["details"]["resource"] == "reviews"
    history = assert_envelope(await raw(api, "GET", "/v1/workflows/versions", params={"workflow_id": "w"}), 501)
    assert history["details"]["resource"] == "workflow version history"
    executions = assert_envelope(await raw(api, "POST", "/v1/workflows/blocks/executions", json={}), 501)
    assert executions["details"]["resource"] == "block executions"
    # The served neighbours still answer as before.
    assert_envelope(await raw(api, "GET", "/v1/workflows/wf_missing"), 404, "not_found")
    assert_envelope(await raw(api, "GET", "/v1/workflows/blocks/blk_missing"), 404, "not_found")
    # Not part of this API's description.
    doc = await api.get("/v1/openapi.json", expect=200)
    assert "/v1/workflows/runs" not in doc["paths"] and "/v1/consensus" in doc["paths"]
