"""Executor details: big consensus reductions leave the event loop; retries use the shared backoff."""

from __future__ import annotations

import random
import threading
from typing import Any, cast

import pytest

from orchestrator.core.consensus import reduce_passes
from orchestrator.engines import ratelimit
from orchestrator.engines.base import EngineError, JudgeAnswer, JudgeRequest, PassOutput, PassRequest
from orchestrator.engines.decoding import DecodeLimits, Decoder
from orchestrator.engines.ratelimit import backoff_delay
from orchestrator.engines.router import EngineRouter
from orchestrator.runner import executor as executor_mod
from orchestrator.runner.context import DocumentCache, RunContext
from orchestrator.runner.executor import REDUCE_INLINE_BYTES, Executor
from orchestrator.runner.fair import FairLimiter
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.records import ClaimedChild, RunRecord


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


class ScriptedEngine:
    """Raises the scripted errors, one per call, then answers."""

    name = "scripted"

    def __init__(self, errors: list[EngineError]) -> None:
        self.errors = errors
        self.calls = 0

    async def run_pass(self, request: PassRequest) -> PassOutput:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return PassOutput(output={"total": 1.5}, engine=self.name, model="simulated")

    async def judge(self, request: JudgeRequest) -> JudgeAnswer:
        raise AssertionError("no assertion to judge in an experiment")

    async def aclose(self) -> None:
        return None


def transient(retry_after: float | None = None) -> EngineError:
    return EngineError(kind="provider", code="http_503", message="busy", transient=True, retry_after=retry_after)


async def test_retries_wait_the_shared_backoff() -> None:
    """The duplicate backoff is gone: every retry of a pass waits exactly what the shared
    `ratelimit.backoff_delay` gives for that attempt (full jitter over base * 2**attempt, never less
    than the provider's Retry-After), computed from the executor's rng and the settings' base."""
    assert getattr(executor_mod, "backoff_delay") is ratelimit.backoff_delay  # noqa: B009
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    engine = ScriptedEngine([transient(), transient(retry_after=7.5), transient(), transient()])
    router = EngineRouter(factories={"simulated": lambda route, environ: engine})
    settings = Settings(retry_base_s=0.25, pass_retries=4)
    cache = DocumentCache(cast(Store, None), Decoder(DecodeLimits()))
    ex = Executor(settings, router, cache, FairLimiter(1), sleep=sleep)
    ex.rng = random.Random(1234)
    block = {"id": "blk_1", "type": "extract", "config": {"model": "simulated", "n_consensus": 1}}
    run = cast(RunRecord, {"id": "exprun_1", "kind": "experiment", "seed": 0})
    ctx = RunContext(run=run, blocks={"blk_1": block}, draft_fp="fp")
    child = ClaimedChild(
        id="exprundoc_1",
        run_id="exprun_1",
        position=0,
        check_id=None,
        document_id=None,
        block_id="blk_1",
        block_type="extract",
        status="running",
        attempt=0,
        handle_inputs={"input-json-0": {"type": "json", "data": {}}},  # JSON: no file is ever read
        assertion=None,
    )

    finish = await ex.execute(ctx, child)

    assert finish.status == "completed" and finish.result is not None
    assert finish.result["handle_outputs"] == {"output-json-0": {"total": 1.5}}
    assert engine.calls == 5 and finish.stats["retried"] == 4
    ref = random.Random(1234)
    expected = [backoff_delay(i, after, base=0.25, rng=ref) for i, after in enumerate([None, 7.5, None, None])]
    assert slept == expected
    assert slept[1] == 7.5  # Retry-After beats the drawn jitter (at most 0.5 s for the 2nd retry)
    assert all(0 <= s <= 0.25 * 2**i for i, s in enumerate(slept) if i != 1)
    assert len(set(slept)) == 4  # jittered, not a fixed schedule
