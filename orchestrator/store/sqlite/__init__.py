"""The embedded SQLite store: one file, WAL, one writer at a time, numbered migrations."""

from __future__ import annotations

from orchestrator.store.records import Broker
from orchestrator.store.sqlite.checks import CheckStore
from orchestrator.store.sqlite.children import ChildStore
from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.events import EventStore
from orchestrator.store.sqlite.experiments import ExperimentStore
from orchestrator.store.sqlite.files import FileStore
from orchestrator.store.sqlite.runs import RunStore
from orchestrator.store.sqlite.signals import Signals
from orchestrator.store.sqlite.workers import WorkerStore
from orchestrator.store.sqlite.workflows import WorkflowStore

__all__ = ["SqliteStore"]


class SqliteStore:
    """Every repository over one SQLite file. `broker` receives each transaction's feed events once it
    has committed (none by default)."""

    def __init__(self, path: str, broker: Broker | None = None) -> None:
        self.db = Database(path, broker)
        self.workflows = WorkflowStore(self.db)
        self.files = FileStore(self.db)
        self.checks = CheckStore(self.db)
        self.experiments = ExperimentStore(self.db)
        self.runs = RunStore(self.db)
        self.children = ChildStore(self.db)
        self.events = EventStore(self.db)
        self.workers = WorkerStore(self.db)
        self.signals = Signals(path)

    @property
    def url(self) -> str:
        return self.db.path

    def set_broker(self, broker: Broker) -> None:
        self.db.broker = broker

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
        self.signals.close()
