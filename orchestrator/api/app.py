"""create_app(settings) → web.Application. cleanup_ctx owns the store, engines, feed hub and runner."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator import __version__
from orchestrator.api import openapi
from orchestrator.api.http import json_response
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
from orchestrator.store import Store

extra = web.RouteTableDef()


@extra.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "version": __version__})


@extra.get("/v1/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi.build(request.app))


@extra.get("/v1/engines")
async def engines(request: web.Request) -> web.Response:
    services: Services = request.app["services"]
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
    app["settings"] = settings
    app["upload_secret"] = secrets.token_bytes(32)
    app["sessions"] = Sessions(keys[0])
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
        store = Store(settings.db)
        await store.open()
        engine_router = router or EngineRouter.from_file(settings.models or None)
        hub = Hub(settings.feed_buffer)
        try:
            async with Scheduler(settings, store, engine_router, hub) as scheduler:
                app["services"] = Services(settings, store, scheduler, engine_router)
                app["hub"] = hub
                await resume_open_runs(store, scheduler)
                yield
                hub.close_all()
        finally:
            await engine_router.aclose()
            await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
