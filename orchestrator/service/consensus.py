"""POST /v1/consensus: reconcile objects the caller sends with the engine the runs use (core.consensus).

Off the event loop, always: validation walks the inputs and the reduction grows faster than them, so both
run in a worker thread, at most REDUCE_THREADS at a time (the loop keeps serving every run and feed)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread

from orchestrator.core.consensus.reconcile import Reconciliation, reconcile, validate_inputs
from orchestrator.service.base import UseCase

REDUCE_THREADS = 2


class ConsensusService(UseCase):
    _limiter: anyio.CapacityLimiter | None = None

    async def reconcile(self, inputs: Any, json_schema: Any, include_alignment: bool) -> Reconciliation:
        if self._limiter is None:  # made on first use: a limiter belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(REDUCE_THREADS)

        def work() -> Reconciliation:
            valid = validate_inputs(inputs, json_schema)
            return reconcile(valid, json_schema, include_alignment=include_alignment)

        return await anyio.to_thread.run_sync(work, limiter=self._limiter, abandon_on_cancel=True)
