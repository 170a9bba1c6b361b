"""The embedded SQLite store: one file, WAL, one writer at a time, numbered migrations."""

from __future__ import annotations

from orchestrator.store.interface import (
    CacheRepo,
    CheckRepo,
    ChildRepo,
    EventRepo,
    ExperimentRepo,
    FileRepo,
    RunRepo,
    ScoreRepo,
    Signals,
    SigninRepo,
    WorkerRepo,
    WorkflowRepo,
)
from orchestrator.store.records import Broker
from orchestrator.store.sqlite.cache import CacheStore
from orchestrator.store.sqlite.checks import CheckStore
from orchestrator.store.sqlite.children import ChildStore
from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.events import EventStore
from orchestrator.store.sqlite.experiments import ExperimentStore
from orchestrator.store.sqlite.files import FileStore
from orchestrator.store.sqlite.runs import RunStore
from orchestrator.store.sqlite.scores import ScoreStore
from orchestrator.store.sqlite.signals import Signals as SqliteSignals
from orchestrator.store.sqlite.signins import SigninStore
from orchestrator.store.sqlite.workers import WorkerStore
from orchestrator.store.sqlite.workflows import WorkflowStore

__all__ = ["SqliteStore"]


class SqliteStore:
    """Every repository over one SQLite file. `broker` receives each transaction's feed events once it
    has committed (none by default)."""

    def __init__(self, path: str, broker: Broker | None = None, *, server: bool = False) -> None:
        """`server`: opened by a server's API process, which checks the file and locks it (one server per file)."""
        self.db = Database(path, broker, server=server)
        # Typed as the interface, so that this class is checked against it attribute by attribute.
        self.workflows: WorkflowRepo = WorkflowStore(self.db)
        self.files: FileRepo = FileStore(self.db)
        self.checks: CheckRepo = CheckStore(self.db)
        self.experiments: ExperimentRepo = ExperimentStore(self.db)
        self.runs: RunRepo = RunStore(self.db)
        self.children: ChildRepo = ChildStore(self.db)
        self.events: EventRepo = EventStore(self.db)
        self.workers: WorkerRepo = WorkerStore(self.db)
        self.scores: ScoreRepo = ScoreStore(self.db)
        self.signins: SigninRepo = SigninStore(self.db)
        self.cache: CacheRepo = CacheStore(self.db)
        self._signals = SqliteSignals(path)
        self.signals: Signals = self._signals

    @property
    def url(self) -> str:
        return self.db.path

    @property
    def writing(self) -> bool:
        return self.db.holding

    @property
    def storage_full(self) -> bool:
        return self.db.faults.full_since is not None

    async def until_written(self) -> None:
        await self.db.until_written()

    def set_broker(self, broker: Broker) -> None:
        self.db.broker = broker

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
        self._signals.close()
