"""Store contract: claims, the group commit (exactly-once finishes, counts that always equal a recount,
feed events), recovery of interrupted children."""

from __future__ import annotations

import random
from typing import Any

import pytest

from orchestrator.core.lifecycle import invariant_violations
from orchestrator.store import Store
from orchestrator.store.records import ChildFinish, ChildStart, ClaimedChild, PageRequest
from tests.store.conftest import new_run

TS = "2024-01-01T00:00:00.000Z"


def done(
    child_id: str, run_id: str, status: str = "completed", verdict: str | None = "passed", **kw: Any
) -> ChildFinish:
    return ChildFinish(child_id=child_id, run_id=run_id, status=status, verdict=verdict, completed_at=TS, **kw)


async def assert_consistent(store: Store, run_id: str) -> dict[str, Any]:
    run = dict(await store.runs.get(run_id))
    recount = await store.children.recount(run_id)
    for key in ("c_pending", "c_queued", "c_running", "c_completed", "c_error", "c_cancelled", "o_passed", "o_failed"):
        assert run[key] == recount.get(key, 0), (key, run, recount)
    assert invariant_violations(run) == []
    return run


async def test_claim_pages_in_position_order_with_the_assertion(store: Store) -> None:
    run_id = await new_run(store, 5)
    first = await store.children.claim(run_id, 3)
    second = await store.children.claim(run_id, 3)
    assert [c["handle_inputs"]["i"] for c in first + second] == [0, 1, 2, 3, 4]
    assert all(c["status"] == "queued" and c["assertion"] is None for c in first + second)
    assert await store.children.claim(run_id, 3) == []
    run = await assert_consistent(store, run_id)
    assert (run["c_pending"], run["c_queued"]) == (0, 5)


async def test_a_finish_counts_once_even_when_committed_twice(store: Store) -> None:
    run_id = await new_run(store, 2)
    a, _ = await store.children.claim(run_id, 2)
    await store.children.apply([ChildStart(a["id"], run_id, TS)], [done(a["id"], run_id, artifact=_artifact("x1", a))])
    again = await store.children.apply([], [done(a["id"], run_id, artifact=_artifact("x2", a))])
    assert again == []  # ignored: no event, no second artifact
    run = await assert_consistent(store, run_id)
    assert (run["c_completed"], run["o_passed"], run["c_queued"]) == (1, 1, 1)
    artifacts = await store.children.list_artifacts(PageRequest(limit=10), run_id=run_id, operation=None)
    assert [a["id"] for a in artifacts.rows] == ["x1"]


def _artifact(aid: str, child: ClaimedChild) -> dict[str, Any]:
    return {"id": aid, "operation": "extraction", "body": {"id": aid, "child": child["id"]}}


async def test_starts_of_a_cancelled_run_emit_nothing(store: Store) -> None:
    run_id = await new_run(store, 3)
    claimed = await store.children.claim(run_id, 3)
    cancel = await store.runs.finish(run_id, "cancelled", reason="stop")
    assert cancel is not None
    last_seq = (await store.runs.get(run_id))["last_seq"]
    starts = [ChildStart(c["id"], run_id, TS) for c in claimed]
    events = await store.children.apply(starts, [done(claimed[0]["id"], run_id)])
    assert events == []
    run = await assert_consistent(store, run_id)
    assert (run["status"], run["c_cancelled"], run["last_seq"]) == ("cancelled", 3, last_seq)


async def test_events_carry_consecutive_seqs_and_the_last_child_ends_the_run(store: Store) -> None:
    run_id = await new_run(store, 3)
    claimed = await store.children.claim(run_id, 3)
    e1 = await store.children.apply([ChildStart(c["id"], run_id, TS) for c in claimed], [])
    assert [e["type"] for e in e1] == ["progress"]
    assert e1[0]["body"]["run"]["status"] == "running" and e1[0]["body"]["run"]["c_running"] == 3
    e2 = await store.children.apply(
        [], [done(c["id"], run_id, verdict=v) for c, v in zip(claimed, ("passed", "failed", "blocked"), strict=True)]
    )
    assert [e["type"] for e in e2] == ["child.finished"] * 3 + ["run.finished"]
    seqs = [e["seq"] for e in e1 + e2]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    gseqs = [e["gseq"] for e in e1 + e2]
    assert gseqs == sorted(gseqs) and len(set(gseqs)) == len(gseqs)
    final = e2[-1]["body"]["run"]
    assert final["status"] == "completed" and final["completed_at"] == e2[-1]["body"]["run"]["completed_at"]
    run = await assert_consistent(store, run_id)
    assert (run["status"], run["o_passed"], run["o_failed"], run["o_blocked"]) == ("completed", 1, 1, 1)
    stored = await store.events.after(run_id, 0, 1000)
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert [e["type"] for e in stored][-4:] == ["child.finished"] * 3 + ["run.finished"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [(["error", "error"], "error"), (["error", "completed"], "completed"), (["completed", "completed"], "completed")],
)
async def test_an_experiment_errs_only_when_every_document_did(
    store: Store, statuses: list[str], expected: str
) -> None:
    run_id = await new_run(store, 2, kind="experiment")
    claimed = await store.children.claim(run_id, 2)
    finishes = [
        done(c["id"], run_id, status=st, verdict=None, score=0.5 if st == "completed" else None)
        for c, st in zip(claimed, statuses, strict=True)
    ]
    events = await store.children.apply([], finishes)
    run = await assert_consistent(store, run_id)
    assert events[-1]["type"] == "run.finished" and run["status"] == expected
    assert run["score"] == (0.5 if "completed" in statuses else None)
    if expected == "error":
        assert run["error"]["error_code"] == "all_documents_failed"


async def test_gseq_never_repeats_after_events_are_deleted(store: Store) -> None:
    run_id = await new_run(store, 2)
    a, b = await store.children.claim(run_id, 2)
    first = await store.children.apply([], [done(a["id"], run_id)])
    top = first[-1]["gseq"]
    await store.events.delete_before(top + 1)
    later = await store.children.apply([], [done(b["id"], run_id)])
    assert min(e["gseq"] for e in later) > top


async def test_requeue_interrupted_reopens_only_open_children(store: Store) -> None:
    run_id = await new_run(store, 4)
    c = await store.children.claim(run_id, 3)
    starts = [ChildStart(c[0]["id"], run_id, TS), ChildStart(c[1]["id"], run_id, TS)]
    await store.children.apply(starts, [done(c[0]["id"], run_id)])
    # now: 1 completed, 1 running, 1 queued, 1 pending
    assert await store.children.requeue_interrupted() == 2
    run = await assert_consistent(store, run_id)
    assert (run["c_pending"], run["c_queued"], run["c_running"], run["c_completed"]) == (3, 0, 0, 1)
    attempts = (await store.children.list_page(run_id, PageRequest(limit=10, order="asc"))).rows
    assert [r["attempt"] for r in sorted(attempts, key=lambda r: r["position"])] == [0, 1, 1, 0]


@pytest.mark.parametrize("seed", range(6))
async def test_counts_equal_a_recount_after_any_sequence_of_operations(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    runs = [await new_run(store, rng.randint(1, 40), run_id=f"wfevalrun_{seed}_{i}") for i in range(3)]
    claimed: dict[str, list[ClaimedChild]] = {r: [] for r in runs}
    for _ in range(60):
        run_id = rng.choice(runs)
        op = rng.random()
        if op < 0.25:
            claimed[run_id] += await store.children.claim(run_id, rng.randint(1, 8))
        elif op < 0.9 and claimed[run_id]:
            sample = rng.sample(claimed[run_id], min(len(claimed[run_id]), rng.randint(1, 6)))
            starts = [ChildStart(c["id"], run_id, TS) for c in sample if rng.random() < 0.7]
            finishes = [
                done(
                    c["id"],
                    run_id,
                    status=rng.choice(["completed", "error"]),
                    verdict=rng.choice(["passed", "failed", "blocked"]),
                )
                for c in sample
                if rng.random() < 0.6
            ]
            finishes += finishes[: rng.randint(0, 1)]  # sometimes the same finish twice in one batch
            await store.children.apply(starts, finishes)
        elif op < 0.95:
            await store.runs.finish(run_id, "cancelled", reason="random")
        else:
            await store.children.requeue_interrupted()
        for r in runs:
            await assert_consistent(store, r)
