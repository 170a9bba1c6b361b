"""The browser page: static files under web/ and the token sign-in."""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiohttp import web

from orchestrator.api.http import json_response
from orchestrator.api.keys import BASE, BY_COOKIE, SESSIONS, SETTINGS, services
from orchestrator.api.middleware import COOKIE
from orchestrator.errors import Forbidden

routes = web.RouteTableDef()

# The page is the top-level web/ folder, shipped in wheels as the package data `orchestrator._web`
# (pyproject's package-dir); the editable install's finder maps that name to the checkout's web/.
PACKAGE = "orchestrator._web"
CHECKOUT_WEB = Path(__file__).resolve().parents[3] / "web"
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
<p>The server could not find {what}. The REST API under <code>/v1</code> works without it.</p></body></html>"""


@dataclass(frozen=True)
class WebRoot:
    path: Path | None  # None: no page found
    what: str  # where the page was looked for, as the MISSING page says it (HTML)


@functools.cache
def web_root(configured: str) -> WebRoot:
    """The page's folder: `--web-root` if set (and then no other), else the page installed with the
    package, else the checkout's web/. Cached by the setting: resolved once per app, not per request."""
    if configured:
        path = Path(configured).expanduser().resolve()
        flag = "<code>--web-root</code> (<code>ORCHESTRATOR_WEB_ROOT</code>)"
        return WebRoot(path, f"the folder given by {flag}: {html.escape(str(path))}")
    index: object = None
    try:
        index = resources.files(PACKAGE).joinpath("index.html")
    except (ImportError, TypeError):
        # Not installed as a wheel. An editable install maps the name but cannot import it: web/ has no
        # __init__.py and setuptools' editable finder only finds regular packages under a mapped name.
        pass
    if isinstance(index, Path) and index.is_file():  # a real file, not inside a zip
        folder = index.parent.resolve()
        return WebRoot(folder, f"the page installed with the package ({html.escape(str(folder))})")
    if (CHECKOUT_WEB / "index.html").is_file():
        return WebRoot(CHECKOUT_WEB, f"the checkout's <code>web/</code> folder ({html.escape(str(CHECKOUT_WEB))})")
    return WebRoot(
        None,
        f"the page installed with the package (<code>{PACKAGE}</code>), nor the <code>web/</code> folder of a"
        f" checkout ({html.escape(str(CHECKOUT_WEB))})",
    )


def _file(request: web.Request, name: str) -> web.StreamResponse:
    where = web_root(request.app[SETTINGS].web_root)
    root = where.path
    if root is None or not root.is_dir():
        return web.Response(
            text=MISSING.format(what=where.what), status=404, content_type="text/html", headers=SECURITY_HEADERS
        )
    target = (root / name).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return web.Response(text="Not found", status=404, content_type="text/plain", headers=SECURITY_HEADERS)
    headers = dict(SECURITY_HEADERS)
    headers["Content-Type"] = TYPES.get(target.suffix, "application/octet-stream")
    return web.FileResponse(target, headers=headers)


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token")
    if token is None:
        return _file(request, "index.html")
    sessions = request.app[SESSIONS]
    sid = await sessions.exchange(token, services(request).store.signins.spend)
    # Redirecting drops the token from the address bar (and from the history).
    response = web.HTTPSeeOther("/" if sid else "/#/signin-failed", headers={"Referrer-Policy": "no-referrer"})
    if sid:
        response.set_cookie(
            COOKIE, sid, httponly=True, samesite="Strict", path="/", max_age=int(sessions.session_ttl_s)
        )
    raise response


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.StreamResponse:
    return _file(request, "favicon.svg")


@routes.get("/static/{name:.+}")
async def static(request: web.Request) -> web.StreamResponse:
    return _file(request, request.match_info["name"])


@routes.get("/v1/session")
async def session(request: web.Request) -> web.Response:
    """Reached only when the auth middleware accepted the caller (cookie or key): signed in."""
    return json_response({"signed_in": True, "via": "cookie" if request.get(BY_COOKIE) else "key"})


@routes.post("/v1/session/link")
async def signin_link(request: web.Request) -> web.Response:
    """A fresh sign-in link for a browser (single use, expires after `signin_ttl_s`). API key only: a
    session must not be able to extend itself."""
    if request.get(BY_COOKIE):
        raise Forbidden("Sign-in links are made with the API key, not a browser session", code="key_required")
    sessions = request.app[SESSIONS]
    base = request.app[BASE].url
    return json_response(
        {"url": f"{base}/?token={sessions.create_login_token()}", "expires_in_s": sessions.signin_ttl_s}
    )
