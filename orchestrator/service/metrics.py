"""Experiment run metrics (spec §2.14): the views of core.metrics, streamed from the store page by page,
unless the run no longer describes its experiment (stale) or has nothing scored yet."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from orchestrator.core import metrics
from orchestrator.core.freshness import metrics_staleness
from orchestrator.errors import NotFound
from orchestrator.service.base import UseCase
from orchestrator.store import Store
from orchestrator.store.records import RunRecord

T = TypeVar("T")
View = Literal["summary", "by_document", "by_target", "votes"]
METRICS_PAGE = 1000


@dataclass(frozen=True)
class MetricsQuery:
    run_id: str
    view: View
    document_id: str | None = None  # by_document, votes
    target_path: str | None = None  # by_target, votes
    include_prior: bool = True
    prior_run_id: str | None = None


@dataclass(frozen=True)
class MetricsAnswer:
    """The view's body, or why there is none: `stale_reasons` (the run is stale) or no completed result."""

    view: View
    run: RunRecord
    experiment_id: str
    body: dict[str, Any] | None = None
    stale_reasons: tuple[str, ...] = ()
    current_block_fingerprint: str | None = None


class MetricsService(UseCase):
    async def get(self, q: MetricsQuery) -> MetricsAnswer:
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
        if q.view == "summary":
            body = await streamed(
                self._store,
                run,
                prior,
                lambda docs: metrics.summary_view(
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
        elif q.view == "by_target":
            target = str(q.target_path)
            body = await streamed(
                self._store,
                run,
                prior,
                lambda docs: metrics.by_target_view(run_id=run["id"], target=target, docs=docs, include_prior=include),
            )
        else:
            doc = await self._one_doc(run, prior, str(q.document_id))
            if q.view == "by_document":
                body = metrics.by_document_view(run_id=run["id"], doc=doc, include_prior=include)
            else:
                body = metrics.votes_view(run_id=run["id"], doc=doc, target=str(q.target_path), include_prior=include)
        return MetricsAnswer(q.view, run, exp["id"], body=body)

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


async def streamed(
    store: Store, run: RunRecord, prior: RunRecord | None, view: Callable[[Iterable[metrics.DocRecord]], T]
) -> T:
    """Run a one-pass metrics view over every document without holding them all: the view runs in
    a worker thread and pulls one page at a time from the event loop. Memory stays at one page plus
    what the view itself returns, and the loop keeps serving while a 50,000-document view computes."""
    pages = _doc_pages(store, run, prior)

    async def next_page() -> list[metrics.DocRecord] | None:
        try:
            return await pages.__anext__()
        except StopAsyncIteration:
            return None

    def records() -> Iterator[metrics.DocRecord]:
        while (page := anyio.from_thread.run(next_page)) is not None:
            yield from page

    try:
        return await anyio.to_thread.run_sync(lambda: view(records()))
    finally:
        await pages.aclose()
