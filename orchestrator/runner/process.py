"""One worker process: a Scheduler over the store, until SIGTERM/SIGINT or its server's death.

Its commits wake the API processes through the store's `events` signal (the store's broker here);
everything else it learns from the store.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import anyio

from orchestrator.engines.router import EngineRouter
from orchestrator.runner.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import Signals, Store, open_store
from orchestrator.store.records import FeedEvent

log = logging.getLogger("orchestrator.runner")
GIL_SWITCH_S = 0.0005


class EventsSignal:
    """A worker's broker: no subscribers here, so committed events only wake the API processes."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals

    def publish(self, events: Sequence[FeedEvent]) -> None:
        self.signals.notify("events")


async def run_worker(settings: Settings, *, stop: anyio.Event, parent_pid: int | None = None) -> None:
    # The database thread releases the GIL at every statement and must get it back from a busy event
    # loop: at the default 5 ms switch interval a 15-statement group commit waited ~60 ms for it.
    sys.setswitchinterval(GIL_SWITCH_S)
    router = EngineRouter.from_file(settings.models or None, python_modules=settings.python_module_list)
    store: Store = open_store(settings.db)
    store.set_broker(EventsSignal(store.signals))
    await store.open()
    try:
        async with Scheduler(settings, store, router) as scheduler:
            log.info("worker %s running (pid %d, %s)", scheduler.worker_id, os.getpid(), store.url)
            while not stop.is_set():
                with anyio.move_on_after(settings.heartbeat_s):
                    await stop.wait()
                if parent_pid is not None and os.getppid() != parent_pid:
                    log.warning("worker %s: its server (pid %d) is gone; stopping", scheduler.worker_id, parent_pid)
                    break
            log.info("worker %s stopping", scheduler.worker_id)
    finally:
        with anyio.CancelScope(shield=True):
            await router.aclose()
            await store.close()
