"""One child: n passes in parallel (limiter, timeout, retries) → consensus → assertion → ChildFinish.

A failed pass is data on the child, never an exception escaping the run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, cast

import anyio
import anyio.to_thread
import orjson

from orchestrator.core import assertions, metrics, planning, usage
from orchestrator.core.consensus import ConsensusRecord, reduce_passes
from orchestrator.engines.base import EngineError, HandleValue, JudgeRequest, PassOutput, PassRequest
from orchestrator.engines.ratelimit import backoff_delay
from orchestrator.engines.router import EngineRouter
from orchestrator.ids import ms_between, now_iso
from orchestrator.runner import artifact
from orchestrator.runner.artifact import PassResult
from orchestrator.runner.context import DocumentCache, RunContext, resolve_inputs
from orchestrator.runner.fair import FairLimiter, Reservation
from orchestrator.runner.passcache import PassCache, Prepared, cached_output, entry, model_of, page_count, stale
from orchestrator.settings import Settings
from orchestrator.store.records import CacheEntry, ChildFinish, ClaimedChild, Row

__all__ = ["Executor", "PassResult", "model_of"]
STAT_FOR_KIND = {
    "rate_limited": "rate_limited",
    "timeout": "timed_out",
    "provider": "provider_failed",
    "unparseable": "unparseable",
    "simulated": "simulated_errors",
}


REDUCE_INLINE_BYTES = 4096
REDUCE_THREADS = 2


class Executor:
    def __init__(
        self,
        settings: Settings,
        router: EngineRouter,
        cache: DocumentCache,
        limiter: FairLimiter,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        passes: PassCache | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.cache = cache  # decoded documents
        self.passes = passes  # the pass cache (None: every pass is called)
        self.limiter = limiter
        self.sleep = sleep
        self.rng = random.Random()
        # Consensus is pure Python (GIL-bound): a few threads keep the loop responsive, more would not help.
        self.reduce_threads = anyio.CapacityLimiter(REDUCE_THREADS)

    async def _one_pass(
        self,
        key: str,
        request: PassRequest,
        stats: Counter[str],
        ticket: Reservation | None,
        *,
        immediate: bool = False,
    ) -> PassResult:
        # asyncio-native on purpose (hot path, once per pass): anyio's fail_after / task groups cost
        # a sniffio lookup and a cancel scope each, ~40% of the loop under load. An anyio CancelScope
        # around the child still reaches here: on asyncio it cancels the task, which these honour.
        attempt = 0
        limiter = self.limiter
        timeout_s = self.settings.pass_timeout_s
        while True:
            called = False  # an error before the engine was reached (no route) is not a call
            try:
                engine = self.router.resolve(model_of(request.config))
                if ticket is not None and attempt == 0:
                    ticket.take()  # from here on this pass counts as queued or in use
                await limiter.acquire(key)
                stats[usage.ENGINE_CALLS] += 1
                called = True
                try:
                    if immediate:  # it cannot outlast a timeout: it never waits
                        return PassResult(await engine.run_pass(request), None, attempt + 1)
                    async with asyncio.timeout(timeout_s):
                        return PassResult(await engine.run_pass(request), None, attempt + 1)
                finally:
                    limiter.release(key)
            except TimeoutError:
                err = EngineError(
                    kind="timeout",
                    code="pass_timeout",
                    transient=True,
                    message=f"The pass took longer than {timeout_s}s",
                )
            except EngineError as exc:
                err = exc
            stats[STAT_FOR_KIND.get(err.kind, "other_errors")] += 1
            if called:
                stats[usage.FAILED_CALLS] += 1
            if not err.transient or attempt >= self.settings.pass_retries:
                stats["failed_passes"] += 1
                return PassResult(None, err, attempt + 1)
            stats["retried"] += 1
            # Outside the limiter: a pass waiting out its backoff holds no slot.
            await self.sleep(backoff_delay(attempt, err.retry_after, base=self.settings.retry_base_s, rng=self.rng))
            attempt += 1

    async def _miss(
        self,
        key: str,
        request: PassRequest,
        stats: Counter[str],
        ticket: Reservation | None,
        cache_key: str | None,
        immediate: bool,
    ) -> PassResult:
        """A pass the cache did not have. An identical pass in flight in this worker (another child, another
        run, same key) is waited for instead of called twice; if it fails, this one is called. Passes that
        never wait cannot overlap, so they skip the bookkeeping."""
        passes = self.passes
        if cache_key is None or passes is None or immediate:
            return await self._one_pass(key, request, stats, ticket, immediate=immediate)
        shared = await passes.shared(cache_key)
        if shared is not None:
            if ticket is not None:
                ticket.take()
            return PassResult(shared, None, 0, cached=True)
        fut = passes.begin(cache_key)
        result: PassResult | None = None
        try:
            result = await self._one_pass(key, request, stats, ticket)
            return result
        finally:
            passes.end(cache_key, fut, result.output if result is not None else None)

    async def _passes(
        self,
        key: str,
        block: Row,
        inputs: dict[str, HandleValue],
        n: int,
        seed: int,
        stats: Counter[str],
        ticket: Reservation | None,
        prep: Prepared | None = None,
    ) -> list[PassResult]:
        config = dict(block.get("config") or {})
        results: list[PassResult | None] = [None] * n
        todo: list[int] = []
        for i in range(n):
            hit = prep.hits.get(i) if prep is not None else None
            if hit is not None:
                results[i] = PassResult(cached_output(hit), None, 0, cached=True)
            else:
                todo.append(i)
        request_key = prep.key if prep is not None else None

        def run(i: int, immediate: bool = False) -> Coroutine[Any, Any, PassResult]:
            request = PassRequest(block["id"], block["type"], config, inputs, i, n, seed)
            return self._miss(key, request, stats, ticket, f"{request_key}:{i}" if request_key else None, immediate)

        if len(todo) == 1:
            results[todo[0]] = await run(todo[0])
        elif todo and self._immediate(config):
            # Nothing to overlap: one after the other in this task, no task or timeout per pass.
            for i in todo:
                results[i] = await run(i, immediate=True)
        elif todo:
            # Structured: the group owns the other passes and the current task runs the first itself (one
            # task fewer per child). A cancelled child cancels this task, and the group then its passes.
            async with asyncio.TaskGroup() as tg:
                tasks = {i: tg.create_task(run(i)) for i in todo[1:]}
                results[todo[0]] = await run(todo[0])
            for i, t in tasks.items():
                results[i] = t.result()
        return [r for r in results if r is not None]

    async def _prepare(
        self, ctx: RunContext, child: ClaimedChild, block: Row, n: int
    ) -> tuple[Prepared | None, dict[str, HandleValue]]:
        """A child that was not looked up when its page was claimed (called directly, or its run does not
        use the cache): look it up now. Also its inputs, resolved on the way."""
        inputs = await resolve_inputs(self.cache, child.get("handle_inputs") or {})
        key = self.passes.key(ctx, block, inputs, n) if self.passes is not None else None
        if key is None or self.passes is None:
            return None, inputs
        prep = Prepared(key, page_count=page_count(inputs), n=n)
        prep.use(await self.passes.lookup([key]))
        return prep, inputs

    def _cache_outcome(
        self, model: str, prep: Prepared | None, results: list[PassResult], stats: Counter[str]
    ) -> tuple[list[CacheEntry], list[str]]:
        """Tokens, cost and cache counters of the passes into `stats`; the new entries to store and the
        used ones whose LRU stamp should move."""
        price = self.router.price_for(model)
        done = [(r.cached, r.output) for r in results if r.output is not None]
        stats.update(usage.tally((_usage_of(cached, out) for cached, out in done), price))
        hits = sum(cached for cached, _ in done)
        if hits:
            stats[usage.CACHE_HITS] += hits
        key = prep.key if prep is not None else None
        if not key or prep is None:
            return [], []
        stats[usage.CACHE_MISSES] += len(results) - hits
        put = entry(key, [(i, r.output) for i, r in enumerate(results) if r.output and not r.cached])
        now = time.time()
        touched = any(stale(h, now) for h in prep.hits.values())
        return ([put] if put else []), ([key] if touched else [])

    def _immediate(self, config: Mapping[str, Any]) -> bool:
        try:
            engine = self.router.resolve(model_of(config))
        except EngineError:
            return False
        check = getattr(engine, "immediate", None)  # engines written before the method: assume they wait
        return bool(check(config)) if check is not None else False

    async def execute(
        self, ctx: RunContext, child: ClaimedChild, ticket: Reservation | None = None, prep: Prepared | None = None
    ) -> ChildFinish:
        """`ticket`: the slots the scheduler reserved for this child's passes (the caller closes it);
        `prep`: its passes' keys and cached passes, looked up when its page was claimed."""
        started = now_iso()
        stats: Counter[str] = Counter()
        block = ctx.block(child["block_id"])
        base = ChildFinish(
            child_id=child["id"],
            run_id=ctx.run["id"],
            status="completed",
            started_at=started,
            check_id=child.get("check_id"),
            attempt=int(child.get("attempt") or 0),
        )
        if block is None or block["type"] not in planning.RUNNABLE_TYPES:
            why = "no longer exists" if block is None else f"has type {block['type']}, which cannot run here"
            return self._block_failure(
                ctx,
                child,
                base,
                None,
                EngineError(kind="config", code="block_not_runnable", message=f"Block {child['block_id']} {why}"),
            )
        n = ctx.n_for(block)
        inputs: dict[str, HandleValue] = {}
        try:
            if prep is None:
                prep, inputs = await self._prepare(ctx, child, block, n)
            elif prep.misses(n):  # a fully cached child never reads its documents
                inputs = await resolve_inputs(self.cache, child.get("handle_inputs") or {})
        except EngineError as exc:
            return self._block_failure(ctx, child, base, block, exc)
        seed = int(ctx.run.get("seed") or 0)
        results = await self._passes(base.run_id, block, inputs, n, seed, stats, ticket, prep)
        model = model_of(block.get("config") or {})
        base.cache_puts, base.cache_touches = self._cache_outcome(model, prep, results, stats)
        base.stats = dict(stats)
        outputs = [r.output.output if r.output else None for r in results]
        errors = [r.error for r in results if r.error]
        if all(o is None for o in outputs):
            return self._block_failure(ctx, child, base, block, errors[0] if errors else None)
        first = next(r.output for r in results if r.output)
        pages = page_count(inputs) if inputs else prep.page_count if prep else None
        record: dict[str, Any] = dict(
            await self._reduce(block["type"], outputs, pages, (block.get("config") or {}).get("json_schema"))
        )
        handle_outputs = {"output-json-0": record["value"]}
        art = artifact.build(ctx.run["id"], child, block, model, n, results, record)
        fps = self._fingerprints(ctx, block, child)
        result: dict[str, Any] = {
            "handle_outputs": handle_outputs,
            "consensus": record,
            "fingerprints": fps,
            "engine": first.engine,
            "model": first.model,
            "n_passes": n,
            "pass_errors": [_err_json(e) for e in errors],
            "routing_decisions": artifact.routing(block, record["value"]),
            "usage": art["body"].get("usage"),
        }
        base.artifact = art
        base.completed_at = now_iso()
        if ctx.kind == "experiment":
            base.score = float(record["score"])
            base.result = result
            base.digest = metrics.digest(cast(ConsensusRecord, record))
            return base
        assertion = child.get("assertion") or {}
        judgements = await self._judgements(base.run_id, block, assertion, handle_outputs)
        outcome = assertions.evaluate(assertion, handle_outputs, judgements)
        return self._with_verdict(ctx, base, result, assertion, outcome, fps)

    async def _reduce(
        self, block_type: Any, outputs: list[Any], page_count: int | None, schema: Any
    ) -> ConsensusRecord:
        """Consensus grows much faster than its input (an extract of 200 line items x 5 passes took
        4.7 s, 500 items 64 s): above a few KB it runs in a worker thread so the event loop, and with
        it every other run, keeps going. Small records (the common case, ~0.1 ms) stay inline."""

        def work() -> ConsensusRecord:
            return reduce_passes(block_type, outputs, page_count=page_count, schema=schema)

        if _approx_size(outputs) <= REDUCE_INLINE_BYTES:
            return work()
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=self.reduce_threads)

    async def _judgements(
        self, run_id: str, block: Row, assertion: dict[str, Any], handle_outputs: dict[str, Any]
    ) -> dict[assertions.JudgeKey, assertions.Judgement]:
        out: dict[assertions.JudgeKey, assertions.Judgement] = {}
        if not assertion:
            return out
        for key in assertions.judge_requests(assertion, handle_outputs):
            try:
                engine = self.router.resolve(model_of(block.get("config") or {}))
                async with self.limiter.slot(run_id):
                    with anyio.fail_after(self.settings.pass_timeout_s):
                        answer = await engine.judge(
                            JudgeRequest(
                                config=dict(block.get("config") or {}),
                                rubric=key.rubric,
                                value=_loads(key.value_json),
                                expected_label=key.expected_label,
                            )
                        )
                out[key] = assertions.Judgement(
                    label=answer.label,
                    passed=answer.passed,
                    reasoning=answer.reasoning,
                    engine=answer.engine,
                    decided=answer.decided,
                )
            except (EngineError, TimeoutError):
                continue  # a missing judgement makes the assertion blocked (judge_unavailable)
        return out

    def _with_verdict(
        self,
        ctx: RunContext,
        base: ChildFinish,
        result: dict[str, Any],
        assertion: dict[str, Any],
        outcome: assertions.AssertionOutcome,
        fps: dict[str, str],
    ) -> ChildFinish:
        result["assertion_result"] = assertions.assertion_result_json(assertion, outcome)
        if outcome.notes:
            result["warnings"] = list(outcome.notes)
        result["verdict_summary"] = assertions.verdict_summary_json(assertion, outcome)
        base.verdict = outcome.outcome
        base.result = result
        base.completed_at = base.completed_at or now_iso()
        vs = result["verdict_summary"]
        base.check_summary = {
            "run_record_id": ctx.run["id"],
            "result_id": base.child_id,
            "status": base.status,
            "outcome": base.verdict,
            "started_at": base.started_at,
            "completed_at": base.completed_at,
            "duration_ms": ms_between(base.started_at, base.completed_at),
            "workflow_draft_fingerprint": fps.get("workflow_draft_fingerprint"),
            "block_execution_fingerprint": fps.get("block_execution_fingerprint"),
            "block_config_fingerprint": fps.get("block_execution_fingerprint"),
            "validity_fingerprint": planning.validity_fingerprint(
                fps.get("block_execution_fingerprint", ""), fps.get("handle_inputs_fingerprint", ""), assertion
            ),
            "handle_inputs_fingerprint": fps.get("handle_inputs_fingerprint"),
            "assertions_passed": vs.get("assertions_passed", 0),
            "assertions_failed": vs.get("assertions_failed", 0),
            "blocked_assertions": vs.get("blocked_assertions", 0),
        }
        return base

    def _block_failure(
        self, ctx: RunContext, child: ClaimedChild, base: ChildFinish, block: Row | None, err: EngineError | None
    ) -> ChildFinish:
        """Every pass failed. Experiments: the document errs. Evals: blocked (the block could not run),
        except when the server is misconfigured (no engine for the model): that is an error, not a verdict."""
        err = err or EngineError(kind="provider", code="no_output", message="No pass produced an output")
        base.completed_at = now_iso()
        error = {
            "message": err.message,
            "error_code": err.code,
            "block_id": child["block_id"],
            "context": {"kind": err.kind, **err.details},
        }
        fps = self._fingerprints(ctx, block, child) if block else {}
        if ctx.kind == "experiment" or err.code == "model_not_configured":
            base.status = "error"
            base.error = error
            base.result = {"fingerprints": fps, "pass_errors": [_err_json(err)]}
            return base
        assertion = child.get("assertion") or {}
        outcome = assertions.evaluate(assertion, {}, None, block_error={"code": err.code, "message": err.message})
        result = {"handle_outputs": None, "fingerprints": fps, "pass_errors": [_err_json(err)], "block_error": error}
        return self._with_verdict(ctx, base, result, assertion, outcome, fps)

    def _fingerprints(self, ctx: RunContext, block: Row | None, child: ClaimedChild) -> dict[str, str]:
        if block is None:
            return {}
        bfp = planning.block_execution_fingerprint(block["type"], block.get("config"))
        ifp = planning.handle_inputs_fingerprint(child.get("handle_inputs") or {})
        return {
            "block_execution_fingerprint": bfp,
            "handle_inputs_fingerprint": ifp,
            "workflow_draft_fingerprint": ctx.draft_fp,
            "execution_fingerprint": planning.execution_fingerprint(bfp, ifp),
        }


def _usage_of(cached: bool, out: PassOutput) -> usage.PassUsage:
    u = out.usage
    return (cached, u.prompt_tokens if u else None, u.completion_tokens if u else None, out.engine == "simulated")


def _approx_size(outputs: list[Any]) -> int:
    try:
        return len(orjson.dumps(outputs))
    except (TypeError, orjson.JSONEncodeError):
        return REDUCE_INLINE_BYTES + 1  # unusual values: do not guess, keep the loop safe


def _err_json(err: EngineError) -> dict[str, Any]:
    return {"kind": err.kind, "code": err.code, "message": err.message}


def _loads(raw: str) -> Any:
    return orjson.loads(raw)
