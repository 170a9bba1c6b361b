"""The PostgreSQL store: one database shared by API nodes and workers on any number of machines.

Same repositories and the same rules as the SQLite store (core.lifecycle applied inside each
transaction); what changes is how writers meet — row locks instead of one writer (db.py, state.py),
`FOR UPDATE SKIP LOCKED` claims under leases on the database clock (children.py), gseq in commit order
through one counter row (state.EventLog), LISTEN/NOTIFY wake-ups (signals.py), uploaded bytes in the
database (files.py).
"""

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
from orchestrator.store.postgres.cache import CacheStore
from orchestrator.store.postgres.checks import CheckStore
from orchestrator.store.postgres.children import ChildStore
from orchestrator.store.postgres.db import Database, redact
from orchestrator.store.postgres.events import EventStore
from orchestrator.store.postgres.experiments import ExperimentStore
from orchestrator.store.postgres.files import FileStore
from orchestrator.store.postgres.runs import RunStore
from orchestrator.store.postgres.scores import ScoreStore
from orchestrator.store.postgres.signals import PgSignals
from orchestrator.store.postgres.signins import SigninStore
from orchestrator.store.postgres.workers import WorkerStore
from orchestrator.store.postgres.workflows import WorkflowStore
from orchestrator.store.records import Broker

__all__ = ["PostgresStore"]


class PostgresStore:
    """Every repository over one PostgreSQL database (`postgresql://user:password@host:port/dbname`).
    `broker` receives each transaction's feed events once it has committed (none by default)."""

    def __init__(self, url: str, broker: Broker | None = None) -> None:
        self.db = Database(url, broker)
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
        self._signals = PgSignals(url)
        self.signals: Signals = self._signals

    @property
    def url(self) -> str:
        return redact(self.db.url)

    @property
    def writing(self) -> bool:
        return False  # transactions run in the server; this process only waits on the network

    @property
    def storage_full(self) -> bool:
        return self.db.faults.full_since is not None

    async def until_written(self) -> None:
        return None

    def set_broker(self, broker: Broker) -> None:
        self.db.broker = broker

    async def open(self) -> None:
        await self.db.open()
        try:
            await self._signals.open()
        except BaseException:
            await self.db.close()
            raise
        self.db.on_use = self._signals.ensure

    async def close(self) -> None:
        self.db.on_use = None
        await self._signals.close()
        await self.db.close()
