"""Auth, request ids, the error envelope and body limits: one place for each.

Cross-site requests (README "Security"): a browser attaches the session cookie to requests that other
sites make, so a request authenticated by the cookie alone must show it comes from this page. A
state-changing one needs `Content-Type: application/json` (a form or a `text/plain` fetch cannot set it
without a CORS preflight, which this server never grants) and a same-origin `Origin` or
`Sec-Fetch-Site: same-origin`; a WebSocket needs a same-origin `Origin` (browsers always send it); any
request whose `Origin` or `Sec-Fetch-Site` names another site or port is refused. Requests with the
API key in a header are programs, not browsers, and are never affected.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from orchestrator.api.keys import BY_COOKIE, REQUEST_ID, SESSIONS, SETTINGS
from orchestrator.errors import (
    Forbidden,
    MethodNotAllowed,
    NotFound,
    OrchestratorError,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
)
from orchestrator.ids import new_id

log = logging.getLogger("orchestrator.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "orchestrator_session"
PUBLIC_PATHS = ("/", "/favicon.ico", "/v1/health", "/health")
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def error_response(exc: OrchestratorError, request_id: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(exc.envelope()),
        status=exc.status,
        content_type="application/json",
        headers={"x-request-id": request_id, **(headers or {})},
    )


def _presented_key(request: web.Request) -> str | None:
    """The API key of a header, never of the URL: keys in URLs end up in logs, histories and Referers."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if request.headers.get("Api-Key"):
        return request.headers["Api-Key"].strip()
    return None


def _origins(request: web.Request) -> set[str]:
    """This server's origins as a browser names them: the address it was reached at, and --public-url."""
    found = {f"{request.scheme}://{request.host}".lower()}
    public = request.app[SETTINGS].public_url
    if public:
        parts = public.rstrip("/").split("/")
        found.add("/".join(parts[:3]).lower())
    return found


def check_same_origin(request: web.Request) -> None:
    """Refuse a cookie-authenticated request that another site (or another port) made; see the docstring."""
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    same = origin is not None and origin.lower() in _origins(request)
    if origin is not None and not same:
        raise Forbidden(f"Cross-site request refused (Origin {origin})", code="cross_site_request")
    if fetch_site not in ("", "same-origin", "none"):
        raise Forbidden(f"Cross-site request refused (Sec-Fetch-Site {fetch_site})", code="cross_site_request")
    if request.headers.get("Upgrade", "").lower() == "websocket" and not same:
        raise Forbidden("A WebSocket signed in by cookie needs a same-origin Origin", code="cross_site_request")
    if request.method in SAFE_METHODS:
        return
    if not (same or fetch_site == "same-origin"):
        raise Forbidden(
            "A request signed in by cookie must come from this page (Origin or Sec-Fetch-Site)",
            code="cross_site_request",
        )
    if request.content_type != "application/json":
        raise Forbidden(
            "A request signed in by cookie must send Content-Type: application/json", code="cross_site_request"
        )


def key_valid(keys: tuple[str, ...], presented: str | None) -> bool:
    if not presented:
        return False
    return any(hmac.compare_digest(presented.encode(), k.encode()) for k in keys)


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error, whatever raised it, leaves as the Retab envelope with an x-request-id."""
    request_id = new_id("req")
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except OrchestratorError as exc:
        response = error_response(exc, request_id)
        if isinstance(exc, RequestTimeout):
            response.force_close()  # the rest of the body may still come: the connection is done for
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(PayloadTooLarge(f"Request body is larger than {exc.text}"), request_id)
    except web.HTTPMethodNotAllowed as exc:
        allowed = sorted(exc.allowed_methods)
        err = MethodNotAllowed(
            f"Method {request.method} is not allowed on {request.path}", details={"allowed": allowed}
        )
        return error_response(err, request_id, {"Allow": ", ".join(allowed)})
    except web.HTTPNotFound:
        return error_response(
            NotFound(f"No route for {request.method} {request.path}", code="route_not_found"), request_id
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        generic = OrchestratorError(exc.reason or "Request failed", code=f"http_{exc.status}")
        generic.status = exc.status
        return error_response(generic, request_id)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            OrchestratorError("Internal error; see the server log", code="internal_error"), request_id
        )
    if not response.prepared:
        response.headers["x-request-id"] = request_id
    return response


def auth_middleware(keys: tuple[str, ...]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if request.method == "OPTIONS" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        if path.startswith("/v1/files/upload/") and path.endswith("/content"):
            # The upload URL is a capability (unguessable file id + signature checked by the route).
            return await handler(request)
        presented = _presented_key(request)
        by_cookie = presented is None and bool(request.cookies.get(COOKIE))
        if by_cookie:
            presented = request.app[SESSIONS].key_for(request.cookies[COOKIE])
        if not key_valid(keys, presented):
            what = "missing" if not presented else "not valid"
            raise Unauthorized(
                f"API key {what}. Send `Authorization: Bearer KEY` or `Api-Key: KEY`.", code="invalid_api_key"
            )
        if by_cookie:
            check_same_origin(request)
        request[BY_COOKIE] = by_cookie
        return await handler(request)

    return middleware
