"""The page's routes in process (no browser): static files, where the page is served from (`--web-root`),
the token sign-in, /v1/session, /v1/runs."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import httpx
import pytest

from orchestrator import settings
from orchestrator.api.keys import SESSIONS
from orchestrator.api.routes import web as web_routes
from tests.conftest import Api, AppFactory
from tests.serverproc import server

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


async def test_missing_page_gives_a_readable_404_that_says_where_it_looked(
    make_api: AppFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Neither the packaged page nor a checkout's web/: a fresh (uncached) resolution that finds nothing.
    monkeypatch.setattr(web_routes, "PACKAGE", "orchestrator._no_such_page")
    monkeypatch.setattr(web_routes, "CHECKOUT_WEB", tmp_path / "absent" / "web")
    monkeypatch.setattr(web_routes, "web_root", functools.cache(web_routes.web_root.__wrapped__))
    api = await make_api()
    for path in ("/", "/static/app.js"):
        resp = await api.client.get(path)
        body = await resp.text()
        assert resp.status == 404 and "Browser page not installed" in body
        assert "orchestrator._no_such_page" in body and str(tmp_path / "absent" / "web") in body

    await api.client.close()  # one server per database file at a time
    configured = await make_api(web_root=str(tmp_path / "elsewhere"))
    resp = await configured.client.get("/")
    body = await resp.text()
    assert resp.status == 404 and "Browser page not installed" in body
    assert "--web-root" in body and str(tmp_path / "elsewhere") in body


def _other_page(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>other</title><h1>Another page</h1>")
    (folder / "extra.js").write_text("export const other = true;")
    return folder


async def test_web_root_serves_another_folder(make_api: AppFactory, tmp_path: Path) -> None:
    api = await make_api(web_root=str(_other_page(tmp_path / "other")))
    resp = await api.client.get("/")
    assert resp.status == 200 and "Another page" in await resp.text()
    assert resp.headers["Content-Security-Policy"] == web_routes.CSP
    js = await api.client.get("/static/extra.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    # Only that folder: the packaged page is not served beside it.
    assert (await api.client.get("/static/app.js")).status == 404
    default = await make_api(db=str(tmp_path / "default.db"))
    assert "/static/app.js" in await (await default.client.get("/")).text(), "other apps keep the packaged page"


def test_web_root_flag_and_environment() -> None:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    assert settings.from_sources(parser.parse_args([]), {}).web_root == ""
    assert settings.from_sources(None, {"ORCHESTRATOR_WEB_ROOT": "/srv/page"}).web_root == "/srv/page"
    args = parser.parse_args(["--web-root", "/srv/flag"])
    assert settings.from_sources(args, {"ORCHESTRATOR_WEB_ROOT": "/srv/page"}).web_root == "/srv/flag"


@pytest.mark.e2e
def test_serve_web_root_flag_serves_another_folder(tmp_path: Path) -> None:
    folder = _other_page(tmp_path / "other")
    with server(tmp_path / "web-root.db", extra=["--web-root", str(folder), "--log-level", "warning"]) as proc:
        resp = httpx.get(proc.base_url + "/")
        assert resp.status_code == 200 and "Another page" in resp.text
        assert httpx.get(proc.base_url + "/static/extra.js").status_code == 200


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
