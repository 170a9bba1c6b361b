"""The HTTP shell (spec §0.1, §1): /v1 mount, auth, x-request-id, the error envelope for every error,
bodyless POSTs, cursor pagination (§1.7), lenient query values, no redirects, openapi and engines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_support import SLOW, assert_envelope, create_eval, raw
from tests.conftest import Api, AppFactory

NON_API_MODULES = ("orchestrator.api.routes.web", "orchestrator.api.routes.feed")


def api_routes(api: Api) -> list[tuple[str, str]]:
    out = []
    for route in api.client.app.router.routes():
        if route.method == "HEAD" or getattr(route.handler, "unserved", False):
            continue  # the SDK routes answered with 501 are not this API's (test_unserved.py)
        info = route.resource.get_info() if route.resource else {}
        out.append((route.method, str(info.get("path") or info.get("formatter"))))
    return out


async def test_every_api_route_is_under_v1(api: Api) -> None:
    for route in api.client.app.router.routes():
        if getattr(route.handler, "__module__", "") in NON_API_MODULES:
            continue
        info = route.resource.get_info() if route.resource else {}
        if info.get("path") == "/health":
            continue  # load balancers' conventional path; the same handler as /v1/health
        assert str(info.get("path") or info.get("formatter")).startswith("/v1/"), info


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Basic dGVzdC1rZXk6"}, 401),
        ({"Api-Key": "wrong"}, 401),
        ({"Api-Key": ""}, 401),
        ({"Authorization": "Bearer test-key"}, 200),
        ({"Authorization": "bearer test-key"}, 200),
        ({"Api-Key": "test-key"}, 200),
        ({"api-key": "test-key"}, 200),
        # both present: Authorization wins
        ({"Authorization": "Bearer test-key", "Api-Key": "wrong"}, 200),
        ({"Authorization": "Bearer wrong", "Api-Key": "test-key"}, 401),
    ],
)
async def test_auth(api: Api, headers: dict[str, str], status: int) -> None:
    r = await raw(api, "GET", "/v1/workflows", headers=headers, auth=False)
    if status == 401:
        d = assert_envelope(r, 401, "invalid_api_key")
        assert "Api-Key" in d["message"]
    else:
        assert r.status == 200 and r.headers["x-request-id"].startswith("req_")


async def test_auth_applies_to_unknown_routes_and_every_method(api: Api) -> None:
    for method, path in (("GET", "/v1/nope"), ("POST", "/v1/workflows"), ("DELETE", "/v1/workflows/wf_x")):
        assert_envelope(await raw(api, method, path, auth=False), 401)
    assert (await raw(api, "GET", "/v1/health", auth=False)).status == 200


async def test_multiple_keys(make_api: AppFactory) -> None:
    api = await make_api(api_key="k1, k2")
    for key in ("k1", "k2"):
        assert (await raw(api, "GET", "/v1/workflows", headers={"Api-Key": key}, auth=False)).status == 200
    assert_envelope(await raw(api, "GET", "/v1/workflows", headers={"Api-Key": "k1, k2"}, auth=False), 401)


async def test_request_id_on_every_response(api: Api) -> None:
    wf = await api.post("/v1/workflows", {"project_id": "p"}, expect=201)
    seen = set()
    for method, path, body, status in (
        ("GET", "/v1/workflows", None, 200),
        ("POST", "/v1/workflows", {"project_id": "p"}, 201),
        ("DELETE", f"/v1/workflows/{wf['id']}", None, 204),
        ("GET", "/v1/workflows/wf_nope", None, 404),
        ("GET", "/v1/health", None, 200),
        ("GET", "/v1/openapi.json", None, 200),
    ):
        r = await raw(api, method, path, json=body)
        assert r.status == status
        rid = r.headers.get("x-request-id", "")
        assert rid.startswith("req_") and rid not in seen
        seen.add(rid)


async def test_malformed_json_is_400(api: Api) -> None:
    for data in (b"{", b'{"name": }', b"\xff\xfe", b"[1,", b"{'a': 1}", b"NaN"):
        r = await raw(api, "POST", "/v1/workflows", data=data, headers={"Content-Type": "application/json"})
        assert_envelope(r, 400, "invalid_json")


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b'"text"', b"12", b"null", b"true"])
async def test_non_object_body_is_422(api: Api, body: bytes) -> None:
    r = await raw(api, "POST", "/v1/workflows", data=body, headers={"Content-Type": "application/json"})
    d = assert_envelope(r, 422, "validation_error")
    assert d["details"]["errors"][0]["loc"] == ["body"]


async def test_validation_error_lists_failing_fields(api: Api) -> None:
    r = await raw(api, "POST", "/v1/workflows/blocks", json={"type": 5, "position_x": "left"})
    d = assert_envelope(r, 422, "validation_error")
    locs = {tuple(e["loc"]) for e in d["details"]["errors"]}
    assert {("body", "workflow_id"), ("body", "type"), ("body", "position_x")} <= locs
    for e in d["details"]["errors"]:
        assert set(e) == {"loc", "msg", "type"}


async def test_unknown_route_and_wrong_method(api: Api) -> None:
    for path in ("/v1/nope", "/v1/workflows/evals/runs/x/y/z", "/v2/workflows", "/workflows"):
        assert_envelope(await raw(api, "GET", path), 404, "route_not_found")
    for method, path in (
        ("PUT", "/v1/workflows"),
        ("DELETE", "/v1/workflows/evals/runs/wfevalrun_x"),
        ("GET", "/v1/workflows/evals/runs/wfevalrun_x/cancel"),
        ("PATCH", "/v1/files/upload"),
        ("POST", "/v1/workflows/experiments/metrics"),
    ):
        d = assert_envelope(await raw(api, method, path, json={}), 405, "method_not_allowed")
        assert d["details"]["allowed"], (method, path)


async def test_oversized_body_is_413(make_api: AppFactory) -> None:
    api = await make_api(max_body_bytes=1000)
    big = {"project_id": "p", "name": "x" * 2000}
    assert_envelope(await raw(api, "POST", "/v1/workflows", json=big), 413, "payload_too_large")
    too_big = {"filename": "a.txt", "size_bytes": 5000}  # refused before any byte is sent
    assert_envelope(await raw(api, "POST", "/v1/files/upload", json=too_big), 413, "payload_too_large")
    up = await api.post("/v1/files/upload", {"filename": "a.txt", "size_bytes": 900}, expect=200)
    path = "/" + up["upload_url"].split("://", 1)[1].split("/", 1)[1]
    assert_envelope(await raw(api, "PUT", path, data=b"x" * 5000), 413)
    assert (await raw(api, "POST", "/v1/workflows", json={"project_id": "p"})).status == 201


async def test_bodyless_posts_with_json_content_type(api: Api) -> None:
    """The SDK sends Content-Type: application/json on every request, even with no body."""
    hdr = {"Content-Type": "application/json"}
    wf, block = await api.workflow_with_extract(SLOW)
    await create_eval(api, wf, block, {"input-json-0": {"type": "json", "data": {"total": 1}}})
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    r = await raw(api, "POST", f"/v1/workflows/evals/runs/{run['id']}/cancel", headers=hdr)
    assert r.status == 200, r.body
    nested = await raw(api, "POST", f"/v1/workflows/{wf}/tests/runs", headers=hdr)
    assert nested.status == 201, nested.body
    r = await raw(api, "POST", f"/v1/workflows/tests/runs/{nested.body['id']}/cancel", headers=hdr)
    assert r.status == 200
    up = await api.post("/v1/files/upload", {"filename": "a.txt", "size_bytes": 0}, expect=200)
    path = "/" + up["upload_url"].split("://", 1)[1].split("/", 1)[1]
    assert (await raw(api, "PUT", path, data=b"")).status == 200
    assert (await raw(api, "POST", f"/v1/files/upload/{up['file_id']}/complete", headers=hdr)).status == 200
    assert (await raw(api, "POST", f"/v1/workflows/{wf}/publish", headers=hdr)).status == 200
    # a GET and DELETE carrying the header are fine too
    assert (await raw(api, "GET", "/v1/workflows", headers=hdr)).status == 200
    assert (await raw(api, "DELETE", f"/v1/workflows/blocks/{block}", headers=hdr)).status == 204


async def test_no_redirects(api: Api) -> None:
    for path in ("/v1/workflows/", "/v1/workflows/evals/", "/v1//workflows", "/v1/workflows/evals/runs/"):
        r = await raw(api, "GET", path)
        assert r.status < 300 or r.status >= 400, (path, r.status)
        if r.status >= 400:
            assert_envelope(r, r.status)


# -- cursor pagination (§1.7), on the saved evals list
async def evals_desc(api: Api, n: int) -> tuple[str, list[str]]:
    wf, block = await api.workflow_with_extract()
    made = [(await create_eval(api, wf, block, {}))["id"] for _ in range(n)]
    return wf, made[::-1]  # newest first = the default `desc` order


async def page(api: Api, wf: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.get("/v1/workflows/evals", params={"workflow_id": wf, **params}, expect=200)
    assert set(body) == {"data", "list_metadata"} and set(body["list_metadata"]) == {"before", "after"}
    return body


async def test_cursor_pagination(api: Api) -> None:
    wf, ids = await evals_desc(api, 5)
    p1 = await page(api, wf, limit=2)
    assert [e["id"] for e in p1["data"]] == ids[:2]
    assert p1["list_metadata"] == {"before": None, "after": ids[1]}
    p2 = await page(api, wf, limit=2, after=ids[1])
    assert [e["id"] for e in p2["data"]] == ids[2:4]
    assert p2["list_metadata"] == {"before": ids[2], "after": ids[3]}
    p3 = await page(api, wf, limit=2, after=ids[3])
    assert [e["id"] for e in p3["data"]] == ids[4:] and p3["list_metadata"]["after"] is None
    exact = await page(api, wf, limit=5)
    assert exact["list_metadata"] == {"before": None, "after": None}
    assert (await page(api, wf, limit=2, after=ids[4]))["data"] == []

    # before=X: the items just before X, still in the requested order
    b = await page(api, wf, limit=2, before=ids[4])
    assert [e["id"] for e in b["data"]] == ids[2:4]
    assert b["list_metadata"] == {"before": ids[2], "after": ids[3]}
    b2 = await page(api, wf, limit=2, before=ids[2])
    assert [e["id"] for e in b2["data"]] == ids[0:2] and b2["list_metadata"]["before"] is None
    b3 = await page(api, wf, limit=10, before=ids[1])
    assert [e["id"] for e in b3["data"]] == ids[:1] and b3["list_metadata"]["before"] is None
    assert (await page(api, wf, before=ids[0]))["data"] == []

    asc = await page(api, wf, limit=2, order="PaginationOrder.ASC")
    assert [e["id"] for e in asc["data"]] == ids[::-1][:2]
    asc_before = await page(api, wf, limit=2, order="asc", before=ids[0])
    assert [e["id"] for e in asc_before["data"]] == ids[::-1][2:4]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/workflows",
        "/v1/workflows/blocks",
        "/v1/workflows/edges",
        "/v1/workflows/evals",
        "/v1/workflows/tests",
        "/v1/workflows/evals/runs",
        "/v1/workflows/tests/runs",
        "/v1/workflows/evals/results",
        "/v1/workflows/experiments",
        "/v1/workflows/experiments/runs",
        "/v1/workflows/experiments/results",
        "/v1/workflows/artifacts",
        "/v1/files",
    ],
)
async def test_before_and_after_together_is_400(api: Api, path: str) -> None:
    wf, _ = await api.workflow_with_extract()
    params = {"before": "a", "after": "b", "workflow_id": wf, "run_id": "x"}
    assert_envelope(await raw(api, "GET", path, params=params), 400, "invalid_cursor")


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": -1}, {"limit": "ten"}, {"limit": 10**30}, {"order": "sideways"}]
)
async def test_bad_page_parameters_are_422(api: Api, params: dict[str, Any]) -> None:
    assert_envelope(await raw(api, "GET", "/v1/workflows", params=params), 422, "validation_error")


async def test_unknown_cursor_is_a_4xx_envelope(api: Api) -> None:
    r = await raw(api, "GET", "/v1/workflows", params={"after": "wf_unknown"})
    assert_envelope(r, 400, "invalid_cursor")


async def test_openapi(api: Api) -> None:
    doc = await api.get("/v1/openapi.json", expect=200)
    assert doc["openapi"].startswith("3.") and {"bearer", "apiKey"} <= set(doc["components"]["securitySchemes"])
    for method, path in api_routes(api):
        if path.startswith("/v1/"):
            assert method.lower() in doc["paths"].get(path, {}), (method, path)
    create = doc["paths"]["/v1/workflows/evals"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = create["$ref"].rsplit("/", 1)[1]
    assert "workflow_id" in doc["components"]["schemas"][name]["properties"]
    for op in (o for item in doc["paths"].values() for o in item.values()):
        assert op["operationId"]
    ids = [o["operationId"] for item in doc["paths"].values() for o in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


async def test_engines(api: Api) -> None:
    body = await api.get("/v1/engines", expect=200)
    assert isinstance(body["data"], list) and body["data"]
    assert body["settings"]["max_concurrency"] >= 1
    assert_envelope(await raw(api, "GET", "/v1/engines", auth=False), 401)


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("from_date=2000-01-01%2010:00:00%2B00:00", True),  # str(datetime), encoded like httpx does
        ("from_date=2000-01-01 10:00:00+00:00", True),  # unencoded: the `+` arrives as a space
        ("from_date=2000-01-01T10:00:00.123456+00:00", True),
        ("from_date=2000-01-01%2010:00:00.5%2000:00", True),
        ("from_date=2000-01-01T10:00:00Z", True),
        ("from_date=2000-01-01", True),
        ("to_date=2000-01-01%2010:00:00-05:00", False),
        ("to_date=2999-01-01", True),
        ("from_date=2999-01-01T00:00:00%2B00:00", False),
    ],
)
async def test_query_datetimes(api: Api, query: str, found: bool) -> None:
    wf = await api.post("/v1/workflows", {"project_id": "p"}, expect=201)
    resp = await api.client.get(f"/v1/files?{query}", headers={"Authorization": "Bearer test-key"})
    assert resp.status == 200, await resp.text()
    runs = await api.client.get(f"/v1/workflows/evals/runs?{query}", headers={"Authorization": "Bearer test-key"})
    assert runs.status == 200, await runs.text()
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf["id"]}, expect=201)
    listed = await api.client.get(f"/v1/workflows/evals/runs?{query}", headers={"Authorization": "Bearer test-key"})
    assert [r["id"] for r in (await listed.json())["data"]] == ([run["id"]] if found else [])
    await api.wait_run(run["id"])
