"""create_app(settings) → web.Application. cleanup_ctx owns the store, engines, feed hub and runner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import anyio
from aiohttp import web

from orchestrator import __version__
from orchestrator.api import openapi
from orchestrator.api.http import json_response
from orchestrator.api.keys import HUB, SERVICES, SESSIONS, SETTINGS
from orchestrator.api.middleware import auth_middleware, envelope_middleware
from orchestrator.api.routes import checks, experiments, feed, files, runs, workflows
from orchestrator.api.routes import web as web_routes
from orchestrator.api.services import Services
from orchestrator.api.sessions import Sessions
from orchestrator.engines.router import EngineRouter
from orchestrator.feed.hub import Hub
from orchestrator.runner.recovery import resume_open_runs
from orchestrator.runner.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import open_store

log = logging.getLogger("orchestrator.api")
extra = web.RouteTableDef()


@extra.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "version": __version__})


@extra.get("/v1/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi.build(request.app))


@extra.get("/v1/engines")
async def engines(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return json_response(
        {
            "data": services.router.describe(),
            "settings": {
                "max_concurrency": services.settings.max_concurrency,
                "pass_timeout_s": services.settings.pass_timeout_s,
                "pass_retries": services.settings.pass_retries,
            },
        }
    )


def create_app(settings: Settings, *, router: EngineRouter | None = None) -> web.Application:
    keys = settings.api_keys
    if not keys:
        raise ValueError("create_app needs at least one API key (settings.api_key)")
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[envelope_middleware, auth_middleware(keys)]
    )
    app[SETTINGS] = settings
    app[SESSIONS] = Sessions(keys[0])
    app[HUB] = hub = Hub(settings.feed_buffer)
    # Static segments first: /workflows/evals/runs before /workflows/evals/{id} before /workflows/{id}.
    for table in (
        extra,
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
        engine_router = router or EngineRouter.from_file(settings.models or None)
        store = open_store(settings.db)
        await store.open()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        stop = anyio.Event()

        async def host() -> None:
            # The scheduler's task group must be entered and exited in one task; aiohttp may run the
            # two halves of a cleanup context in different tasks, so one owned task hosts it.
            async with Scheduler(settings, store, engine_router, hub) as scheduler:
                app[SERVICES] = Services(settings, store, scheduler, engine_router)
                await resume_open_runs(store, scheduler)
                ready.set_result(None)
                await stop.wait()
                hub.close_all()

        host_task = loop.create_task(host())
        try:
            # Whichever comes first: ready, or host() failing during start-up (surfaced by result()).
            await asyncio.wait([host_task, ready], return_when=asyncio.FIRST_COMPLETED)
            if host_task.done():
                host_task.result()
            yield
        finally:
            stop.set()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([host_task])
                if not host_task.cancelled() and host_task.exception() is not None:
                    log.error("runner stopped with an error", exc_info=host_task.exception())
                await engine_router.aclose()
                await store.close()

    app.cleanup_ctx.append(lifecycle)
    # Streams end before aiohttp waits for open handlers, so shutdown is prompt and each gets a last event.
    app.on_shutdown.append(feed.on_shutdown)
    return app
