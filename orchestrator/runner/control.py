"""How the API process tells the runners about runs: the service layer's RunControl, two ways.

With the runner in the API process (`--workers 0`) the Scheduler itself is the control (it has `submit`
and `cancel`). With worker processes (or an API-only node) everything goes through the store: a
cancellation is written there, and the `runs` signal wakes the workers, who poll the store anyway
within `poll_s`.
"""

from __future__ import annotations

from orchestrator.store import Store


class StoreControl:
    def __init__(self, store: Store) -> None:
        self.store = store

    def submit(self, run_id: str) -> None:
        self.store.signals.notify("runs")

    async def cancel(self, run_id: str, reason: str) -> bool:
        event = await self.store.runs.finish(run_id, "cancelled", reason=reason)
        self.store.signals.notify("runs")
        return event is not None
