"""Issue 15: metrics readers cannot slow a run. A finished run's aggregate is computed once, an open run's
at most every `metrics_refresh_s` (and once for concurrent readers), and the document lists are pages."""

from __future__ import annotations

from typing import Any

import anyio

from orchestrator.service import metrics as routes
from orchestrator.service.metrics import Memo, MetricsQuery
from tests.api.test_support import assert_envelope, raw
from tests.conftest import Api, AppFactory
from tests.runner.helpers import add_block, experiment, experiment_run, services, sim

METRICS = "/v1/workflows/experiments/metrics"


async def finished_run(api: Api, docs: int = 23) -> dict[str, Any]:
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(disagreement=0.3))
    run = await experiment_run(api, await experiment(api, wf, block, docs, n_consensus=5))
    return await api.wait_run(run["id"])


async def walk(api: Api, params: dict[str, Any]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(100):
        body = await api.get(METRICS, params={**params, **({"after": after} if after else {})}, expect=200)
        seen += body["documents"]
        after = body["list_metadata"]["after"]
        if after is None:
            return seen
    raise AssertionError("the pages never ended")


async def test_a_finished_runs_metrics_are_computed_once(api: Api) -> None:
    run = await finished_run(api)
    memo = services(api).metrics.memo
    before = memo.computed

    async def read() -> None:
        await api.get(METRICS, params={"run_id": run["id"]}, expect=200)

    async with anyio.create_task_group() as tg:  # concurrent readers share one computation
        for _ in range(8):
            tg.start_soon(read)
    for _ in range(5):
        await api.get(METRICS, params={"run_id": run["id"], "limit": 3}, expect=200)
    assert memo.computed == before + 1


async def test_a_finished_runs_aggregate_is_kept_in_the_store(api: Api, monkeypatch: Any) -> None:
    """A restarted API process (or another API node) reads a finished run's aggregate from the store
    instead of streaming its documents again; a new AGGREGATE_VERSION computes it again."""
    run = await finished_run(api)
    streams = 0
    real = routes.streamed

    async def counting(*args: Any) -> Any:
        nonlocal streams
        streams += 1
        return await real(*args)

    monkeypatch.setattr(routes, "streamed", counting)
    first = await api.get(METRICS, params={"run_id": run["id"]}, expect=200)
    assert streams == 1
    services(api).metrics.clear()  # what a restart forgets
    again = await api.get(METRICS, params={"run_id": run["id"]}, expect=200)
    assert again == first and streams == 1, "read from the store, not streamed again"
    services(api).metrics.clear()
    monkeypatch.setattr(routes, "AGGREGATE_VERSION", routes.AGGREGATE_VERSION + 1)
    recomputed = await api.get(METRICS, params={"run_id": run["id"]}, expect=200)
    assert recomputed == first and streams == 2


async def test_open_runs_are_recomputed_at_most_every_refresh(make_api: AppFactory) -> None:
    api = await make_api(metrics_refresh_s=3600.0)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=600_000))
    run = await experiment_run(api, await experiment(api, wf, block, 4, n_consensus=3))
    memo = services(api).metrics.memo
    for _ in range(5):
        await api.get(METRICS, params={"run_id": run["id"]}, expect=200)
    assert memo.computed == 0, "nothing completed yet: no_metrics, nothing computed"
    await api.post(f"/v1/workflows/experiments/runs/{run['id']}/cancel", {}, expect=200)


async def test_a_kept_open_answer_never_stands_for_the_finished_run(make_api: AppFactory) -> None:
    """Found from a fresh clone: the page asked at `run.finished` and got the answer kept a moment
    before, while the run was open ("18 of 20 documents scored" on a completed run)."""
    api = await make_api(metrics_refresh_s=3600.0)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=600_000))
    run = await experiment_run(api, await experiment(api, wf, block, 4, n_consensus=3))
    query = MetricsQuery(run_id=run["id"], view="summary")
    assert (await services(api).metrics.get(query)).run["status"] != "cancelled"  # kept for an hour
    await api.post(f"/v1/workflows/experiments/runs/{run['id']}/cancel", {}, expect=200)
    assert (await services(api).metrics.get(query)).run["status"] == "cancelled"


async def test_document_lists_are_pages_in_document_or_score_order(api: Api) -> None:
    run = await finished_run(api)
    first = await api.get(METRICS, params={"run_id": run["id"]}, expect=200)
    assert first["scored_document_count"] == 23 and len(first["documents"]) == 23
    by_position = await walk(api, {"run_id": run["id"], "limit": 5})
    assert [d["id"] for d in by_position] == [d["id"] for d in first["documents"]]
    worst_first = await walk(api, {"run_id": run["id"], "limit": 4, "order_by": "score"})
    assert sorted(d["id"] for d in worst_first) == sorted(d["id"] for d in by_position)
    scores = [d["score"] for d in worst_first]
    assert scores == sorted(scores)
    one_page = await api.get(METRICS, params={"run_id": run["id"], "limit": 5}, expect=200)
    assert len(one_page["documents"]) == 5 and one_page["aggregate"] == first["aggregate"]
    target = {"run_id": run["id"], "view": "by_target", "target_path": "vendor"}
    whole = await api.get(METRICS, params=target, expect=200)
    paged = await walk(api, {**target, "limit": 6})
    assert whole["list_metadata"]["after"] is None and 0 < len(whole["documents"]) <= 23
    assert paged == whole["documents"]
    for bad in ({"after": "nonsense"}, {"after": "p:3", "order_by": "score"}, {"order_by": "size"}, {"limit": 0}):
        r = await raw(api, "GET", METRICS, params={"run_id": run["id"], **bad})
        assert_envelope(r, 422)


async def test_an_open_runs_aggregate_never_answers_for_the_finished_run() -> None:
    """Found on a two-node run: the page asked at `run.finished` and got the aggregate computed a moment
    before, while the run was open ("18 of 20 documents scored" on a completed 20/20 run)."""
    memo = Memo(refresh_s=60.0)
    bodies = iter([{"scored": 18}, {"scored": 20}, {"scored": 99}])

    async def compute() -> dict[str, Any]:
        return next(bodies)

    open_run: Any = {"c_completed": 18, "status": "running"}
    done_run: Any = {"c_completed": 20, "status": "completed"}
    assert await memo.get(("summary", "r"), open_run, False, compute) == {"scored": 18}
    one_more: Any = {**open_run, "c_completed": 19}
    assert await memo.get(("summary", "r"), one_more, False, compute) == {"scored": 18}
    assert await memo.get(("summary", "r"), done_run, True, compute) == {"scored": 20}
    assert await memo.get(("summary", "r"), done_run, True, compute) == {"scored": 20}, "final: computed once"
    assert memo.computed == 2


async def test_a_costly_open_aggregate_is_recomputed_at_most_a_tenth_of_the_time() -> None:
    """A 0.5 s aggregate of an open run stays for 10 × 0.5 s, though `refresh_s` is 2 s and children keep
    completing: readers of a huge run cost at most a tenth of a core (a fake clock: no waiting)."""
    now = [100.0]

    async def compute() -> dict[str, Any]:
        now[0] += 0.5  # the computation takes 0.5 s
        return {"at": now[0]}

    memo = Memo(refresh_s=2.0, clock=lambda: now[0])
    first = await memo.get(("summary", "r"), {"c_completed": 100, "status": "running"}, False, compute)  # type: ignore[typeddict-item]
    now[0] += 4.0  # past refresh_s, within 10 × 0.5 s
    again = await memo.get(("summary", "r"), {"c_completed": 110, "status": "running"}, False, compute)  # type: ignore[typeddict-item]
    assert again == first and memo.computed == 1
    now[0] += 3.0  # 7 s since: past 10 × 0.5 s × 120/100
    later = await memo.get(("summary", "r"), {"c_completed": 120, "status": "running"}, False, compute)  # type: ignore[typeddict-item]
    assert later != first and memo.computed == 2


async def test_the_window_grows_with_the_documents_scored_since() -> None:
    """0.1 s for 100 documents predicts 1 s for 1,000: the next computation waits 10 s, not 2 s."""
    now = [0.0]

    async def compute() -> dict[str, Any]:
        now[0] += 0.1
        return {"at": now[0]}

    memo = Memo(refresh_s=2.0, clock=lambda: now[0])
    first = await memo.get(("summary", "r"), {"c_completed": 100, "status": "running"}, False, compute)  # type: ignore[typeddict-item]
    now[0] += 5.0
    assert await memo.get(("summary", "r"), {"c_completed": 1000, "status": "running"}, False, compute) == first  # type: ignore[typeddict-item]
    now[0] += 6.0
    assert await memo.get(("summary", "r"), {"c_completed": 1000, "status": "running"}, False, compute) != first  # type: ignore[typeddict-item]
    assert memo.computed == 2
