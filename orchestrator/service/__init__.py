"""The use cases: everything the API (and the demo) can do, composed from the store and core's rules.
No HTTP, no SQL. `Services` wires them to one store and one runner."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from orchestrator.engines.router import EngineRouter
from orchestrator.service.base import Deps, RunControl
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


class Services(Generic[R]):
    """`scheduler` is the runner link: the in-process Scheduler (`--workers 0`), or a control that goes
    through the store to worker processes; typed as the caller's."""

    def __init__(self, settings: Settings, store: Store, scheduler: R, router: EngineRouter) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler
        self.router = router
        deps = Deps(settings, store, scheduler)
        self.workflows = WorkflowService(deps)
        self.checks = CheckService(deps)
        self.runs = RunService(deps)
        self.experiments = ExperimentService(deps)
        self.metrics = MetricsService(deps)
        self.files = FileService(deps)
        self.consensus = ConsensusService(deps)

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
