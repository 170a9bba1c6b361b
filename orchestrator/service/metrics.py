"""Experiment run metrics (spec §2.14): the views of core.metrics, streamed from the store page by page,
unless the run no longer describes its experiment (stale) or has nothing scored yet.

Readers must not slow the run they read: a summary of a 20,000-document run cost 0.57 s of CPU, and 12
readers polling it took run throughput to 0.46×. So a view's aggregate is computed once per finished run
(kept in the store, and in this process for a bounded number of runs), at most every `metrics_refresh_s`
while the run is open (and no more often than DUTY times the last computation took, so a huge run's
readers cost at most a tenth of a core), and by one request at a time (the others wait for its answer);
the summary's from each document's stored digest, never from the whole consensus records; and the lists
of documents are pages (`limit`, `after`; the summary also `order_by=score`, worst first), read from the
store per request.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import orjson

from orchestrator.core import metrics
from orchestrator.core.freshness import metrics_staleness
from orchestrator.core.lifecycle import TERMINAL
from orchestrator.errors import NotFound, StorageFull, Unprocessable
from orchestrator.service.base import Deps, UseCase
from orchestrator.store import Store
from orchestrator.store.records import Row, RunRecord, ScoreCursor

log = logging.getLogger(__name__)
T = TypeVar("T")
D = TypeVar("D")
View = Literal["summary", "by_document", "by_target", "votes"]
METRICS_PAGE = 1000
MEMO_RUNS = 128  # aggregates kept per process (each is O(targets), not O(documents))
# Part of the name a finished run's aggregate is kept under in the store: raise it when what an
# aggregate holds, or how it is computed, changes, so kept ones are computed again.
AGGREGATE_VERSION = 1


@dataclass(frozen=True)
class MetricsQuery:
    run_id: str
    view: View
    document_id: str | None = None  # by_document, votes
    target_path: str | None = None  # by_target, votes
    include_prior: bool = True
    prior_run_id: str | None = None
    limit: int = 100  # documents per page (summary, by_target)
    after: str | None = None  # the page's cursor: list_metadata.after of the previous page
    order_by: Literal["position", "score"] = "position"  # summary: document order, or worst first


@dataclass(frozen=True)
class MetricsAnswer:
    """The view's body, or why there is none: `stale_reasons` (the run is stale) or no completed result."""

    view: View
    run: RunRecord
    experiment_id: str
    body: dict[str, Any] | None = None
    stale_reasons: tuple[str, ...] = ()
    current_block_fingerprint: str | None = None


@dataclass
class _Entry:
    body: dict[str, Any]
    at: float
    completed: int
    final: bool
    cost_s: float = 0.0  # how long computing it took


# An open run's aggregate is recomputed at most once per DUTY × what the next computation will cost (the
# last one's time, scaled by the documents scored since), and at most every `refresh_s`: readers spend at
# most ~1/DUTY of a core on it, however large and long the run. (A 20,000-document run of 3.6 s is too
# short for this to show: its readers' cost is the final computation and the document pages.)
DUTY = 10.0


class Memo:
    """Aggregates by (view, run, prior, target): final ones for good, open ones for `refresh_s` or until
    another child completes; one computation per key at a time."""

    def __init__(self, refresh_s: float, size: int = MEMO_RUNS, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._locks: dict[tuple[Any, ...], anyio.Lock] = {}
        self.computed = 0  # how many times an aggregate was computed (tests, bench)

    def _fresh(self, entry: _Entry | None, run: RunRecord, final: bool) -> bool:
        if entry is None:
            return False
        if entry.final:
            return True
        if final:  # an aggregate of an open run never stands for the finished run's
            return False
        # The next computation costs about the last one scaled by the documents scored since.
        next_cost = entry.cost_s * max(1.0, run["c_completed"] / max(1, entry.completed))
        fresh_for = max(self.refresh_s, DUTY * next_cost)
        return entry.completed == run["c_completed"] or (self.clock() - entry.at < fresh_for)

    def clear(self) -> None:
        self._entries.clear()

    async def get(
        self, key: tuple[Any, ...], run: RunRecord, final: bool, compute: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        asked = self.clock()
        entry = self._entries.get(key)
        if self._fresh(entry, run, final):
            assert entry is not None
            self._entries.move_to_end(key)
            return entry.body
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.final or (entry.at >= asked and not final)):  # computed meanwhile
                return entry.body
            started = self.clock()
            body = await compute()
            self.computed += 1
            done = self.clock()
            self._entries[key] = _Entry(body, done, int(run["c_completed"]), final, done - started)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                old, _ = self._entries.popitem(last=False)
                self._locks.pop(old, None)
            return body


def _final(run: RunRecord, prior: RunRecord | None) -> bool:
    return run["status"] in TERMINAL and (prior is None or prior["status"] in TERMINAL)


def _cursor(by_score: bool, after: str | None) -> ScoreCursor:
    try:
        return ScoreCursor.parse(by_score, after)
    except ValueError as exc:
        raise Unprocessable(
            "`after` is not a cursor of this list (pass list_metadata.after of the previous page, same order_by)",
            code="invalid_cursor",
            details={"errors": [{"loc": ["query", "after"], "msg": str(exc), "type": "value_error"}]},
        ) from None


class MetricsService(UseCase):
    def __init__(self, deps: Deps) -> None:
        super().__init__(deps)
        self.memo = Memo(deps.settings.metrics_refresh_s)
        # Whole answers about an open run, for `metrics_refresh_s`: a dashboard's readers repeat the same
        # request, and even the checks before the aggregate (staleness, the document page) cost the API
        # process the run's progress needs. A finished run's answer is always current (an edit may make
        # it stale at once); only its aggregate is kept.
        self._answers: OrderedDict[MetricsQuery, tuple[float, MetricsAnswer]] = OrderedDict()
        self._answering: dict[MetricsQuery, anyio.Lock] = {}

    async def get(self, q: MetricsQuery) -> MetricsAnswer:
        kept = await self._kept(q)
        if kept is not None:
            return kept
        async with self._answering.setdefault(q, anyio.Lock()):
            kept = await self._kept(q)
            if kept is not None:
                return kept  # answered while this request waited
            answer = await self._answer(q)
            if answer.run["status"] in TERMINAL:
                self._answers.pop(q, None)
                return answer
            self._answers[q] = (time.monotonic(), answer)
            self._answers.move_to_end(q)
            while len(self._answers) > 4 * MEMO_RUNS:
                old, _ = self._answers.popitem(last=False)
                self._answering.pop(old, None)
            return answer

    async def _kept(self, q: MetricsQuery) -> MetricsAnswer | None:
        """The answer kept for `q`, while it is recent and its run still open: once the run has finished
        (one row read), its readers get the finished run's metrics, never a moment-old open answer."""
        hit = self._answers.get(q)
        if hit is None or time.monotonic() - hit[0] >= self._deps.settings.metrics_refresh_s:
            return None
        if (await self._store.runs.get(q.run_id, "experiment"))["status"] in TERMINAL:
            self._answers.pop(q, None)
            return None
        return hit[1]

    def clear(self) -> None:
        """Forget every aggregate and answer kept in this process (as a restart does; a finished run's
        aggregate is then read from the store)."""
        self.memo.clear()
        self._answers.clear()

    async def _answer(self, q: MetricsQuery) -> MetricsAnswer:
        run = await self._store.runs.get(q.run_id, "experiment")
        exp = await self._store.experiments.get(str(run["experiment_id"]))
        _, bfp, dfp = await self.current_fingerprints(exp)
        fps = run.get("fingerprints") or {}
        reasons = metrics_staleness(fps, bfp, dfp, run.get("n_consensus"), exp["n_consensus"])
        if reasons:
            return MetricsAnswer(q.view, run, exp["id"], stale_reasons=reasons, current_block_fingerprint=bfp)
        if run["c_completed"] == 0:
            return MetricsAnswer(q.view, run, exp["id"])
        prior = await self._prior(run, q.include_prior, q.prior_run_id)
        include = q.include_prior
        final = _final(run, prior)
        key_base = (run["id"], prior["id"] if prior else None, include)
        if q.view == "summary":
            body = await self._aggregate(
                ("summary", *key_base),
                run,
                final,
                _digest_pages(self._store, run, prior),
                lambda docs: metrics.summary_of_digests(
                    experiment_id=exp["id"],
                    run_id=run["id"],
                    block_type=run["block_type"] or "extract",
                    block_execution_fingerprint=fps.get("block_execution_fingerprint"),
                    docs=docs,
                    total_document_count=run["total"],
                    prior_run_id=prior["id"] if prior else None,
                    include_prior=include,
                ),
            )
            body["definition_fingerprint"] = fps.get("block_execution_fingerprint")
            body["documents"], after = await self._scored_page(run, prior if include else None, q)
            body["list_metadata"] = {"before": None, "after": after}
        elif q.view == "by_target":
            target = str(q.target_path)
            body = await self._aggregate(
                ("by_target", *key_base, target),
                run,
                final,
                _doc_pages(self._store, run, prior),
                lambda docs: metrics.by_target_view(
                    run_id=run["id"], target=target, docs=docs, include_prior=include, list_documents=False
                ),
            )
            body["documents"], after = await self._target_page(run, prior if include else None, target, q)
            body["list_metadata"] = {"before": None, "after": after}
        else:
            doc = await self._one_doc(run, prior, str(q.document_id))
            if q.view == "by_document":
                body = metrics.by_document_view(run_id=run["id"], doc=doc, include_prior=include)
            else:
                body = metrics.votes_view(run_id=run["id"], doc=doc, target=str(q.target_path), include_prior=include)
        return MetricsAnswer(q.view, run, exp["id"], body=body)

    async def _aggregate(
        self,
        key: tuple[Any, ...],
        run: RunRecord,
        final: bool,
        pages: AsyncGenerator[list[D], None],
        view: Callable[[Iterable[D]], dict[str, Any]],
    ) -> dict[str, Any]:
        """A view's aggregate over every document, from the memo, from the store (a finished run's, kept
        there once computed) or streamed from the store's `pages` (a copy: the caller adds the page of
        documents to it)."""

        async def compute() -> dict[str, Any]:
            return await streamed(pages, view)

        async def kept_or_computed() -> dict[str, Any]:
            name = orjson.dumps([AGGREGATE_VERSION, *key]).decode()
            kept = await self._store.scores.aggregate(run["id"], name)
            if kept is not None:
                return kept
            body = await compute()
            try:
                await self._store.scores.keep_aggregate(run["id"], name, body)
            except StorageFull:
                pass  # the store already said so (one rate-limited line); kept in this process only
            except Exception:  # keeping is a saving, never a reason to fail the answer
                log.warning("the aggregate of run %s could not be kept", run["id"], exc_info=True)
            return body

        try:
            return dict(await self.memo.get(key, run, final, kept_or_computed if final else compute))
        finally:
            await pages.aclose()

    async def _scored_page(
        self, run: RunRecord, prior: RunRecord | None, q: MetricsQuery
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the summary's documents (id, filename, score, prior_score) and the next cursor."""
        by_score = q.order_by == "score"
        cursor = _cursor(by_score, q.after)
        rows = await self._store.scores.page(run["id"], cursor, q.limit + 1)
        more, rows = len(rows) > q.limit, rows[: q.limit]
        priors = await self._store.scores.of_documents(prior["id"], [r["document_id"] for r in rows]) if prior else {}
        documents = [
            {
                "id": r["document_id"],
                "filename": r["filename"],
                "score": float(r["score"]),
                "prior_score": priors.get(r["document_id"]),
            }
            for r in rows
        ]
        return documents, ScoreCursor.after_row(by_score, rows[-1]) if more and rows else None

    async def _target_page(
        self, run: RunRecord, prior: RunRecord | None, target: str, q: MetricsQuery
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the by_target documents, in document order: the run's records are read from the
        cursor on until `limit` documents have a value for `target`."""
        after = _cursor(False, q.after).position
        found: list[tuple[int, dict[str, Any]]] = []
        while len(found) <= q.limit:
            rows = await self._store.children.consensus_page(run["id"], after, METRICS_PAGE)
            scored = [r for r in rows if r["consensus"] is not None]
            prior_records: dict[str, Any] = {}
            if prior is not None and scored:
                ids = [r["document_id"] for r in scored]
                prior_records = await self._store.children.records_for_documents(prior["id"], ids)
            for r in scored:
                doc = metrics.DocRecord(
                    r["document_id"], r["filename"], r["consensus"], prior_records.get(r["document_id"])
                )
                entry = metrics.target_entry(doc, target, prior is not None)
                if entry is not None:
                    found.append((int(r["position"]), entry))
            if len(rows) < METRICS_PAGE:
                break
            after = rows[-1]["position"]
        more, page = len(found) > q.limit, found[: q.limit]
        return [e for _, e in page], f"p:{page[-1][0]}" if more and page else None

    async def _prior(self, run: RunRecord, include: bool, prior_id: str | None) -> RunRecord | None:
        if not include:
            return None
        if prior_id:
            return await self._store.runs.get(prior_id, "experiment")
        return await self._store.runs.previous_completed(str(run["experiment_id"]), run["n"])

    async def _one_doc(self, run: RunRecord, prior: RunRecord | None, document_id: str) -> metrics.DocRecord:
        document = await self._store.experiments.document(document_id)
        if document["experiment_id"] != run["experiment_id"]:
            raise NotFound(f"Document {document_id} is not part of run {run['id']}")
        record = await self._store.children.records_for_documents(run["id"], [document_id])
        prior_record = await self._store.children.records_for_documents(prior["id"], [document_id]) if prior else {}
        return metrics.DocRecord(
            document_id=document_id,
            filename=document["filename"],
            record=record.get(document_id),
            prior=prior_record.get(document_id),
        )


async def _doc_pages(
    store: Store, run: RunRecord, prior: RunRecord | None
) -> AsyncGenerator[list[metrics.DocRecord], None]:
    """(document, record, prior record) in pages of METRICS_PAGE, straight from the store."""
    after = -1
    while True:
        rows = await store.children.consensus_page(run["id"], after, METRICS_PAGE)
        prior_records: dict[str, Any] = {}
        if prior is not None and rows:
            prior_records = await store.children.records_for_documents(prior["id"], [r["document_id"] for r in rows])
        yield [
            metrics.DocRecord(
                document_id=r["document_id"],
                filename=r["filename"],
                record=r["consensus"],
                prior=prior_records.get(r["document_id"]),
            )
            for r in rows
        ]
        if len(rows) < METRICS_PAGE:
            return
        after = rows[-1]["position"]


async def _digest_pages(
    store: Store, run: RunRecord, prior: RunRecord | None
) -> AsyncGenerator[list[metrics.DocDigest], None]:
    """The summary's documents (score, prior score, digest) in pages of METRICS_PAGE: no record is
    decoded, and the prior run is one read of its scores."""
    priors = await store.scores.of_run(prior["id"]) if prior is not None else {}
    after = -1
    while True:
        rows = await store.scores.digests(run["id"], after, METRICS_PAGE)
        yield [metrics.DocDigest(float(r["score"]), priors.get(r["document_id"]), _digest_of(r)) for r in rows]
        if len(rows) < METRICS_PAGE:
            return
        after = rows[-1]["position"]


def _digest_of(row: Row) -> metrics.Digest:
    """The stored digest, or for a child written before digests were stored, derived from its record
    (none at all: nothing to count)."""
    if row["digest"] is not None:
        return dict(row["digest"])
    return metrics.digest(row["record"]) if row["record"] is not None else {}


async def streamed(pages: AsyncGenerator[list[D], None], view: Callable[[Iterable[D]], T]) -> T:
    """Run a one-pass metrics view over every document without holding them all: the view runs in
    a worker thread and pulls one page at a time from the event loop. Memory stays at one page plus
    what the view itself returns, and the loop keeps serving while a 50,000-document view computes."""

    async def next_page() -> list[D] | None:
        try:
            return await pages.__anext__()
        except StopAsyncIteration:
            return None

    def records() -> Iterator[D]:
        while (page := anyio.from_thread.run(next_page)) is not None:
            yield from page

    try:
        return await anyio.to_thread.run_sync(lambda: view(records()))
    finally:
        await pages.aclose()
