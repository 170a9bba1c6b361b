"""Big runs on the simulated engine: counts invariants at every GET, consensus likelihoods that
match a recomputation from the stored votes, and metrics computed without holding every result."""

from __future__ import annotations

import math
import time
from typing import Any

from orchestrator.core.consensus import reduce_passes
from orchestrator.core.lifecycle import invariant_violations
from tests.conftest import INVOICE_SCHEMA, AppFactory
from tests.runner.helpers import (
    add_block,
    add_checks,
    assert_counts_match_children,
    eval_run,
    experiment,
    experiment_run,
    sim,
)


async def test_2000_check_eval_keeps_its_counts_invariants_at_every_get(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=5))
    # every 10th check expects another total: a mix of passed and failed verdicts
    await add_checks(api, wf, block, 2000, total=lambda i: 1.0 if i % 10 == 0 else 1234.5)
    observed: list[dict[str, Any]] = []

    def check(run: dict[str, Any]) -> None:
        lc, oc = run["counts"]["lifecycle_counts"], run["counts"]["outcome"]
        assert sum(lc.values()) == run["total_evals"] == 2000, lc
        assert sum(oc.values()) == lc["completed"], (oc, lc)
        assert all(v >= 0 for v in lc.values()), lc
        state = {"total": run["total_evals"], "status": run["lifecycle"]["status"]}
        state |= {f"c_{k}": v for k, v in lc.items()} | {f"o_{k}": v for k, v in oc.items()}
        assert invariant_violations(state) == []
        observed.append(lc)

    started = time.perf_counter()
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"], within_s=120, check=check)
    elapsed = time.perf_counter() - started
    print(f"\n2,000-check eval run: {elapsed:.2f}s, {len(observed)} GETs")
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["outcome"] == {"passed": 1800, "failed": 200, "blocked": 0}
    assert any(0 < lc["completed"] < 2000 for lc in observed), "never observed the run in progress"
    await assert_counts_match_children(api, run["id"])


async def test_5000_document_experiment_likelihoods_match_the_stored_votes(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=1, disagreement=0.2))
    exp = await experiment(api, wf, block, 5000, n_consensus=5)
    started = time.perf_counter()
    run = await experiment_run(api, exp)
    done = await api.wait_run(run["id"], within_s=150)
    print(f"\n5,000-document x 5-pass experiment run: {time.perf_counter() - started:.2f}s")
    assert done["lifecycle"]["status"] == "completed"
    assert done["completed_document_count"] == 5000
    assert 0 < done["score"] < 1
    await assert_counts_match_children(api, run["id"])

    summary = await api.get(
        "/v1/workflows/experiments/metrics", params={"run_id": run["id"], "view": "summary"}, expect=200
    )
    # The document list is a page (issue 15: a summary stays small at any N), the aggregate covers all.
    assert summary["scored_document_count"] == 5000 and len(summary["documents"]) == 100
    assert summary["list_metadata"]["after"] is not None
    assert 0 < summary["score"] < 1

    # Recompute from the votes stored in the artifacts: re-reduce every document's 5 choices.
    per_target: dict[str, list[float]] = {}
    doc_scores: list[float] = []
    seen = 0
    after: str | None = None
    while True:
        params: dict[str, Any] = {"run_id": run["id"], "limit": 1000}
        if after:
            params["after"] = after
        page = await api.get("/v1/workflows/artifacts", params=params, expect=200)
        for artifact in page["data"]:
            choices = artifact["consensus"]["choices"]
            assert len(choices) == 5
            record = reduce_passes("extract", choices, schema=INVOICE_SCHEMA)
            assert record["likelihoods"] == artifact["consensus"]["likelihoods"]
            doc_scores.append(record["score"])
            grouped: dict[str, list[float]] = {}
            for row in record["rows"]:
                if row["path"] is not None:
                    grouped.setdefault(row["target"], []).append(row["score"])
            for target, scores in grouped.items():
                per_target.setdefault(target, []).append(math.fsum(scores) / len(scores))
            seen += 1
        after = page["list_metadata"]["after"]
        if not after:
            break
    assert seen == 5000
    recomputed = {t: math.fsum(v) / len(v) for t, v in per_target.items()}
    likelihoods = summary["aggregate"]["likelihoods"]
    assert set(likelihoods) == set(recomputed) == {"invoice_number", "vendor", "total"}
    for target, value in recomputed.items():
        assert math.isclose(likelihoods[target], value, rel_tol=1e-12), (target, likelihoods[target], value)
        assert value < 1
    assert math.isclose(summary["score"], math.fsum(doc_scores) / len(doc_scores), rel_tol=1e-12)
    assert math.isclose(done["score"], summary["score"], rel_tol=1e-9)
