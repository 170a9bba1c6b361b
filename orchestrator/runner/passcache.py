"""The pass cache as a worker uses it: which passes may be cached and under which keys, one store read for
a whole page of claimed children, passes shared with an identical one in flight, entries for the commit.

A pass is addressed by its request — the sha256 of the engine's name, the full request it would send
(`cache_identity`) and the input documents' sha256 — and its pass index: the n passes of a consensus are
n cached samples of one request, so a re-run reuses each of them by index instead of one answer n times
(which would make every consensus unanimous). The store keeps one row per request, with its passes.
Look-ups happen when a page of children is claimed, before any of them starts: a child whose passes are
all cached reserves no pass slot, and no slot ever waits on a store read.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import orjson

from orchestrator.core import planning
from orchestrator.engines.base import Document, EngineError, HandleValue, PassOutput, PassRequest, Usage
from orchestrator.engines.router import EngineRouter
from orchestrator.ids import canonical_json
from orchestrator.runner.context import DocumentCache, RunContext, resolve_inputs
from orchestrator.store import Store
from orchestrator.store.records import CachedPass, CacheEntry, ClaimedChild, Row

log = logging.getLogger("orchestrator.runner")
KEY_FORMAT = 1  # part of every key: change it when what goes into a key changes
TOUCH_S = 3600.0  # a used entry's LRU stamp is moved when older than this (not a write per hit)
TRIM_EVERY_S = 5.0
YIELD_EVERY = 32  # children whose keys are computed in one loop turn
TRIM_TO = 0.9  # eviction goes down to this share of the bound, so it does not run again at once
DEFAULT_MODEL = "retab-small"  # spec §2.2: an extract block's model defaults to retab-small


def model_of(config: Mapping[str, Any]) -> str:
    return str(config.get("model") or DEFAULT_MODEL)


@dataclass
class Prepared:
    """A claimed child looked up before it starts: its request's key (None: not cached) and its cached
    passes by index. Its inputs are not kept (a page of decoded documents could be large); a child with a
    pass to call resolves them again, from the worker's document cache."""

    key: str | None = None
    hits: dict[int, CachedPass] = field(default_factory=dict)
    page_count: int | None = None  # of the input document (split consensus needs it without the inputs)
    n: int = 0  # the passes the child runs: a request cached at 7 passes gives a 5-pass child 0–4

    def misses(self, n: int) -> int:
        return n - len(self.hits)

    def use(self, found: Mapping[str, Mapping[int, CachedPass]]) -> None:
        self.hits = {i: c for i, c in found.get(self.key or "", {}).items() if i < self.n}


def cached_output(hit: CachedPass) -> PassOutput:
    usage = None
    if hit.prompt_tokens is not None and hit.completion_tokens is not None:
        usage = Usage(hit.prompt_tokens, hit.completion_tokens, hit.prompt_tokens + hit.completion_tokens)
    return PassOutput(output=hit.output, engine=hit.engine, model=hit.model, usage=usage)


def entry(key: str, called: Sequence[tuple[int, PassOutput]]) -> CacheEntry | None:
    """A request's successful new passes as one cache entry (`{"<index>": {"o", "p", "c"}}`, encoded once);
    a pass whose output is not JSON is left out (never cached); None when none is left."""
    passes: dict[str, dict[str, Any]] = {}
    for index, out in called:
        if out.output is not None:
            u = out.usage
            passes[str(index)] = {
                "o": out.output,
                "p": u.prompt_tokens if u else None,
                "c": u.completion_tokens if u else None,
            }
    if not passes:
        return None
    try:
        body = orjson.dumps(passes, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # some output is not JSON: keep those that are
        passes = {i: p for i, p in passes.items() if _json_ok(p)}
        if not passes:
            return None
        body = orjson.dumps(passes, option=orjson.OPT_NON_STR_KEYS)
    first = called[0][1]
    return CacheEntry(key, first.engine, first.model, body, len(passes))


def _json_ok(value: Any) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def stale(hit: CachedPass, now: float) -> bool:
    return hit.last_used_at < now - TOUCH_S


class PassCache:
    def __init__(self, store: Store, router: EngineRouter, *, enabled: bool = True) -> None:
        self.store = store
        self.router = router
        self.enabled = enabled
        # key -> the output of an identical pass being called in this worker now (None if it failed)
        self.inflight: dict[str, asyncio.Future[PassOutput | None]] = {}

    def key(self, ctx: RunContext, block: Row, inputs: Mapping[str, HandleValue], n: int) -> str | None:
        """The key of a child's request (its passes are cached under it by index); None when they are not
        cached (the cache is off for the server, the run or the route, or the engine states no identity)."""
        if not self.enabled or ctx.run.get("cache_enabled") is False:
            return None
        config = block.get("config") or {}
        model = model_of(config)
        route = self.router.route_for(model)
        if route is None or not route.cache:
            return None
        try:
            engine = self.router.resolve(model)
            identify = getattr(engine, "cache_identity", None)
            request = PassRequest(block["id"], block["type"], config, inputs, 0, n, int(ctx.run.get("seed") or 0))
            identity = identify(request) if identify is not None else None
        except EngineError:
            return None  # the pass itself will fail the same way, uncached
        except Exception:  # a third-party engine's bug must not fail the child: it just runs uncached
            log.exception("cache identity of model %s failed; its passes run uncached", model)
            return None
        if identity is None:
            return None
        documents = sorted((h, v.sha256 or v.content_id) for h, v in inputs.items() if isinstance(v, Document))
        return hashlib.sha256(
            canonical_json({"format": KEY_FORMAT, "engine": engine.name, "request": identity, "documents": documents})
        ).hexdigest()

    async def lookup(self, keys: Sequence[str]) -> dict[str, dict[int, CachedPass]]:
        if not keys:
            return {}
        try:
            return await self.store.cache.get_many(keys)
        except Exception:  # the cache is an optimisation: a failed read means the passes are called
            log.exception("reading %d pass cache entries failed; calling the engines instead", len(keys))
            return {}

    async def prepare(
        self, ctx: RunContext, children: Sequence[ClaimedChild], documents: DocumentCache
    ) -> dict[str, Prepared]:
        """Keys and cached passes of a page of children, with ONE store read for all of them."""
        if not self.enabled or ctx.run.get("cache_enabled") is False:
            return {}
        out: dict[str, Prepared] = {}
        for i, child in enumerate(children):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await anyio.lowlevel.checkpoint()  # a page's keys are ms of work: let other steps in between
            block = ctx.block(child["block_id"])
            if block is None or block["type"] not in planning.RUNNABLE_TYPES:
                continue  # the executor says why it cannot run
            try:
                inputs = await resolve_inputs(documents, child.get("handle_inputs") or {})
            except EngineError:
                continue  # the executor fails the child with this error
            n = ctx.n_for(block)
            key = self.key(ctx, block, inputs, n)
            if key is not None:
                out[child["id"]] = Prepared(key, page_count=page_count(inputs), n=n)
        found = await self.lookup(list({p.key for p in out.values() if p.key}))
        for p in out.values():
            p.use(found)
        return out

    async def shared(self, key: str) -> PassOutput | None:
        """The output of an identical pass in flight in this worker, once it ends (a private copy: the
        two children reduce and store their passes separately); None when there is none or it failed."""
        fut = self.inflight.get(key)
        if fut is None:
            return None
        out = await asyncio.shield(fut)
        return copy.deepcopy(out) if out is not None else None

    def begin(self, key: str) -> asyncio.Future[PassOutput | None]:
        fut: asyncio.Future[PassOutput | None] = asyncio.get_running_loop().create_future()
        self.inflight[key] = fut
        return fut

    def end(self, key: str, fut: asyncio.Future[PassOutput | None], out: PassOutput | None) -> None:
        if self.inflight.get(key) is fut:
            del self.inflight[key]
        if not fut.done():
            fut.set_result(out)


class Trimmer:
    """Keeps the cache under its size bound, off the hot path: every TRIM_EVERY_S, and soon after this
    worker has written a sixteenth of the bound, it evicts the least recently used entries down to
    TRIM_TO of the bound (in short transactions of their own). The bound may be passed by what the workers
    write in between: a sixteenth of it, or TRIM_EVERY_S of writes."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._written = 0
        self._wake = anyio.Event()

    def note(self, written: int) -> None:
        self._written += written
        if self._written * 16 > self.max_bytes:
            self._wake.set()

    async def run(self) -> None:
        while True:
            with anyio.move_on_after(TRIM_EVERY_S):
                await self._wake.wait()
            self._wake = anyio.Event()
            self._written = 0
            try:
                gone = await self.store.cache.trim(self.max_bytes, int(self.max_bytes * TRIM_TO))
                if gone:
                    log.info("pass cache: %d least recently used entries evicted", gone)
            except Exception:  # a failed trim is retried at the next turn; the runs go on
                log.exception("trimming the pass cache failed")


def page_count(inputs: Mapping[str, HandleValue]) -> int | None:
    return next((v.page_count for v in inputs.values() if isinstance(v, Document)), None)
