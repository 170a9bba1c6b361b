"""Experiment metrics are computed from SQLite in pages: a 50,000-document run is never held whole."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from orchestrator.core import metrics
from orchestrator.core.consensus import reduce_passes
from orchestrator.service import metrics as routes
from orchestrator.store.records import RunRecord
from orchestrator.store.sqlite.jsoncol import dumps
from tests.conftest import INVOICE_SCHEMA, Api, AppFactory
from tests.runner.helpers import add_block, experiment, experiment_run, json_inputs, services, sim
from tests.sqlite_util import db_of


def _record(i: int) -> dict[str, Any]:
    """A realistic consensus record: 5 voters that disagree on one field."""
    base = json_inputs(i)["input-json-0"]["data"]
    passes = [dict(base, vendor=base["vendor"] + ("" if p % 2 else f" x{p}")) for p in range(5)]
    return dict(reduce_passes("extract", passes, schema=INVOICE_SCHEMA))


async def _completed_run(api: Api, docs: int) -> RunRecord:
    """A completed experiment run with `docs` stored results, written straight to the store."""
    s = services(api)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    exp = await s.store.experiments.create(
        workflow_id=wf,
        block_id=block,
        name="big",
        n_consensus=5,
        documents=[{"handle_inputs": json_inputs(i)} for i in range(docs)],
    )
    _, bfp, dfp = await s.experiments.current_fingerprints(exp)
    run, _ = await s.store.runs.create_run(
        {
            "id": "exprun_metrics",
            "kind": "experiment",
            "workflow_id": wf,
            "workflow_version_id": "draft_x",
            "workflow_name": "wf",
            "experiment_id": exp["id"],
            "block_id": block,
            "block_type": "extract",
            "n_consensus": 5,
            "fingerprints": {"block_execution_fingerprint": bfp, "documents_fingerprint": dfp},
        },
        experiment_id=exp["id"],
    )
    records = [dumps({"consensus": _record(i)}) for i in range(50)]

    def fill(conn: Any) -> None:
        for i in range(50):  # 50 distinct records, spread over every child
            conn.execute(
                "UPDATE children SET status = 'completed', score = json_extract(?1, '$.consensus.score'),"
                " result_json = ?1 WHERE run_id = ?2 AND position % 50 = ?3",
                (records[i], run["id"], i),
            )
        conn.execute(
            "UPDATE runs SET status = 'completed', c_pending = 0, c_completed = total WHERE id = ?", (run["id"],)
        )

    await db_of(s.store).write(fill)
    return await s.store.runs.get(run["id"])


async def test_metrics_pages_agree_with_a_whole_computation(make_api: AppFactory, monkeypatch: Any) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(disagreement=0.3))
    run = await experiment_run(api, await experiment(api, wf, block, 23, n_consensus=5))
    await api.wait_run(run["id"])
    whole = await api.get("/v1/workflows/experiments/metrics", params={"run_id": run["id"]}, expect=200)
    monkeypatch.setattr(routes, "METRICS_PAGE", 4)  # 6 pages, the last one short
    services(api).metrics.clear()  # computed again, in pages (not read from the store: a new version)
    monkeypatch.setattr(routes, "AGGREGATE_VERSION", routes.AGGREGATE_VERSION + 1)
    paged = await api.get("/v1/workflows/experiments/metrics", params={"run_id": run["id"]}, expect=200)
    assert paged == whole
    assert len(paged["documents"]) == 23 and paged["aggregate"]["likelihoods"]
    by_target = await api.get(
        "/v1/workflows/experiments/metrics",
        params={"run_id": run["id"], "view": "by_target", "target_path": "vendor"},
        expect=200,
    )
    assert len(by_target["documents"]) == 23


@pytest.mark.stores("sqlite")  # reads or writes the SQLite file directly
async def test_a_50000_document_summary_is_streamed(make_api: AppFactory) -> None:
    docs = 50_000
    api = await make_api()
    s = services(api)
    run = await _completed_run(api, docs)

    def summary(records: Any) -> dict[str, Any]:
        return metrics.summary_view(
            experiment_id=str(run["experiment_id"]),
            run_id=run["id"],
            block_type="extract",
            block_execution_fingerprint=None,
            docs=records,
            total_document_count=docs,
            prior_run_id=None,
            include_prior=False,
        )

    tracemalloc.start()
    try:
        body = await routes.streamed(routes._doc_pages(s.store, run, None), summary)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body["scored_document_count"] == docs and len(body["documents"]) == docs
    print(f"\nsummary of {docs} documents: peak {peak / 1e6:.0f} MB")
    # What remains is the response itself (one small dict per document) and one page of records;
    # holding every record instead measured ~205 MB for these 50,000 documents.
    assert peak < 60e6


async def test_the_summary_reads_digests_that_agree_with_the_records(make_api: AppFactory) -> None:
    """Each completed experiment child carries its metrics digest, written by the group commit, and the
    summary computed from digests equals the one computed from the whole records (both stores)."""
    api = await make_api()
    s = services(api)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(disagreement=0.3))
    exp = await experiment(api, wf, block, 17, n_consensus=5)
    first = await experiment_run(api, exp)
    await api.wait_run(first["id"])
    run = await experiment_run(api, exp)
    await api.wait_run(run["id"])
    rows = await s.store.scores.digests(run["id"], -1, 100)
    records = await s.store.children.records_for_documents(run["id"], [r["document_id"] for r in rows])
    assert len(rows) == 17
    assert all(r["digest"] == metrics.digest(records[r["document_id"]]) for r in rows)
    assert all(r["digest"]["targets"] for r in rows)
    body = await api.get("/v1/workflows/experiments/metrics", params={"run_id": run["id"]}, expect=200)
    stored = await s.store.runs.get(run["id"])
    docs = [d async for page in routes._doc_pages(s.store, stored, await s.store.runs.get(first["id"])) for d in page]
    whole = metrics.summary_view(
        experiment_id=exp,
        run_id=run["id"],
        block_type="extract",
        block_execution_fingerprint=None,
        docs=docs,
        total_document_count=17,
        prior_run_id=first["id"],
        include_prior=True,
    )
    assert body["prior_run_id"] == first["id"]
    for key in ("score", "prior_score", "scored_document_count", "aggregate"):
        assert body[key] == whole[key], key


@pytest.mark.stores("sqlite")  # writes the SQLite file directly
async def test_children_stored_before_digests_get_them_from_their_records(
    make_api: AppFactory, monkeypatch: Any
) -> None:
    api = await make_api()
    s = services(api)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(disagreement=0.3))
    run = await experiment_run(api, await experiment(api, wf, block, 9, n_consensus=5))
    await api.wait_run(run["id"])
    with_digests = await api.get("/v1/workflows/experiments/metrics", params={"run_id": run["id"]}, expect=200)
    await db_of(s.store).write(lambda conn: conn.execute("UPDATE children SET digest_json = NULL"))
    s.metrics.clear()
    monkeypatch.setattr(routes, "AGGREGATE_VERSION", routes.AGGREGATE_VERSION + 1)
    without = await api.get("/v1/workflows/experiments/metrics", params={"run_id": run["id"]}, expect=200)
    assert without == with_digests and without["aggregate"]["likelihoods"]
