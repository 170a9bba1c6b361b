"""Typed application keys (aiohttp AppKey): what the app carries for its routes."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.sessions import Sessions
from orchestrator.feed.hub import Hub
from orchestrator.service import RunControl, Services
from orchestrator.settings import Settings

SERVICES = web.AppKey("services", Services[RunControl])
SESSIONS = web.AppKey("sessions", Sessions)
SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
REQUEST_ID = web.RequestKey("request_id", str)


def services(request: web.Request) -> Services[RunControl]:
    return request.app[SERVICES]
