"""The page's routes in process (no browser): static files, the token sign-in, /v1/session, /v1/runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.api.keys import SESSIONS
from orchestrator.api.routes import web as web_routes
from tests.conftest import Api

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}}


async def test_index_and_static_files_are_public_with_a_strict_policy(api: Api) -> None:
    resp = await api.client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    body = await resp.text()
    assert '<script type="module" src="/static/app.js">' in body
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    js = await api.client.get("/static/app.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    css = await api.client.get("/static/styles.css")
    assert css.status == 200 and css.content_type == "text/css"
    icon = await api.client.get("/favicon.ico")
    assert icon.status == 200 and icon.content_type == "image/svg+xml"


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/%2e%2e/pyproject.toml", "/static/..%2fpyproject.toml"])
async def test_static_never_leaves_the_web_folder(api: Api, path: str) -> None:
    resp = await api.client.get(path)
    # The client may normalise `..` away (then the path is not public: 401); either way nothing leaks.
    assert resp.status in (401, 404)
    assert "build-system" not in await resp.text()


async def test_missing_web_folder_gives_a_readable_404(
    api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(web_routes, "WEB_DIR", tmp_path / "absent")
    resp = await api.client.get("/")
    assert resp.status == 404 and "Browser page not installed" in await resp.text()


async def test_sign_in_sets_an_httponly_strict_cookie_and_drops_the_token(api: Api) -> None:
    bad = await api.client.get("/?token=wrong", allow_redirects=False)
    assert bad.status == 303 and bad.headers["Location"] == "/#/signin-failed"
    assert "Set-Cookie" not in bad.headers
    assert (await api.client.get("/v1/session")).status == 401

    app = api.client.app
    assert app is not None
    token = app[SESSIONS].create_login_token()
    ok = await api.client.get(f"/?token={token}", allow_redirects=False)
    assert ok.status == 303 and ok.headers["Location"] == "/"
    cookie = ok.headers["Set-Cookie"].lower()
    assert cookie.startswith("orchestrator_session=") and "httponly" in cookie
    assert "samesite=strict" in cookie and "path=/" in cookie
    session = await api.client.get("/v1/session")  # the test client keeps the cookie
    assert session.status == 200 and (await session.json())["signed_in"] is True
    runs = await api.client.get("/v1/workflows/evals/runs")
    assert runs.status == 200, "the cookie authenticates the REST routes"


async def test_all_runs_list_is_newest_first_across_kinds_and_filters(api: Api) -> None:
    wf, block = await api.workflow_with_extract({"json_schema": SCHEMA})
    inputs = {"input-json-0": {"type": "json", "data": {"total": 1}}}
    await api.post(
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
    first = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf, "block_id": block, "n_consensus": 3, "documents": [{"handle_inputs": inputs}]},
        expect=201,
    )
    second = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    await api.wait_run(first["id"])
    await api.wait_run(second["id"])

    page = await api.get("/v1/runs", expect=200)
    assert [r["id"] for r in page["data"]] == [second["id"], first["id"]]
    assert page["data"][0]["counts"]["lifecycle_counts"]["completed"] == 1
    only = await api.get("/v1/runs", params={"kind": "eval"}, expect=200)
    assert [r["id"] for r in only["data"]] == [first["id"]]
    one = await api.get("/v1/runs", params={"limit": 1}, expect=200)
    assert one["list_metadata"]["after"] == second["id"]
    older = await api.get("/v1/runs", params={"limit": 1, "after": second["id"]}, expect=200)
    assert [r["id"] for r in older["data"]] == [first["id"]]
    none = await api.get("/v1/runs", params={"status": "running", "workflow_id": wf}, expect=200)
    assert none["data"] == []
    await api.get("/v1/runs", params={"kind": "nope"}, expect=422)
