"""The pass cache as an operator sees it: how big it is, how often it answers, and clearing it."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.service.base import UseCase
from orchestrator.store.records import CacheStats


@dataclass(frozen=True)
class CacheView:
    stats: CacheStats
    max_bytes: int
    enabled: bool


class CacheService(UseCase):
    async def stats(self) -> CacheView:
        settings = self._deps.settings
        return CacheView(await self._store.cache.stats(), settings.cache_max_mb << 20, settings.cache)

    async def clear(self, *, model: str | None, older_than_s: float | None) -> tuple[int, CacheView]:
        """How many entries went, and the cache after. Runs in flight still store the passes they call."""
        removed = await self._store.cache.clear(model=model, older_than_s=older_than_s)
        return removed, await self.stats()
