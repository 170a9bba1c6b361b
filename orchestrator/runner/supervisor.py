"""`serve --workers N`: N runner processes beside the API process, restarted when they die, drained at
shutdown.

Each worker is `python -m orchestrator worker` with this server's settings (passed in the environment)
and its pid, so it exits by itself if the server dies without stopping it. A worker that exits on its
own is restarted with a log line, after a pause that grows while it keeps crashing. At shutdown every
worker gets SIGTERM: it stops claiming, commits what finished, gives back what did not, and exits; one
still running after `DRAIN_S` is killed (its leases expire and nothing is lost).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

import anyio
import orjson
from anyio.abc import Process, TaskGroup

from orchestrator.settings import Settings

log = logging.getLogger("orchestrator.runner")
DRAIN_S = 8.0  # within serve's 10 s: workers commit what finished and release the rest
SETTINGS_ENV = "ORCHESTRATOR_WORKER_SETTINGS"
PARENT_ENV = "ORCHESTRATOR_PARENT_PID"


def worker_command() -> list[str]:
    return [sys.executable, "-m", "orchestrator", "worker"]


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env[SETTINGS_ENV] = orjson.dumps(asdict(settings)).decode()
    env[PARENT_ENV] = str(os.getpid())
    return env


class Supervisor:
    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.procs: dict[int, Process] = {}
        self.restarts = 0
        self._stopping = False
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Supervisor:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        for slot in range(self.count):
            self._tg.start_soon(self._keep, slot)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._tg is not None
        self._stopping = True
        with anyio.CancelScope(shield=True):
            await self._drain()
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(*exc)

    async def _keep(self, slot: int) -> None:
        pause = 1.0
        while not self._stopping:
            started = time.monotonic()
            proc = await anyio.open_process(
                worker_command(), stdin=subprocess.DEVNULL, stdout=None, stderr=None, env=worker_env(self.settings)
            )
            self.procs[slot] = proc
            code = await proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            if time.monotonic() - started > 60:
                pause = 1.0  # it ran for a while: not a crash loop
            log.warning("worker %d (pid %d) exited with code %s; restarting it in %.0f s", slot, proc.pid, code, pause)
            await anyio.sleep(pause)
            pause = min(30.0, pause * 2)

    async def _drain(self) -> None:
        running = [p for p in self.procs.values() if p.returncode is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        with anyio.move_on_after(DRAIN_S):
            for proc in running:
                await proc.wait()
        for proc in running:
            if proc.returncode is None:
                log.warning("worker pid %d did not stop within %.0f s; killing it", proc.pid, DRAIN_S)
                proc.kill()
                await proc.wait()
