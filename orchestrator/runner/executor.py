"""One child: n passes in parallel (limiter, timeout, retries) → consensus → assertion → ChildFinish.

A failed pass is data on the child, never an exception escaping the run.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import orjson

from orchestrator.core import assertions, planning
from orchestrator.core.consensus import ConsensusRecord, reduce_passes
from orchestrator.engines.base import EngineError, HandleValue, JudgeRequest, PassOutput, PassRequest
from orchestrator.engines.ratelimit import backoff_delay
from orchestrator.engines.router import EngineRouter
from orchestrator.ids import ms_between, now_iso
from orchestrator.runner.context import DocumentCache, RunContext, resolve_inputs
from orchestrator.runner.fair import FairLimiter, Reservation
from orchestrator.settings import Settings
from orchestrator.store.records import ChildFinish, ClaimedChild, Row

OPERATION = {"extract": "extraction", "classifier": "classification", "split": "split"}
ARTIFACT_PREFIX = {"extract": "extr", "classifier": "cls", "split": "splt"}
STAT_FOR_KIND = {
    "rate_limited": "rate_limited",
    "timeout": "timed_out",
    "provider": "provider_failed",
    "unparseable": "unparseable",
    "simulated": "simulated_errors",
}


REDUCE_INLINE_BYTES = 4096
REDUCE_THREADS = 2


@dataclass
class PassResult:
    output: PassOutput | None
    error: EngineError | None
    attempts: int


DEFAULT_MODEL = "retab-small"  # spec §2.2: an extract block's model defaults to retab-small


def model_of(config: Mapping[str, Any]) -> str:
    return str(config.get("model") or DEFAULT_MODEL)


class Executor:
    def __init__(
        self,
        settings: Settings,
        router: EngineRouter,
        cache: DocumentCache,
        limiter: FairLimiter,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.settings = settings
        self.router = router
        self.cache = cache
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
            try:
                engine = self.router.resolve(model_of(request.config))
                if ticket is not None and attempt == 0:
                    ticket.take()  # from here on this pass counts as queued or in use
                await limiter.acquire(key)
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
            if not err.transient or attempt >= self.settings.pass_retries:
                stats["failed_passes"] += 1
                return PassResult(None, err, attempt + 1)
            stats["retried"] += 1
            # Outside the limiter: a pass waiting out its backoff holds no slot.
            await self.sleep(backoff_delay(attempt, err.retry_after, base=self.settings.retry_base_s, rng=self.rng))
            attempt += 1

    async def _passes(
        self,
        key: str,
        block: Row,
        inputs: dict[str, HandleValue],
        n: int,
        seed: int,
        stats: Counter[str],
        ticket: Reservation | None,
    ) -> list[PassResult]:
        config = dict(block.get("config") or {})
        requests = [
            PassRequest(
                block_id=block["id"],
                block_type=block["type"],
                config=config,
                inputs=inputs,
                pass_index=i,
                n_passes=n,
                seed=seed,
            )
            for i in range(n)
        ]
        if n == 1:
            return [await self._one_pass(key, requests[0], stats, ticket)]
        if self._immediate(config):
            # Nothing to overlap: one after the other in this task, no task or timeout per pass.
            return [await self._one_pass(key, r, stats, ticket, immediate=True) for r in requests]
        # Structured: the group owns passes 1..n-1 and the current task runs pass 0 itself (one task
        # fewer per child). A cancelled child cancels this task, and the group then its passes.
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._one_pass(key, requests[i], stats, ticket)) for i in range(1, n)]
            first = await self._one_pass(key, requests[0], stats, ticket)
        return [first, *(t.result() for t in tasks)]

    def _immediate(self, config: Mapping[str, Any]) -> bool:
        try:
            engine = self.router.resolve(model_of(config))
        except EngineError:
            return False
        check = getattr(engine, "immediate", None)  # engines written before the method: assume they wait
        return bool(check(config)) if check is not None else False

    async def execute(self, ctx: RunContext, child: ClaimedChild, ticket: Reservation | None = None) -> ChildFinish:
        """`ticket`: the slots the scheduler reserved for this child's passes (the caller closes it)."""
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
        try:
            inputs = await resolve_inputs(self.cache, child.get("handle_inputs") or {})
        except EngineError as exc:
            return self._block_failure(ctx, child, base, block, exc)
        n = ctx.n_for(block)
        results = await self._passes(base.run_id, block, inputs, n, int(ctx.run.get("seed") or 0), stats, ticket)
        base.stats = dict(stats)
        outputs = [r.output.output if r.output else None for r in results]
        errors = [r.error for r in results if r.error]
        if all(o is None for o in outputs):
            return self._block_failure(ctx, child, base, block, errors[0] if errors else None)
        first = next(r.output for r in results if r.output)
        page_count = next((v.page_count for v in inputs.values() if hasattr(v, "page_count")), None)
        record: dict[str, Any] = dict(
            await self._reduce(block["type"], outputs, page_count, (block.get("config") or {}).get("json_schema"))
        )
        handle_outputs = {"output-json-0": record["value"]}
        artifact = self._artifact(ctx, child, block, n, inputs, results, record, first)
        fps = self._fingerprints(ctx, block, child)
        result: dict[str, Any] = {
            "handle_outputs": handle_outputs,
            "consensus": record,
            "fingerprints": fps,
            "engine": first.engine,
            "model": first.model,
            "n_passes": n,
            "pass_errors": [_err_json(e) for e in errors],
            "routing_decisions": _routing(block, record["value"]),
            "usage": artifact["body"].get("usage"),
        }
        base.artifact = artifact
        base.completed_at = now_iso()
        if ctx.kind == "experiment":
            base.score = float(record["score"])
            base.result = result
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

    def _artifact(
        self,
        ctx: RunContext,
        child: ClaimedChild,
        block: Row,
        n: int,
        inputs: dict[str, HandleValue],
        results: list[PassResult],
        record: dict[str, Any],
        first: PassOutput,
    ) -> dict[str, Any]:
        config = block.get("config") or {}
        btype = block["type"]
        file_ref = _file_ref(child.get("handle_inputs") or {})
        usage = {"credits": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for r in results:
            if r.output and r.output.usage:
                usage["prompt_tokens"] += r.output.usage.prompt_tokens
                usage["completion_tokens"] += r.output.usage.completion_tokens
                usage["total_tokens"] += r.output.usage.total_tokens
        body: dict[str, Any] = {
            "id": _artifact_id(btype, child["id"]),
            "operation": OPERATION[btype],
            "file": file_ref,
            "model": model_of(config),
            "engine": first.engine,
            "n_consensus": n,
            "instructions": config.get("instructions") or config.get("prompt"),
            "status": "completed",
            "output": record["value"],
            "usage": usage,
            "created_at": now_iso(),
            "consensus": {
                "choices": [r.output.output if r.output else None for r in results],
                "likelihoods": record["likelihoods"],
            },
            "metadata": {"run_id": ctx.run["id"], "result_id": child["id"], "block_id": block["id"]},
        }
        if btype == "extract":
            body["json_schema"] = config.get("json_schema") or {}
        elif btype == "classifier":
            body["categories"] = config.get("categories") or []
        else:
            body["subdocuments"] = config.get("subdocuments") or []
        return {"id": body["id"], "operation": body["operation"], "body": body}


def _artifact_id(block_type: str, child_id: str) -> str:
    """One artifact per committed child, so the child's unique token names it. Not ids.new_id: that
    reads os.urandom, a syscall that drops the GIL, and getting the GIL back from the busy database
    thread cost the event loop up to a switch interval (5 ms) per child under load."""
    return f"{ARTIFACT_PREFIX[block_type]}_{child_id.partition('_')[2] or child_id}"


def _approx_size(outputs: list[Any]) -> int:
    try:
        return len(orjson.dumps(outputs))
    except (TypeError, orjson.JSONEncodeError):
        return REDUCE_INLINE_BYTES + 1  # unusual values: do not guess, keep the loop safe


def _err_json(err: EngineError) -> dict[str, Any]:
    return {"kind": err.kind, "code": err.code, "message": err.message}


def _file_ref(handle_inputs: dict[str, Any]) -> dict[str, Any]:
    for payload in handle_inputs.values():
        if isinstance(payload, dict) and isinstance(payload.get("document"), dict):
            d = payload["document"]
            return {
                "id": d.get("id") or d.get("original_id") or "",
                "filename": d.get("filename") or "",
                "mime_type": d.get("mime_type") or "application/octet-stream",
            }
    return {"id": "", "filename": "inputs.json", "mime_type": "application/json"}


def _routing(block: Row, value: Any) -> list[str]:
    config = block.get("config") or {}
    if block["type"] == "classifier" and isinstance(value, dict):
        for cat in config.get("categories") or []:
            if cat.get("name") == value.get("category"):
                key = cat.get("handle_key") or str(cat["name"]).lower().replace(" ", "-")
                return [f"output-file-{key}"]
    if block["type"] == "split" and isinstance(value, list):
        keys = {
            s.get("name"): s.get("handle_key") or str(s.get("name")).lower().replace(" ", "-")
            for s in config.get("subdocuments") or []
        }
        return [f"output-file-{keys.get(s.get('name'), s.get('name'))}" for s in value if isinstance(s, dict)]
    return []


def _loads(raw: str) -> Any:
    return orjson.loads(raw)
