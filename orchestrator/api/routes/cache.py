"""The pass cache: `GET /v1/cache` (entries, size, hit rate, per model), `POST /v1/cache/clear`."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.http import json_response, parse_body
from orchestrator.api.keys import services as svc
from orchestrator.wire import requests as rq
from orchestrator.wire.render_cache import cache_stats


async def get_cache(request: web.Request) -> web.Response:
    """Entries, bytes against the bound, hits and misses since the cache was last cleared whole."""
    view = await svc(request).cache.stats()
    return json_response(cache_stats(view.stats, view.max_bytes, view.enabled))


async def clear_cache(request: web.Request) -> web.Response:
    """Delete the entries of `model` (`*`, `?` wildcards) and/or older than `older_than` (`30d`), or all."""
    body = await parse_body(request, rq.ClearCache)
    older = float(body.older_than) if body.older_than is not None else None
    removed, view = await svc(request).cache.clear(model=body.model, older_than_s=older)
    return json_response({"removed": removed, "cache": cache_stats(view.stats, view.max_bytes, view.enabled)})


routes = [web.get("/v1/cache", get_cache), web.post("/v1/cache/clear", clear_cache)]
