"""Store contract: the stored feed. Per-run `seq` and all-runs `gseq` follow the commit order without gaps
or repeats, replay after any cursor gives exactly what followed it, the broker gets each committed event
once and in order, and retention keeps each finished run's last event."""

from __future__ import annotations

import pytest

from orchestrator.store import Store
from orchestrator.store.records import ChildFinish, ChildStart, FeedEvent
from tests.store.conftest import RecordingBroker, new_run

TS = "2024-01-01T00:00:00.000Z"


def _bare(events: list[FeedEvent]) -> list[tuple[int, str, int, str]]:
    return [(e["gseq"], e["run_id"], e["seq"], e["type"]) for e in events]


async def _finish_all(store: Store, run_id: str) -> None:
    for child in await store.children.claim(run_id, 100):
        await store.children.apply(
            [ChildStart(child["id"], run_id, TS)],
            [ChildFinish(child_id=child["id"], run_id=run_id, status="completed", verdict="passed", completed_at=TS)],
        )


async def test_replay_after_any_cursor_is_exactly_what_followed(store: Store, broker: RecordingBroker) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    a = await new_run(store, 3, run_id="wfevalrun_a", workflow_id=wf["id"])
    b = await new_run(store, 2, run_id="wfevalrun_b", workflow_id=wf["id"])
    await _finish_all(store, a)
    await _finish_all(store, b)
    everything = await store.events.after(None, 0, 1000)
    assert _bare(everything) == _bare(broker.events), "stored and published: same events, same order"
    gseqs = [e["gseq"] for e in everything]
    assert gseqs == sorted(gseqs) and len(set(gseqs)) == len(gseqs)
    assert await store.events.last_gseq() == gseqs[-1]
    assert await store.events.first_gseq() == gseqs[0]
    for cursor in range(gseqs[0] - 1, gseqs[-1] + 1):
        assert _bare(await store.events.after(None, cursor, 1000)) == [x for x in _bare(everything) if x[0] > cursor]
    for run_id in (a, b):
        mine = [e for e in everything if e["run_id"] == run_id]
        assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1))
        assert mine[-1]["type"] == "run.finished"
        assert (await store.runs.get(run_id))["last_seq"] == len(mine)
        assert await store.events.first_seq(run_id) == 1
        for cursor in range(len(mine) + 1):
            assert _bare(await store.events.after(run_id, cursor, 1000)) == _bare(mine[cursor:])
        assert _bare(await store.events.after(run_id, 1, 2)) == _bare(mine[1:3]), "limit"
        assert await store.events.gseq_of(run_id, 2) == mine[1]["gseq"]
    assert await store.events.gseq_of(a, 999) is None


async def test_deleted_events_never_give_their_numbers_again(store: Store) -> None:
    a = await new_run(store, 1)
    await _finish_all(store, a)
    top = await store.events.last_gseq()
    assert await store.events.delete_before(top + 1) > 0
    assert await store.events.first_gseq() is None
    b = await new_run(store, 1, run_id="wfevalrun_later")
    assert min(e["gseq"] for e in await store.events.after(b, 0, 10)) > top


async def test_retention_keeps_the_last_event_of_each_finished_run(store: Store) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    done = await new_run(store, 3, run_id="wfevalrun_done", workflow_id=wf["id"])
    await _finish_all(store, done)
    still_open = await new_run(store, 2, run_id="wfevalrun_open", workflow_id=wf["id"])
    await store.children.claim(still_open, 1)
    before = await store.events.after(still_open, 0, 100)
    assert await store.events.prune("1970-01-01T00:00:00.000Z") == 0, "nothing finished that long ago"
    removed = await store.events.prune("9999-01-01T00:00:00.000Z")
    kept = await store.events.after(done, 0, 100)
    assert removed > 0 and [e["type"] for e in kept] == ["run.finished"]
    assert kept[0]["seq"] == (await store.runs.get(done))["last_seq"]
    assert await store.events.first_seq(done) == kept[0]["seq"]
    assert await store.events.after(still_open, 0, 100) == before, "open runs keep everything"


@pytest.mark.parametrize("runs", [1, 3])
async def test_snapshot_runs_lists_open_and_recent_runs_newest_first(store: Store, runs: int) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    ids = [await new_run(store, 1, run_id=f"wfevalrun_{i}", workflow_id=wf["id"]) for i in range(runs)]
    await store.runs.finish(ids[0], "cancelled", reason="x")
    every = await store.events.snapshot_runs(recent=runs, limit=10)
    assert [r["id"] for r in every] == list(reversed(ids))
    opened = await store.events.snapshot_runs(recent=0, limit=10)
    assert [r["id"] for r in opened] == list(reversed(ids[1:])), "the finished oldest run is not recent"
    assert len(await store.events.snapshot_runs(recent=runs, limit=1)) == 1
