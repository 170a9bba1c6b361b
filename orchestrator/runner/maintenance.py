"""Housekeeping owned by the runner: event retention, and uploads never completed.

A finished run's feed events are only needed by a subscriber resuming from an old cursor; after the
retention period they are pruned down to the run's last event (so a feed still ends such a run with
`run.finished`, and an older cursor gets a `reset` and a fresh snapshot). Without this the events table
grows by a row per child forever.

An upload whose session expired before it was completed can never be used (completing it answers
410): an hour later its bytes are deleted, or abandoned uploads would keep their space forever, restarts
included.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import anyio

from orchestrator.ids import iso, now
from orchestrator.store import Store

log = logging.getLogger("orchestrator.runner")
PRUNE_EVERY_S = 600.0
UPLOAD_GRACE = timedelta(hours=1)


async def prune_events(store: Store, retention_days: float, at: datetime | None = None) -> int:
    """Prune the events of runs finished more than `retention_days` before `at` (now); 0 keeps everything."""
    if retention_days <= 0:
        return 0
    cutoff = iso((at or now()) - timedelta(days=retention_days))
    assert cutoff is not None
    removed = await store.events.prune(cutoff)
    if removed:
        log.info("pruned %d feed event(s) of runs finished before %s", removed, cutoff)
    return removed


async def purge_uploads(store: Store, at: datetime | None = None) -> int:
    """Delete the uploads whose session expired more than UPLOAD_GRACE before `at` (now) without being
    completed. Until then a late client still gets 410 `upload_expired` (not a puzzling 404)."""
    cutoff = iso((at or now()) - UPLOAD_GRACE)
    assert cutoff is not None
    removed = await store.files.purge_abandoned(cutoff)
    if removed:
        log.info("deleted %d upload(s) never completed before their session expired", removed)
    return removed


async def maintenance_loop(store: Store, retention_days: float, every_s: float = PRUNE_EVERY_S) -> None:
    """Prune and purge at start-up, then every `every_s`; a failure is logged and retried at the next tick."""
    while True:
        try:
            await prune_events(store, retention_days)
        except Exception:
            log.exception("pruning feed events failed")
        try:
            await purge_uploads(store)
        except Exception:
            log.exception("purging expired uploads failed")
        await anyio.sleep(every_s)
