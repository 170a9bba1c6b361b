"""The browser page: static files under web/ and the token sign-in."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from orchestrator.api.http import json_response, page_json, page_request, q_list
from orchestrator.api.keys import SESSIONS
from orchestrator.api.middleware import COOKIE
from orchestrator.api.routes.runs import run_filters
from orchestrator.api.routes.workflows import svc
from orchestrator.errors import Unprocessable
from orchestrator.wire import render

routes = web.RouteTableDef()

# Packaged inside orchestrator/ so a plain (non-editable) install serves the page too; resolved per
# request so a missing folder gives a readable 404 instead of failing at import.
WEB_DIR = Path(__file__).resolve().parents[3] / "web"
KINDS = ("eval", "test", "experiment")
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
# No inline script or style, nothing from another origin: the page makes no external requests.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MISSING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>orchestrator</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem">
<h1>Browser page not installed</h1>
<p>The server could not find the <code>web/</code> folder next to the <code>orchestrator</code> package
({where}). The REST API under <code>/v1</code> works without it.</p></body></html>"""


def _file(name: str) -> web.StreamResponse:
    root = WEB_DIR.resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        if not root.is_dir():
            return web.Response(
                text=MISSING.format(where=root), status=404, content_type="text/html", headers=SECURITY_HEADERS
            )
        return web.Response(text="Not found", status=404, content_type="text/plain", headers=SECURITY_HEADERS)
    headers = dict(SECURITY_HEADERS)
    headers["Content-Type"] = TYPES.get(target.suffix, "application/octet-stream")
    return web.FileResponse(target, headers=headers)


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token")
    if token is None:
        return _file("index.html")
    sid = request.app[SESSIONS].exchange(token)
    # Redirecting drops the token from the address bar (and from the history).
    response = web.HTTPSeeOther("/" if sid else "/#/signin-failed", headers={"Referrer-Policy": "no-referrer"})
    if sid:
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/")
    raise response


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.StreamResponse:
    return _file("favicon.svg")


@routes.get("/static/{name:.+}")
async def static(request: web.Request) -> web.StreamResponse:
    return _file(request.match_info["name"])


@routes.get("/v1/session")
async def session(request: web.Request) -> web.Response:
    """Reached only when the auth middleware accepted the caller (cookie or key): signed in."""
    via = "cookie" if request.cookies.get(COOKIE) and not request.headers.get("Authorization") else "key"
    return json_response({"signed_in": True, "via": via})


@routes.get("/v1/runs")
async def all_runs(request: web.Request) -> web.Response:
    """Every run of every kind, newest first: the page's runs list (the per-kind lists cannot be merged
    into one cursor order on the client)."""
    kinds = tuple(q_list(request, "kind")) or KINDS
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise Unprocessable(
            f"Unknown run kind {bad[0]!r}",
            details={"errors": [{"loc": ["query", "kind"], "msg": f"must be one of {list(KINDS)}", "type": "enum"}]},
        )
    p = await svc(request).store.runs.list_page(kinds, page_request(request, 25), run_filters(request, "_"))
    return json_response(page_json(p, [render.run(r) for r in p.rows]))
