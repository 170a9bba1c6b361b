"""All persistent state. The only package that speaks SQL."""

from __future__ import annotations

from orchestrator.store.sqlite.checks import CheckStore
from orchestrator.store.sqlite.children import ChildFinish, ChildStore
from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.events import EventStore
from orchestrator.store.sqlite.experiments import ExperimentStore
from orchestrator.store.sqlite.files import FileStore
from orchestrator.store.sqlite.runs import RunStore
from orchestrator.store.sqlite.workflows import WorkflowStore

__all__ = ["ChildFinish", "Store"]


class Store:
    def __init__(self, path: str) -> None:
        self.db = Database(path)
        self.workflows = WorkflowStore(self.db)
        self.files = FileStore(self.db)
        self.checks = CheckStore(self.db)
        self.experiments = ExperimentStore(self.db)
        self.runs = RunStore(self.db)
        self.children = ChildStore(self.db)
        self.events = EventStore(self.db)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
