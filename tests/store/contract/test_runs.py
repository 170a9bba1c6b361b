"""Store contract: creating runs (children and event #1 in one transaction), reading them back, ending
and cancelling them, and what each transaction hands to the broker."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.lifecycle import invariant_violations
from orchestrator.errors import NotFound
from orchestrator.store import Store
from orchestrator.store.records import ChildFinish, ChildStart, PageRequest
from tests.store.conftest import RecordingBroker, new_run

TS = "2024-01-01T00:00:00.000Z"


async def test_a_run_is_created_with_its_children_and_a_first_event(store: Store, broker: RecordingBroker) -> None:
    run_id = await new_run(store, 3)
    run = await store.runs.get(run_id)
    assert (run["status"], run["total"], run["c_pending"], run["last_seq"]) == ("pending", 3, 3, 1)
    assert invariant_violations(run) == []
    children = (await store.children.list_page(run_id, PageRequest(limit=10, order="asc"))).rows
    assert sorted(c["position"] for c in children) == [0, 1, 2]
    assert all(c["status"] == "pending" and c["id"].startswith("wfresult_") for c in children)
    assert [(e["run_id"], e["seq"], e["type"]) for e in broker.events] == [(run_id, 1, "progress")]
    assert broker.events[0]["body"]["run"]["c_pending"] == 3
    stored = await store.events.after(run_id, 0, 10)
    assert [{k: v for k, v in e.items() if k != "ts"} for e in stored] == broker.events
    assert isinstance(stored[0].get("ts"), float)


async def test_get_checks_the_kind(store: Store) -> None:
    run_id = await new_run(store, 1)
    assert (await store.runs.get(run_id, ("eval", "test")))["kind"] == "eval"
    with pytest.raises(NotFound, match="Experiment run"):
        await store.runs.get(run_id, "experiment")
    with pytest.raises(NotFound):
        await store.runs.get("wfevalrun_missing")


async def test_an_experiment_run_copies_its_document_set(store: Store) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    docs = [{"handle_inputs": {"input-json-0": {"type": "json", "data": {"i": i}}}} for i in range(4)]
    exp = await store.experiments.create(workflow_id=wf["id"], block_id="blk", name="e", n_consensus=3, documents=docs)
    run = {
        "id": "exprun_a",
        "kind": "experiment",
        "workflow_id": wf["id"],
        "workflow_version_id": "draft_x",
        "workflow_name": "wf",
        "experiment_id": exp["id"],
        "block_id": "blk",
        "block_type": "extract",
        "n_consensus": 3,
    }
    row, event = await store.runs.create_run(run, experiment_id=exp["id"])
    assert (row["total"], row["c_pending"], event["seq"]) == (4, 4, 1)
    assert (await store.experiments.get(exp["id"]))["last_run_id"] == "exprun_a"
    claimed = await store.children.claim("exprun_a", 10)
    documents = await store.experiments.documents(exp["id"])
    assert [c["document_id"] for c in claimed] == [d["id"] for d in documents]
    assert [c["handle_inputs"] for c in claimed] == [d["handle_inputs"] for d in documents]


async def test_start_run_queues_and_claims_the_first_page(store: Store, broker: RecordingBroker) -> None:
    run_id = await new_run(store, 5)
    state, event, rows = await store.children.start_run(run_id, 3)
    assert event is not None and event["type"] == "progress" and event["body"]["run"]["status"] == "queued"
    assert (state["status"], state["c_pending"], state["c_queued"]) == ("queued", 2, 3)
    assert [r["handle_inputs"]["i"] for r in rows] == [0, 1, 2]
    again, event2, rows2 = await store.children.start_run(run_id, 3)
    assert event2 is None and [r["handle_inputs"]["i"] for r in rows2] == [3, 4]
    assert again["c_queued"] == 5
    assert broker.events[-1] == event


async def test_cancel_closes_every_open_child_once(store: Store, broker: RecordingBroker) -> None:
    run_id = await new_run(store, 4)
    claimed = await store.children.claim(run_id, 2)
    await store.children.apply([ChildStart(claimed[0]["id"], run_id, TS)], [])
    event = await store.runs.finish(run_id, "cancelled", reason="by request")
    assert event is not None and event["type"] == "run.finished" and broker.events[-1] == event
    run = await store.runs.get(run_id)
    assert (run["status"], run["c_cancelled"], run["cancel_reason"]) == ("cancelled", 4, "by request")
    assert invariant_violations(run) == []
    assert await store.runs.finish(run_id, "cancelled", reason="again") is None
    # a late finish of a cancelled child changes nothing and publishes nothing
    published = len(broker.events)
    late = ChildFinish(child_id=claimed[0]["id"], run_id=run_id, status="completed", verdict="passed")
    assert await store.children.apply([], [late]) == []
    assert len(broker.events) == published
    children = (await store.children.list_page(run_id, PageRequest(limit=10))).rows
    assert {c["status"] for c in children} == {"cancelled"}
    assert {c["cancel_reason"] for c in children} == {"by request"}


async def test_a_failed_run_keeps_its_error_and_stats(store: Store) -> None:
    run_id = await new_run(store, 2)
    error = {"message": "workflow gone", "error_code": "workflow_not_found"}
    event = await store.runs.finish(run_id, "error", error=error, stats={"retried": 2})
    assert event is not None
    run = await store.runs.get(run_id)
    assert (run["status"], run["error"], run["stats"]) == ("error", error, {"retried": 2})
    assert run["c_cancelled"] == 2 and run["completed_at"] is not None


async def test_complete_if_done_ends_only_a_run_without_open_children(store: Store) -> None:
    empty = await new_run(store, 0)
    event = await store.runs.complete_if_done(empty)
    assert event is not None and event["body"]["run"]["status"] == "completed"
    assert await store.runs.complete_if_done(empty) is None
    busy = await new_run(store, 1, run_id="wfevalrun_busy")
    assert await store.runs.complete_if_done(busy) is None
    assert (await store.runs.get(busy))["status"] == "pending"


async def test_open_runs(store: Store) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    a = await new_run(store, 0, run_id="wfevalrun_a", workflow_id=wf["id"])
    b = await new_run(store, 1, run_id="wfevalrun_b", workflow_id=wf["id"])
    await store.runs.complete_if_done(a)
    assert [r["id"] for r in await store.runs.open_runs()] == [b]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["wfevalrun_c", "wfevalrun_b", "wfevalrun_a"]),
        ({"statuses": ["completed"]}, ["wfevalrun_a"]),
        ({"exclude_statuses": ["completed"]}, ["wfevalrun_c", "wfevalrun_b"]),
        ({"statuses": ["cancelled"]}, ["wfevalrun_c"]),
    ],
)
async def test_list_runs_filters(store: Store, filters: dict[str, Any], expected: list[str]) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    for rid in ("wfevalrun_a", "wfevalrun_b", "wfevalrun_c"):
        await new_run(store, 0 if rid.endswith("a") else 1, run_id=rid, workflow_id=wf["id"])
    await store.runs.complete_if_done("wfevalrun_a")
    await store.runs.finish("wfevalrun_c", "cancelled", reason="x")
    page = await store.runs.list_page(("eval",), PageRequest(limit=10), {"workflow_id": wf["id"], **filters})
    assert [r["id"] for r in page.rows] == expected


async def test_a_failing_transaction_publishes_nothing(store: Store, broker: RecordingBroker) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    await new_run(store, 1, run_id="wfevalrun_dup", workflow_id=wf["id"])
    published = list(broker.events)
    with pytest.raises(Exception):  # noqa: B017 - each store has its own integrity error (a bug, not a 4xx)
        await new_run(store, 1, run_id="wfevalrun_dup", workflow_id=wf["id"])
    assert broker.events == published
    assert (await store.runs.get("wfevalrun_dup"))["total"] == 1
