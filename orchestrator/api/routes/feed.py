"""Live progress feeds: SSE and WebSocket, per run and across runs."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
