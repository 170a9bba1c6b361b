"""create_app(settings) → web.Application. cleanup_ctx owns the store, engines, feed tail and runner host."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
from aiohttp import web

from orchestrator import __version__
from orchestrator.api import openapi
from orchestrator.api.http import json_response
from orchestrator.api.keys import BASE, HUB, SERVICES, SESSIONS, SETTINGS, PublicBase, services
from orchestrator.api.middleware import auth_middleware, envelope_middleware
from orchestrator.api.routes import cache, checks, consensus, experiments, feed, files, runs, unserved, workflows
from orchestrator.api.routes import web as web_routes
from orchestrator.api.sessions import Sessions, session_secret
from orchestrator.engines.router import EngineRouter
from orchestrator.feed.hub import Hub
from orchestrator.feed.tail import FeedTail
from orchestrator.runner.host import RunnerHost
from orchestrator.service import Services
from orchestrator.settings import Settings
from orchestrator.store import open_store
from orchestrator.wire import render

log = logging.getLogger("orchestrator.api")


async def health(request: web.Request) -> web.Response:
    """Public, for load balancers and monitors: whether the store answers (503 when it does not) and
    whether this process saw it refuse a write for lack of space (`storage: full`, runs paused)."""
    store = await services(request).store_health()
    body = {"status": "ok" if store == "ok" else "degraded", "store": store, "version": __version__}
    return json_response(body, status=503 if store == "unavailable" else 200)


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi.build(request.app))


async def engines(request: web.Request) -> web.Response:
    """The engine routes in force and the limits every pass runs under."""
    described, limits, simulated = services(request).engines()
    return json_response(render.engines(described, limits, simulated))


async def workers(request: web.Request) -> web.Response:
    """The runner processes alive, with how many children each holds now."""
    return json_response({"data": [render.worker(w) for w in await services(request).workers()]})


extra = [
    web.get("/v1/health", health),
    web.get("/health", health),
    web.get("/v1/openapi.json", openapi_json),
    web.get("/v1/engines", engines),
    web.get("/v1/workers", workers),
]


def create_app(settings: Settings, *, router: EngineRouter | None = None) -> web.Application:
    keys = settings.api_keys
    if not keys:
        raise ValueError("create_app needs at least one API key (settings.api_key)")
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[envelope_middleware, auth_middleware(keys)]
    )
    app[SETTINGS] = settings
    app[BASE] = PublicBase(settings.base_url)
    app[SESSIONS] = Sessions(
        keys[0],
        session_secret(settings),
        signin_ttl_s=settings.signin_ttl_s,
        session_ttl_s=settings.session_ttl_h * 3600,
    )
    app[HUB] = hub = Hub(settings.feed_buffer)
    # Static segments first: /workflows/evals/runs (runs) before /workflows/evals/{id} (checks) before
    # /workflows/{id} (workflows, last). The SDK routes not served come first of all: several would
    # otherwise match a served route's path parameter (/workflows/runs as the workflow "runs").
    for table in (
        unserved.routes,
        extra,
        cache.routes,
        consensus.routes,
        runs.routes,
        experiments.routes,
        checks.routes,
        files.routes,
        feed.routes,
        web_routes.routes,
        workflows.routes,
    ):
        app.router.add_routes(table)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # Routes first: a bad models file must fail before the database (and its threads) is open.
        engine_router = router or EngineRouter.from_file(
            settings.models or None, python_modules=settings.python_module_list
        )
        store = open_store(settings.db, server=True)
        # Every committed event reaches the hub through the tail, in commit order, whoever committed it.
        tail = FeedTail(store, hub, poll_s=settings.poll_s)
        store.set_broker(tail)
        await store.open()
        host = RunnerHost(settings, store, engine_router, tail)
        try:
            control = await host.start()
            app[SERVICES] = Services(settings, store, control, engine_router)
            yield
        finally:
            with anyio.CancelScope(shield=True):
                hub.close_all()
                await host.stop()
                await engine_router.aclose()
                await store.close()

    app.cleanup_ctx.append(lifecycle)
    # Streams end before aiohttp waits for open handlers, so shutdown is prompt and each gets a last event.
    app.on_shutdown.append(feed.on_shutdown)
    return app
