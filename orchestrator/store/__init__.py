"""All persistent state, behind one interface (`Store`); the values it exchanges are in `records`.
The only package that speaks SQL."""

from __future__ import annotations

from orchestrator.store.interface import Listener, Signals, Store
from orchestrator.store.records import Broker

__all__ = ["Listener", "Signals", "Store", "is_postgres_url", "open_store"]


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str, broker: Broker | None = None, *, server: bool = False) -> Store:
    """The store for a `--db` value: a `postgresql://…` URL (PostgreSQL, for several machines) or a SQLite
    file path (the default). Not opened yet: `await store.open()`. `server`: a server's API process opens
    it: a SQLite file is then checked and locked against a second server (PostgreSQL is shared by design)."""
    if is_postgres_url(url):
        from orchestrator.store.postgres import PostgresStore

        return PostgresStore(url, broker)
    from orchestrator.store.sqlite import SqliteStore

    return SqliteStore(url, broker, server=server)
