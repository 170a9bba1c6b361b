"""SQLite-specific inspection for tests that check what was written, row by row."""

from __future__ import annotations

from orchestrator.store import Store
from orchestrator.store.sqlite import SqliteStore
from orchestrator.store.sqlite.db import Database


def db_of(store: Store) -> Database:
    assert isinstance(store, SqliteStore), f"this test reads SQLite directly, not {type(store).__name__}"
    return store.db
