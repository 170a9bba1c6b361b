"""The use cases: everything the API (and the demo) can do, composed from the store and core's rules.
No HTTP, no SQL. `Services` wires them to one store and one runner."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import anyio

from orchestrator.engines.router import EngineRouter
from orchestrator.service.base import Deps, RunControl
from orchestrator.service.cache import CacheService
from orchestrator.service.checks import CheckService
from orchestrator.service.consensus import ConsensusService
from orchestrator.service.experiments import ExperimentService
from orchestrator.service.files import FileService
from orchestrator.service.metrics import MetricsService
from orchestrator.service.runs import RunService
from orchestrator.service.workflows import WorkflowService
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.records import Row

__all__ = ["RunControl", "Services"]

R = TypeVar("R", bound=RunControl, covariant=True)


HEALTH_TIMEOUT_S = 2.0  # a store that takes longer than this to answer one read is unavailable


class Services(Generic[R]):
    """`scheduler` is the runner link: the in-process Scheduler (`--workers 0`), or a control that goes
    through the store to worker processes; typed as the caller's."""

    def __init__(self, settings: Settings, store: Store, scheduler: R, router: EngineRouter) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler
        self.router = router
        deps = Deps(settings, store, scheduler, router)
        self.workflows = WorkflowService(deps)
        self.checks = CheckService(deps)
        self.runs = RunService(deps)
        self.experiments = ExperimentService(deps)
        self.metrics = MetricsService(deps)
        self.files = FileService(deps)
        self.consensus = ConsensusService(deps)
        self.cache = CacheService(deps)

    async def store_health(self) -> str:
        """`ok`, `full` (a write was refused for lack of space and none succeeded since) or `unavailable`."""
        try:
            with anyio.fail_after(HEALTH_TIMEOUT_S):
                await self.store.events.last_gseq()
        except Exception:
            return "unavailable"
        return "full" if self.store.storage_full else "ok"

    async def workers(self) -> list[Row]:
        """The live runner processes (their heartbeat is recent), each with the children it holds."""
        return await self.store.workers.list()

    def engines(self) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        """The engine routes in force, the global limits every pass runs under, and the model names
        the simulated engine answers for (no model behind them)."""
        limits = {
            "max_concurrency": self.settings.max_concurrency,
            "pass_timeout_s": self.settings.pass_timeout_s,
            "pass_retries": self.settings.pass_retries,
        }
        return self.router.describe(), limits, self.router.simulated_models()
