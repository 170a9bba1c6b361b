"""The pass cache's state as `GET /v1/cache` and `orchestrator cache stats` show it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.ids import iso
from orchestrator.store.records import CacheStats


def cache_stats(stats: CacheStats, max_bytes: int, enabled: bool) -> dict[str, Any]:
    looked_up = stats.hits + stats.misses
    oldest = None if stats.oldest is None else iso(datetime.fromtimestamp(stats.oldest, UTC))
    return {
        "object": "pass_cache",
        "enabled": enabled,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "max_bytes": max_bytes,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_rate": round(stats.hits / looked_up, 4) if looked_up else None,
        "oldest_entry_at": oldest,
        "models": [
            {"model": m["model"], "engine": m["engine"], "entries": m["entries"], "bytes": m["bytes"]}
            for m in stats.models
        ],
    }
