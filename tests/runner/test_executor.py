"""Executor details: big consensus reductions leave the event loop; retries use the shared backoff."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from orchestrator.core.consensus import reduce_passes
from orchestrator.runner import executor as executor_mod
from orchestrator.runner.executor import REDUCE_INLINE_BYTES, Executor
from orchestrator.runner.fair import FairLimiter
from orchestrator.settings import Settings


@pytest.mark.parametrize(("items", "in_thread"), [(1, False), (200, True)])
async def test_big_reductions_run_in_a_worker_thread(monkeypatch: Any, items: int, in_thread: bool) -> None:
    seen: list[int] = []
    real = reduce_passes

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(executor_mod, "reduce_passes", spy)
    ex = Executor(Settings(), router=None, cache=None, limiter=FairLimiter(1))  # type: ignore[arg-type]
    outputs = [{"items": [{"sku": f"S{i}", "qty": i} for i in range(items)]} for _ in range(3)]
    assert (executor_mod._approx_size(outputs) > REDUCE_INLINE_BYTES) is in_thread
    record = await ex._reduce("extract", outputs, None, None)
    assert record["n_voters"] == 3
    assert (seen[0] != threading.get_ident()) is in_thread


def test_the_duplicate_backoff_is_gone() -> None:
    from orchestrator.engines import ratelimit

    assert getattr(executor_mod, "backoff_delay") is ratelimit.backoff_delay  # noqa: B009
