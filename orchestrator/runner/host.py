"""What runs beside the API in the API process, started and stopped as one: the feed tail, and the runner
— in-process (`--workers 0`), as worker processes (`--workers N`), or none (`--api-only`).

Everything is hosted by one owned task: aiohttp may run the two halves of a cleanup context in
different tasks, and task groups must be entered and exited in the same one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio

from orchestrator.engines.router import EngineRouter
from orchestrator.feed.tail import FeedTail
from orchestrator.runner.control import StoreControl
from orchestrator.runner.scheduler import Scheduler
from orchestrator.runner.supervisor import Supervisor
from orchestrator.settings import Settings
from orchestrator.store import Store

log = logging.getLogger("orchestrator.runner")
RunControl = Scheduler | StoreControl


class RunnerHost:
    def __init__(self, settings: Settings, store: Store, router: EngineRouter, tail: FeedTail) -> None:
        self.settings = settings
        self.store = store
        self.router = router
        self.tail = tail
        self.supervisor: Supervisor | None = None
        self._control: RunControl | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[RunControl] | None = None
        self._stop = anyio.Event()

    async def start(self) -> RunControl:
        """Returns once the runner is ready; raises what made it fail to start."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._task = loop.create_task(self._host())
        waiting: list[asyncio.Future[Any]] = [self._task, self._ready]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()  # raises
            raise RuntimeError("the runner stopped during start-up")
        return self._ready.result()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([self._task])
            if not self._task.cancelled() and self._task.exception() is not None:
                log.error("the runner stopped with an error", exc_info=self._task.exception())

    async def _host(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.tail.run)
            await self._recover()
            if self.settings.api_only:
                await self._serve(StoreControl(self.store))
            elif self.settings.workers <= 0:
                async with Scheduler(self.settings, self.store, self.router) as scheduler:
                    await self._serve(scheduler)
            else:
                async with Supervisor(self.settings, self.settings.workers) as supervisor:
                    self.supervisor = supervisor
                    await self._serve(StoreControl(self.store))
            tg.cancel_scope.cancel()

    async def _serve(self, control: RunControl) -> None:
        assert self._ready is not None
        self._ready.set_result(control)
        await self._stop.wait()

    async def _recover(self) -> None:
        """Children held by workers that stopped beating (a server that was killed) go back to pending
        now rather than when their leases expire; live workers' claims are left alone."""
        dead = await self.store.workers.reap(2 * self.settings.heartbeat_s)
        reclaimed = await self.store.children.reclaim(time.time(), dead)
        if reclaimed:
            log.info("%d child(ren) interrupted by a previous stop will run again", reclaimed)
