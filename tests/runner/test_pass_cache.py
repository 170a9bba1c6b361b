"""The pass cache through the whole server (both stores): a re-run of an unchanged experiment calls no
engine and reproduces its metrics; a changed document, an edited block or more passes call only what
changed; each of a consensus's passes is its own cached sample; `cache: false` and failures are never
served from it; runs report tokens, cost and savings."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator.cli.client import Client
from orchestrator.engines.base import EngineError, PassOutput, PassRequest
from orchestrator.engines.simulated import SimulatedEngine
from tests.api.test_support import create_eval
from tests.conftest import API_KEY, Api, AppFactory
from tests.feed.conftest import base_url
from tests.runner.helpers import json_inputs, services, sim


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, int]]:
    """Every call the simulated engine really answers, by (invoice number, pass index): counted at the
    engine itself, not from what the runner says it did."""
    seen: Counter[tuple[str, int]] = Counter()
    real = SimulatedEngine.run_pass

    async def counted(self: SimulatedEngine, request: PassRequest) -> PassOutput:
        value = next(iter(request.inputs.values()))
        number = getattr(value, "data", {}).get("invoice_number", "?") if hasattr(value, "data") else "doc"
        seen[(str(number), request.pass_index)] += 1
        return await real(self, request)

    monkeypatch.setattr(SimulatedEngine, "run_pass", counted)
    return seen


async def experiment(api: Api, docs: int, n: int = 5, **config: Any) -> tuple[str, str, str]:
    wf, block = await api.workflow_with_extract(config)
    body = {
        "workflow_id": wf,
        "block_id": block,
        "name": "cached",
        "n_consensus": n,
        "documents": [{"handle_inputs": json_inputs(i, total=100.0 + i)} for i in range(docs)],
    }
    exp = await api.post("/v1/workflows/experiments", body, expect=201)
    return wf, block, str(exp["id"])


async def run_experiment(api: Api, exp: str, **body: Any) -> dict[str, Any]:
    run = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp, **body}, expect=201)
    return await api.wait_run(run["id"])


async def artifacts(api: Api, run_id: str) -> dict[str, dict[str, Any]]:
    """document id → artifact body, for every child of the run."""
    out = {}
    results = await api.get("/v1/workflows/experiments/results", params={"run_id": run_id, "limit": 1000})
    for r in results["data"]:
        art = await api.get(f"/v1/workflows/artifacts/{r['artifact']['id']}", expect=200)
        out[r["document_id"]] = art
    return out


async def summary(api: Api, run_id: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.get(
        "/v1/workflows/experiments/metrics", params={"run_id": run_id, **params}, expect=200
    )
    return body


async def test_an_unchanged_rerun_calls_no_engine_and_yields_the_same_metrics(
    make_api: AppFactory, calls: Counter[tuple[str, int]]
) -> None:
    api = await make_api()
    _, _, exp = await experiment(api, docs=6, **sim(disagreement=0.3))
    first = await run_experiment(api, exp)
    assert sum(calls.values()) == 30 and first["usage"]["engine_calls"] == 30
    assert first["usage"]["cache_hits"] == 0 and first["stats"]["cache_misses"] == 30
    calls.clear()

    second = await run_experiment(api, exp)

    assert sum(calls.values()) == 0, "the re-run called the engine"
    assert second["lifecycle"]["status"] == "completed" and second["completed_document_count"] == 6
    assert second["usage"]["engine_calls"] == 0 and second["usage"]["cache_hits"] == 30
    assert second["usage"]["cache_hit_rate"] == 1.0
    assert second["score"] == first["score"]
    # What the cache saved is exactly what the first run used.
    assert second["usage"]["saved"]["input_tokens"] == first["usage"]["input_tokens"] > 0
    assert second["usage"]["saved"]["output_tokens"] == first["usage"]["output_tokens"] > 0
    assert second["usage"]["input_tokens"] == 0 and second["usage"]["estimated"] is True
    assert (await summary(api, second["id"]))["kind"] == "summary"  # complete and fresh
    doc = next(iter(await artifacts(api, first["id"])))
    views: list[dict[str, Any]] = [
        {},
        {"view": "by_document", "document_id": doc},
        {"view": "by_target", "target_path": "total"},
        {"view": "votes", "document_id": doc, "target_path": "total"},
    ]
    for view in views:
        a = await summary(api, first["id"], include_prior="false", **view)
        b = await summary(api, second["id"], include_prior="false", **view)
        assert _without_ids(a) == _without_ids(b), view


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("run_id", "computed_at", "created_at")}


async def test_repeats_stay_independent_samples_reused_by_index(
    make_api: AppFactory, calls: Counter[tuple[str, int]]
) -> None:
    api = await make_api()
    _, _, exp = await experiment(api, docs=3, **sim(disagreement=0.6))
    first = await artifacts(api, (await run_experiment(api, exp))["id"])
    second = await artifacts(api, (await run_experiment(api, exp))["id"])
    distinct = 0
    for doc, art in first.items():
        choices = art["consensus"]["choices"]
        assert len(choices) == 5
        # Pass i of the re-run is pass i of the first run, not one answer repeated five times.
        assert second[doc]["consensus"]["choices"] == choices
        assert [p["cached"] for p in second[doc]["passes"]] == [True] * 5
        assert [p["cached"] for p in art["passes"]] == [False] * 5
        distinct = max(distinct, len({str(c) for c in choices}))
    assert distinct >= 3, "the disagreeing passes should differ (five samples, not one)"


async def test_changing_one_document_reruns_only_that_document(
    make_api: AppFactory, calls: Counter[tuple[str, int]]
) -> None:
    api = await make_api()
    _, _, exp = await experiment(api, docs=4)
    await run_experiment(api, exp)
    calls.clear()
    documents = [{"handle_inputs": json_inputs(i, total=100.0 + i)} for i in range(4)]
    documents[2] = {"handle_inputs": json_inputs(2, total=999.0)}  # the same invoice, a different total
    await api.patch(f"/v1/workflows/experiments/{exp}", {"documents": documents}, expect=200)

    run = await run_experiment(api, exp)

    assert set(calls) == {("INV-000002", i) for i in range(5)} and sum(calls.values()) == 5
    assert run["usage"]["engine_calls"] == 5 and run["usage"]["cache_hits"] == 15


async def test_more_passes_call_only_the_new_ones_and_an_edited_block_only_its_checks(
    make_api: AppFactory, calls: Counter[tuple[str, int]]
) -> None:
    """A run at n=5 after one at n=3 reuses passes 0–2 (for the simulated engine the pass count is not
    part of the request). In an eval run over two blocks, editing one block re-calls only its checks."""
    api = await make_api()
    wf, block_a = await api.workflow_with_extract()
    block_b = (
        await api.post(
            "/v1/workflows/blocks",
            {"workflow_id": wf, "type": "extract", "label": "B", "config": {"model": "simulated", "n_consensus": 3}},
            expect=201,
        )
    )["id"]
    exists = {"target": {"output_handle_id": "output-json-0", "path": "total"}, "condition": {"kind": "exists"}}
    for i, block in enumerate((block_a, block_b, block_b)):
        await create_eval(api, wf, block, json_inputs(i), assertion=exists, name=f"check {i}")

    async def eval_run(**body: Any) -> dict[str, Any]:
        run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf, **body}, expect=201)
        return await api.wait_run(run["id"])

    first = await eval_run(n_consensus=3)
    assert first["usage"]["engine_calls"] == 9
    calls.clear()
    more = await eval_run(n_consensus=5)
    assert sorted(calls) == sorted((f"INV-00000{i}", p) for i in range(3) for p in (3, 4))
    assert more["usage"]["cache_hits"] == 9 and more["usage"]["engine_calls"] == 6
    calls.clear()
    await api.patch(f"/v1/workflows/blocks/{block_b}", {"config": {"instructions": "Read the total."}}, expect=200)
    edited = await eval_run(n_consensus=5)
    assert {number for number, _ in calls} == {"INV-000001", "INV-000002"}
    assert edited["usage"]["engine_calls"] == 10 and edited["usage"]["cache_hits"] == 5


async def test_cache_false_calls_the_engine_and_writes_nothing(
    make_api: AppFactory, calls: Counter[tuple[str, int]]
) -> None:
    api = await make_api()
    _, _, exp = await experiment(api, docs=2, n=3)
    await run_experiment(api, exp)
    entries = (await api.get("/v1/cache", expect=200))["entries"]
    assert entries == 6
    calls.clear()
    body_off = await run_experiment(api, exp, cache=False)
    assert sum(calls.values()) == 6 and body_off["cache"] is False and body_off["usage"]["cache_hits"] == 0
    calls.clear()
    run = await api.post(
        "/v1/workflows/experiments/runs", {"experiment_id": exp}, params={"cache": "false"}, expect=201
    )  # the SDK's **extra_params travel in the query
    assert run["cache"] is False
    await api.wait_run(run["id"])
    assert sum(calls.values()) == 6
    assert (await api.get("/v1/cache", expect=200))["entries"] == entries
    bad = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp}, params={"cache": "maybe"})
    assert bad["detail"]["code"] and bad["detail"]["details"]["errors"][0]["loc"] == ["query", "cache"]


async def test_the_server_switch_turns_the_cache_off(make_api: AppFactory, calls: Counter[tuple[str, int]]) -> None:
    api = await make_api(cache=False)  # serve --no-cache
    _, _, exp = await experiment(api, docs=2, n=3)
    await run_experiment(api, exp)
    await run_experiment(api, exp)
    assert sum(calls.values()) == 12
    got = await api.get("/v1/cache", expect=200)
    assert got["enabled"] is False and got["entries"] == 0


async def test_a_route_switch_turns_the_cache_off(
    make_api: AppFactory, calls: Counter[tuple[str, int]], tmp_path: Path
) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[[routes]]\nmatch = "simulated-nocache"\nengine = "simulated"\ncache = false\n')
    api = await make_api(models=str(models))
    _, _, exp = await experiment(api, docs=2, n=3, model="simulated-nocache")
    await run_experiment(api, exp)
    await run_experiment(api, exp)
    assert sum(calls.values()) == 12 and (await api.get("/v1/cache", expect=200))["entries"] == 0
    assert [r["cache"] for r in (await api.get("/v1/engines", expect=200))["data"][:1]] == [False]


async def test_a_failed_pass_is_never_cached(make_api: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pass 1 of every document fails the first time it is called: the re-run calls exactly those again."""
    failed_once: set[tuple[str, int]] = set()
    called: list[tuple[str, int]] = []
    real = SimulatedEngine.run_pass

    async def flaky(self: SimulatedEngine, request: PassRequest) -> PassOutput:
        value = next(iter(request.inputs.values()))
        key = (str(getattr(value, "data", {}).get("invoice_number")), request.pass_index)
        called.append(key)
        if request.pass_index == 1 and key not in failed_once:
            failed_once.add(key)
            raise EngineError(kind="provider", code="provider_rejected", message="no")
        return await real(self, request)

    monkeypatch.setattr(SimulatedEngine, "run_pass", flaky)
    api = await make_api()
    _, _, exp = await experiment(api, docs=3, n=3)
    first = await run_experiment(api, exp)
    assert first["stats"]["failed_passes"] == 3 and (await api.get("/v1/cache"))["entries"] == 6
    assert first["usage"]["failed_calls"] == 3 and first["usage"]["engine_calls"] == 9  # counted, not priced
    called.clear()
    second = await run_experiment(api, exp)
    assert sorted(called) == [(f"INV-00000{i}", 1) for i in range(3)]
    assert second["usage"]["cache_hits"] == 6 and second["usage"]["engine_calls"] == 3
    assert (await api.get("/v1/cache"))["entries"] == 9


async def test_tokens_cost_and_savings_from_a_prices_table(make_api: AppFactory, tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[prices]\n"simulated*" = { input = 2.0, output = 8.0 }\n')
    api = await make_api(models=str(models))
    _, _, exp = await experiment(api, docs=3, n=3)
    first = await run_experiment(api, exp)
    u = first["usage"]
    expected = round((u["input_tokens"] * 2.0 + u["output_tokens"] * 8.0) / 1e6, 9)
    assert u["input_tokens"] > 0 and u["cost_usd"] == pytest.approx(expected, abs=1e-9) and u["cost_usd"] > 0
    second = await run_experiment(api, exp)
    assert second["usage"]["cost_usd"] == 0.0
    assert second["usage"]["saved"]["cost_usd"] == u["cost_usd"]


async def test_without_a_price_tokens_show_and_no_cost(make_api: AppFactory) -> None:
    api = await make_api()
    _, _, exp = await experiment(api, docs=1, n=3)
    unpriced = (await run_experiment(api, exp))["usage"]
    assert unpriced["input_tokens"] > 0 and unpriced["cost_usd"] is None, "no made-up figure"
    assert (await run_experiment(api, exp))["usage"]["saved"]["cost_usd"] is None


async def test_identical_passes_in_flight_are_called_once(
    make_api: AppFactory, calls: Counter[tuple[str, int]]
) -> None:
    """Two documents with the same inputs in one run (with latency, so they overlap): one call per pass."""
    api = await make_api()
    wf, block = await api.workflow_with_extract(sim(latency_ms=30))
    same = {"handle_inputs": json_inputs(7)}
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf, "block_id": block, "name": "twins", "n_consensus": 3, "documents": [same, same]},
        expect=201,
    )
    run = await run_experiment(api, exp["id"])
    assert sum(calls.values()) == 3 and run["usage"]["cache_hits"] == 3


@pytest.mark.stores("sqlite")
async def test_eviction_keeps_the_cache_under_its_bound(make_api: AppFactory) -> None:
    """A 1 MB bound and ~2 MB of passes: the worker's trimmer evicts least recently used entries."""
    api = await make_api(cache_max_mb=1)
    _, _, exp = await experiment(api, docs=3000, n=5)
    await run_experiment(api, exp)
    with anyio.fail_after(30):  # the trimmer runs on its own: soon after a 16th of the bound was written
        while True:
            got = await api.get("/v1/cache", expect=200)
            # under the bound, and the route answers what the store holds (the trimmer may still be
            # deleting a batch between the two reads: then look again)
            if got["bytes"] <= 1 << 20 and got["bytes"] == (await services(api).store.cache.stats()).bytes:
                break
            await anyio.sleep(0.05)
    assert got["entries"] < 15000 and got["bytes"] > 0 and got["max_bytes"] == 1 << 20


async def test_every_feed_event_carries_the_runs_usage(make_api: AppFactory) -> None:
    api = await make_api()
    _, _, exp = await experiment(api, docs=4, n=3)
    run = await run_experiment(api, exp)
    async with Client(base_url(api), API_KEY) as client:
        with anyio.fail_after(30):
            events = [e async for e in client.run_events(run["id"], after=0)]
    calls = [e["run"]["usage"]["engine_calls"] for e in events if e["type"] in ("progress", "child.finished")]
    assert calls == sorted(calls) and calls[-1] == 12, "usage grows live, event by event"
    assert events[-1]["type"] == "run.finished" and events[-1]["run"]["usage"] == run["usage"]
