"""At start-up, resume runs left pending, queued or running by a previous process."""

from __future__ import annotations

import logging

from orchestrator.runner.scheduler import Scheduler
from orchestrator.store import Store

log = logging.getLogger("orchestrator.recovery")


async def resume_open_runs(store: Store, scheduler: Scheduler) -> int:
    """Children that were claimed or running go back to pending (passes are at-least-once);
    children already committed stay as they are (results and counts are exactly-once)."""
    requeued = await store.children.requeue_interrupted()
    runs = await store.runs.open_runs()
    for run in runs:
        scheduler.submit(run["id"])
    if runs:
        log.info("resuming %d run(s); %d interrupted child(ren) will run again", len(runs), requeued)
    return len(runs)
