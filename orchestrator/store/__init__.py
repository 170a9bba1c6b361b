"""All persistent state, behind one interface. The only package that speaks SQL."""

from __future__ import annotations

from orchestrator.store.interface import Listener, Signals, Store
from orchestrator.store.records import (
    ArtifactRecord,
    Broker,
    ChildFinish,
    ChildStart,
    ClaimedChild,
    FeedEvent,
    Page,
    PageRequest,
    Record,
    ResultRecord,
    Row,
    RunRecord,
)

__all__ = [
    "ArtifactRecord",
    "Broker",
    "ChildFinish",
    "ChildStart",
    "ClaimedChild",
    "FeedEvent",
    "Listener",
    "Page",
    "PageRequest",
    "Record",
    "ResultRecord",
    "Row",
    "RunRecord",
    "Signals",
    "Store",
    "open_store",
]


def open_store(url: str, broker: Broker | None = None) -> Store:
    """The store for a `--db` value: a SQLite file path (the default). Not opened yet: `await store.open()`."""
    from orchestrator.store.sqlite import SqliteStore

    return SqliteStore(url, broker)
