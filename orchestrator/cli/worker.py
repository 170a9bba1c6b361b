"""`orchestrator worker`: one runner process over the store, started by hand (other machines, extra
capacity) or by `serve --workers N`. It claims children of any open run, runs them and commits results;
SIGTERM/SIGINT make it commit what finished, give back the rest, and exit."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import anyio
import orjson

from orchestrator.settings import Settings


def settings_for_worker(base: Settings) -> tuple[Settings, int | None]:
    """Started by `serve`: its settings and pid come in the environment; by hand: the flags."""
    from orchestrator.runner.supervisor import PARENT_ENV, SETTINGS_ENV

    raw = os.environ.get(SETTINGS_ENV)
    parent = os.environ.get(PARENT_ENV)
    if raw:
        values: dict[str, Any] = orjson.loads(raw)
        return Settings(**values), int(parent) if parent else None
    return base, None


async def _main(settings: Settings, parent_pid: int | None) -> None:
    from orchestrator.runner.process import run_worker

    stop = anyio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop=stop, parent_pid=parent_pid)


def worker(base: Settings) -> int:
    settings, parent_pid = settings_for_worker(base)
    fmt = f"%(asctime)s %(levelname)s worker[{os.getpid()}] %(name)s: %(message)s"
    logging.basicConfig(level=settings.log_level.upper(), format=fmt)
    asyncio.run(_main(settings, parent_pid))
    return 0
