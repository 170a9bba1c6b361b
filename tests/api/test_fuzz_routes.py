"""Malformed bodies, path ids and query values across every API route never give a 5xx, and every
error is the Retab envelope with an x-request-id (spec §1.6: a 5xx makes the SDK retry a POST)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from tests.api.test_support import Raw, raw
from tests.conftest import Api, invoice_text

NON_API_MODULES = ("orchestrator.api.routes.web", "orchestrator.api.routes.feed")

WEIRD_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**62,
    1.5e300,
    -0.0,
    True,
    "",
    "x" * 5000,
    "Class.MEMBER",
    "ünïcødé ✓",
    "%00",
    [],
    [1, "a", None],
    {},
    {"a": None},
    {"type": "file", "document": {"id": "file_nope"}},
    {"type": "block", "block_id": None},
]
FIELDS = [
    "workflow_id",
    "project_id",
    "name",
    "description",
    "type",
    "id",
    "label",
    "position_x",
    "width",
    "config",
    "config_mode",
    "parent_id",
    "source_block",
    "target_block",
    "source_handle",
    "filename",
    "size_bytes",
    "content_type",
    "sha256",
    "target",
    "source",
    "assertion",
    "scope",
    "test_id",
    "eval_id",
    "n_consensus",
    "block_id",
    "documents",
    "document_captures",
    "source_experiment_id",
    "experiment_id",
    "plan_token",
]
RAW_BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"[{}]",
    b"12",
    b'"s"',
    b"{",
    b'{"a":1,}',
    b"{}",
    b"1e999999",
    b"9" * 400,
]
QUERY_NAMES = [
    "workflow_id",
    "run_id",
    "limit",
    "order",
    "before",
    "after",
    "status",
    "exclude_status",
    "statuses",
    "trigger_type",
    "from_date",
    "to_date",
    "view",
    "document_id",
    "target_path",
    "include_prior",
    "prior_run_id",
    "target_block_id",
    "eval_id",
    "test_id",
    "block_id",
    "experiment_id",
    "n_consensus",
    "operation",
    "sort_by",
    "project_id",
    "filename",
    "mime_type",
    "source_block",
]
QUERY_VALUES = ["", "x", "-1", "0", "99999999999999999999999", "1.5", "null", "[]", "a.b.C", "2026-13-45", "Z.Y"]


async def fixtures(api: Api) -> dict[str, str]:
    """Real ids, so malformed input also reaches the code behind the lookups."""
    wf, block = await api.workflow_with_extract()
    start = next(
        b["id"]
        for b in (await api.get("/v1/workflows/blocks", params={"workflow_id": wf}, expect=200))["data"]
        if b["type"] == "start_document"
    )
    edge = await api.post(
        "/v1/workflows/edges", {"workflow_id": wf, "source_block": start, "target_block": block}, expect=201
    )
    doc = await api.upload(invoice_text())
    inputs = {"input-file-document": {"type": "file", "document": doc}}
    ev = await api.post(
        "/v1/workflows/evals",
        {
            "workflow_id": wf,
            "target": {"type": "block", "block_id": block},
            "source": {"type": "manual", "handle_inputs": inputs},
            "assertion": {
                "target": {"output_handle_id": "output-json-0", "path": "total"},
                "condition": {"kind": "exists"},
            },
        },
        expect=201,
    )
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    await api.wait_run(run["id"])
    result = (await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200))["data"][0]
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf, "block_id": block, "documents": [{"handle_inputs": inputs}]},
        expect=201,
    )
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    await api.wait_run(xr["id"])
    xres = (await api.get("/v1/workflows/experiments/results", params={"run_id": xr["id"]}, expect=200))["data"][0]
    return {
        "workflow_id": wf,
        "block_id": block,
        "edge_id": edge["id"],
        "check_id": ev["id"],
        "test_id": ev["id"],
        "eval_run_id": run["id"],
        "eval_result_id": result["id"],
        "experiment_id": exp["id"],
        "exp_run_id": xr["id"],
        "exp_result_id": xres["id"],
        "artifact_id": xres["artifact"]["id"],
        "file_id": doc["id"],
        "document_id": xres["document_id"],
    }


def routes(api: Api) -> list[tuple[str, str]]:
    out = []
    for route in api.client.app.router.routes():
        if route.method == "HEAD" or getattr(route.handler, "__module__", "") in NON_API_MODULES:
            continue
        if getattr(route.handler, "unserved", False):
            continue  # the SDK routes this server does not serve answer 501 by design (test_unserved.py)
        info = route.resource.get_info() if route.resource else {}
        path = str(info.get("path") or info.get("formatter"))
        if path.startswith("/v1/"):
            out.append((route.method, path))
    return out


def fill(path: str, ids: dict[str, str], real: bool, weird: str) -> str:
    out = []
    for seg in path.split("/"):
        if seg.startswith("{") and seg.endswith("}"):
            name = seg[1:-1]
            if real:
                if name in ("run_id", "result_id"):
                    experiment = "/experiments/" in path
                    key = ("exp_" if experiment else "eval_") + name.replace("_id", "") + "_id"
                    seg = ids[key]
                else:
                    seg = ids.get(name, weird)
            else:
                seg = weird
        out.append(seg)
    return "/".join(out)


def ok(r: Raw, what: Any) -> None:
    assert r.status < 500, (what, r.status, r.body)
    assert r.headers.get("x-request-id", "").startswith("req_"), what
    if r.status >= 400:
        assert isinstance(r.body, dict) and set(r.body["detail"]) == {"code", "message", "details"}, (what, r.body)


async def test_no_route_answers_5xx_to_malformed_input(api: Api) -> None:
    ids = await fixtures(api)
    rng = random.Random(1234)
    table = routes(api)
    assert len(table) > 40
    requests = 0
    for method, path in table:
        if path.endswith("/content"):
            continue  # the signed upload URL is covered in test_files_api
        for real in (True, False):
            if method == "DELETE" and real:
                continue  # keep the fixtures alive for the other routes
            url = fill(path, ids, real, "nope")
            # structurally broken bodies, then well-formed JSON with wrong types in known fields
            raws = RAW_BODIES if real else RAW_BODIES[:4]
            bodies: list[tuple[bytes | None, Any]] = [(b, None) for b in raws] if method != "GET" else [(None, None)]
            if method in ("POST", "PATCH"):
                for _ in range(8 if real else 3):
                    keys = rng.sample(FIELDS, rng.randint(1, 4))
                    body = {k: rng.choice(WEIRD_VALUES) for k in keys}
                    if rng.random() < 0.5:
                        body["workflow_id"] = ids["workflow_id"]
                    bodies.append((None, body))
            for data, js in bodies:
                params = {rng.choice(QUERY_NAMES): rng.choice(QUERY_VALUES) for _ in range(rng.randint(0, 3))}
                r = await raw(
                    api,
                    method,
                    url,
                    data=data,
                    json=js,
                    params=params,
                    headers={"Content-Type": "application/json"} if data is not None else None,
                )
                requests += 1
                ok(r, (method, url[:120], data, js, params))
        # GET routes: known query parameters with bad values, on real ids
        if method == "GET":
            url = fill(path, ids, True, "nope")
            for name, value in rng.sample(list(itertools.product(QUERY_NAMES, QUERY_VALUES)), 30):
                r = await raw(api, "GET", url, params={name: value, "run_id": ids["exp_run_id"]})
                requests += 1
                ok(r, (url, name, value))
    assert requests > 1500


async def test_weird_ids_in_every_path_param(api: Api) -> None:
    for method, path in routes(api):
        # (ids stay under aiohttp's 8 KiB request-line limit, past which its parser answers before the app)
        for weird in ("..", "%00", "%20", "' OR 1=1 --", "x" * 3000):
            r = await raw(api, method, fill(path, {}, False, weird), json={})
            ok(r, (method, path, weird))
