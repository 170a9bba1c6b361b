"""The HTTP server around the app: bound, started (demo included), stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from orchestrator.api.app import create_app
from orchestrator.api.keys import BASE, SERVICES, SESSIONS
from orchestrator.api.protocol import EnvelopeRunner
from orchestrator.settings import Settings

LINGER_S = 1.0


@dataclass(frozen=True)
class Started:
    settings: Settings  # with the port actually bound (`--port 0` picks a free one)
    login_token: str | None  # for the browser's sign-in URL
    simulated_models: tuple[str, ...] = ()  # model-name patterns the simulated engine answers for


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Started]:
    """Serve until the block exits; then stop accepting, end the feeds, drain the runner, close."""
    app = create_app(settings)
    # Lingering (reading what is left of a refused body so the client sees the answer) is capped: a
    # client whose body timed out would otherwise hold its connection 10 s more.
    runner = EnvelopeRunner(app, handle_signals=False, access_log=None, lingering_time=LINGER_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        port = next((int(a[1]) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), settings.port)
        app[BASE].url = settings.replace(port=port).base_url
        if settings.demo:
            from orchestrator.demo import ensure_demo

            await ensure_demo(app[SERVICES])
        yield Started(
            settings.replace(port=port),
            app[SESSIONS].create_login_token(),
            tuple(app[SERVICES].router.simulated_models()),
        )
    finally:
        await runner.cleanup()
