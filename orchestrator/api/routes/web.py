"""The browser page: static files under web/ and the token sign-in."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
