"""`orchestrator serve`: start the HTTP server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from pathlib import Path

from orchestrator.settings import Settings


def ensure_key(settings: Settings) -> Settings:
    """No key given: create a random one on first start and keep it beside the database."""
    if settings.api_keys:
        return settings
    if settings.db.startswith(("postgresql://", "postgres://")):
        # Every API node of a PostgreSQL store must accept the same key: a key file on one machine won't do.
        raise ValueError("a PostgreSQL store needs --api-key (or ORCHESTRATOR_API_KEY), the same on every node")
    key_file = Path(settings.db + ".key") if settings.db != ":memory:" else None
    if key_file and key_file.exists():
        key = key_file.read_text().strip()
    else:
        key = "orch_" + secrets.token_urlsafe(24)
        if key_file:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
    return settings.replace(api_key=key)


def _link_note(settings: Settings) -> str:
    from orchestrator.api.sessions import secret_file

    path = secret_file(settings)
    until = f"{path.name} is deleted" if path else "the first API key changes"
    minutes = settings.signin_ttl_s / 60
    return (
        f"(works once, within {minutes:g} min: keep it private; `orchestrator signin` makes another. Sessions"
        f" last {settings.session_ttl_h:g} h and survive restarts; every browser is signed out when {until})"
    )


async def serve(settings: Settings) -> None:
    from orchestrator.api.server import running

    async with running(settings) as started:
        bound = started.settings
        print(f"orchestrator listening on {bound.base_url}", flush=True)
        print(f"API key: {settings.api_keys[0]}", flush=True)
        if started.login_token:
            print(f"Open in a browser: {bound.base_url}/?token={started.login_token}", flush=True)
            print(f"  {_link_note(settings)}", flush=True)
        if started.simulated_models:
            models = ", ".join(started.simulated_models)
            print(f"Simulated engine (deterministic rules, no language model) answers for: {models}", flush=True)
        print(f"SDK: RETAB_API_BASE_URL={bound.base_url} RETAB_API_KEY={settings.api_keys[0]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logging.getLogger("orchestrator").info("shutting down")
