"""Typed application keys (aiohttp AppKey): what the app carries for its routes."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from orchestrator.api.sessions import Sessions
from orchestrator.feed.hub import Hub
from orchestrator.service import RunControl, Services
from orchestrator.settings import Settings


@dataclass
class PublicBase:
    """The base URL links are built from (upload URLs, sign-in links): --public-url, else the address
    the server is bound to (set once it is bound; `--port 0` picks a port). Never the request's `Host`,
    which any client (or a DNS-rebinding page) chooses."""

    url: str


SERVICES = web.AppKey("services", Services[RunControl])
SESSIONS = web.AppKey("sessions", Sessions)
SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
BASE = web.AppKey("base", PublicBase)
REQUEST_ID = web.RequestKey("request_id", str)
BY_COOKIE = web.RequestKey("by_cookie", bool)  # authenticated by the session cookie, not a key header


def services(request: web.Request) -> Services[RunControl]:
    return request.app[SERVICES]
