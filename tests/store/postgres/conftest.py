"""PostgreSQL-only tests: each test gets a fresh database of the session's throwaway cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.store.postgres import PostgresStore
from tests.store.conftest import RecordingBroker


@pytest.fixture
async def store(pg_url: str, broker: RecordingBroker) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_url, broker)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def other(pg_url: str) -> AsyncIterator[PostgresStore]:
    """A second store on the same database: another process, another machine."""
    s = PostgresStore(pg_url)
    await s.open()
    yield s
    await s.close()
