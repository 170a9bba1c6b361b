"""Store contract (issue 15): abandoned uploads are purged with their bytes; an experiment run's scored
documents page by position or worst first, with prior scores by document."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.errors import NotFound
from orchestrator.ids import iso, now
from orchestrator.runner.maintenance import purge_uploads
from orchestrator.store import Store
from orchestrator.store.records import ChildFinish, ScoreCursor

TS = "2026-01-01T00:00:00.000Z"


async def test_uploads_never_completed_are_purged_after_their_session(store: Store) -> None:
    def upload(name: str, ttl_s: int) -> Any:
        return store.files.create_upload(filename=name, size_bytes=1, mime_type="text/plain", sha256=None, ttl_s=ttl_s)

    done = await upload("a.txt", 60)
    await store.files.put_bytes(done["id"], b"a")
    await store.files.complete(done["id"], None)
    put = await upload("b.txt", 60)
    await store.files.put_bytes(put["id"], b"b")
    never = await upload("c.txt", 60)
    alive = await upload("d.txt", 3 * 3600)
    later = iso(now() + timedelta(hours=1))  # the first three sessions have expired by then
    assert later is not None
    assert await store.files.purge_abandoned(later) == 2
    for gone in (put["id"], never["id"]):
        with pytest.raises(NotFound):
            await store.files.get(gone, include_pending=True)
        with pytest.raises(NotFound):
            await store.files.data(gone, include_pending=True)
    assert (await store.files.get(done["id"]))["status"] == "complete"
    assert await store.files.data(done["id"]) == b"a"
    assert (await store.files.get(alive["id"], include_pending=True))["id"] == alive["id"]


async def scored_run(
    store: Store,
    scores: list[float],
    run_id: str,
    digests: list[dict[str, Any] | None] | None = None,
    results: list[dict[str, Any] | None] | None = None,
) -> list[str]:
    """An experiment run whose documents finished with `scores`; → the document ids in position order."""
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    exp = await store.experiments.create(
        workflow_id=wf["id"],
        block_id="blk",
        name="e",
        n_consensus=3,
        documents=[{"handle_inputs": {"input-json-0": {"type": "json", "data": {"i": i}}}} for i in range(len(scores))],
    )
    run: dict[str, Any] = {
        "id": run_id,
        "kind": "experiment",
        "workflow_id": wf["id"],
        "workflow_version_id": "draft_x",
        "workflow_name": "wf",
        "experiment_id": exp["id"],
        "block_id": "blk",
        "block_type": "extract",
        "n_consensus": 3,
    }
    await store.runs.create_run(run, experiment_id=exp["id"])
    claimed = sorted(await store.children.claim(run_id, len(scores)), key=lambda c: c["position"])
    finishes = [
        ChildFinish(
            child_id=c["id"],
            run_id=run_id,
            status="completed",
            completed_at=TS,
            score=scores[i],
            digest=digests[i] if digests else None,
            result=results[i] if results else None,
        )
        for i, c in enumerate(claimed)
    ]
    await store.children.apply([], finishes)
    return [str(c["document_id"]) for c in claimed]


async def test_scored_documents_page_by_position_or_worst_first(store: Store) -> None:
    scores = [0.9, 0.2, 0.5, 0.2, 1.0]
    run_id = "exprun_scores"
    docs = await scored_run(store, scores, run_id)

    async def walk(by_score: bool) -> list[tuple[str, float]]:
        seen: list[tuple[str, float]] = []
        cursor = ScoreCursor(by_score)
        while True:
            rows = await store.scores.page(run_id, cursor, 2)
            seen += [(r["document_id"], float(r["score"])) for r in rows]
            if len(rows) < 2:
                return seen
            cursor = ScoreCursor.parse(by_score, ScoreCursor.after_row(by_score, rows[-1]))

    assert [d for d, _ in await walk(False)] == docs
    worst_first = [(docs[i], scores[i]) for i in (1, 3, 2, 0, 4)]
    assert await walk(True) == worst_first
    assert await store.scores.of_documents(run_id, [docs[4], docs[1], "nope"]) == {docs[4]: 1.0, docs[1]: 0.2}
    first = await store.scores.page(run_id, ScoreCursor(), 1)
    assert first[0]["filename"] == "document-1.json" or first[0]["filename"]
    with pytest.raises(ValueError):
        ScoreCursor.parse(True, "p:3")


async def test_an_expired_upload_is_kept_an_hour_so_its_url_answers_410_first(store: Store) -> None:
    up = await store.files.create_upload(
        filename="late.txt", size_bytes=1, mime_type="text/plain", sha256=None, ttl_s=0
    )
    assert await purge_uploads(store) == 0  # expired, but within the grace hour
    assert (await store.files.get(up["id"], include_pending=True))["id"] == up["id"]
    assert await purge_uploads(store, now() + timedelta(hours=1, minutes=1)) == 1
    with pytest.raises(NotFound):
        await store.files.get(up["id"], include_pending=True)


async def test_digests_prior_scores_and_kept_aggregates(store: Store) -> None:
    """The summary's inputs: each scored child's digest in position order (derived from its record when
    none was stored), every score of a run by document, and a finished run's aggregate kept once."""
    scores = [0.5, 0.25, 1.0, 0.75]
    run_id = "exprun_digests"
    digests: list[dict[str, Any] | None] = [{"targets": {"a": 0.5}}, {"units": [["x", ["x", "y"]]]}, None, None]
    record = {"block_type": "extract", "score": 0.75, "rows": []}
    results: list[dict[str, Any] | None] = [{"consensus": {"score": 0.5}}, None, None, {"consensus": record}]
    docs = await scored_run(store, scores, run_id, digests, results)
    rows = await store.scores.digests(run_id, -1, 10)
    assert [r["document_id"] for r in rows] == docs
    assert [r["digest"] for r in rows] == digests
    assert [r["record"] for r in rows] == [None, None, None, record], "the record only where no digest was stored"
    assert await store.scores.of_run(run_id) == dict(zip(docs, scores, strict=True))
    assert [r["document_id"] for r in await store.scores.digests(run_id, rows[0]["position"], 1)] == [docs[1]]
    assert await store.scores.aggregate(run_id, "k") is None
    await store.scores.keep_aggregate(run_id, "k", {"score": 0.5, "aggregate": {"likelihoods": {"a": 1.0}}})
    await store.scores.keep_aggregate(run_id, "k", {"score": 0.9})  # the first one kept stands
    assert await store.scores.aggregate(run_id, "k") == {"score": 0.5, "aggregate": {"likelihoods": {"a": 1.0}}}
    assert await store.scores.aggregate(run_id, "other") is None


async def test_a_sign_in_link_is_spent_once_until_it_expires(store: Store) -> None:
    later = time.time() + 600
    assert await store.signins.spend("nonce-a", later) is True
    assert await store.signins.spend("nonce-a", later) is False, "spent: refused on every node"
    assert await store.signins.spend("nonce-b", later) is True
    assert await store.signins.spend("nonce-old", time.time() - 1) is True
    assert await store.signins.spend("nonce-c", later) is True  # purges what has expired
    assert await store.signins.spend("nonce-old", later) is True, "an expired nonce is forgotten"
