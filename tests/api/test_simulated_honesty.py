"""The simulated engine says what it is: every llm judgement it makes, pass or fail, is marked as such in
the fields the SDK shows (result warnings, assertion metric kind, failure message); a rubric it cannot
judge blocks the eval; GET /v1/engines names the model patterns it answers for."""

from __future__ import annotations

from typing import Any

import pytest
from retab.types.workflows.evals.results import WorkflowEvalResult

from tests.api.test_support import sdk
from tests.conftest import Api

JSON_INPUT = {"input-json-0": {"type": "json", "data": {"vendor": "Acme Supplies Ltd"}}}
SCHEMA = {"type": "object", "properties": {"vendor": {"type": "string"}}}


async def judged(api: Api, block: str, wf: str, rubric: str, kind: str = "llm_judged_as") -> dict[str, Any]:
    ev = await api.post(
        "/v1/workflows/evals",
        {
            "workflow_id": wf,
            "name": rubric,
            "target": {"type": "block", "block_id": block},
            "source": {"type": "manual", "handle_inputs": JSON_INPUT},
            "assertion": {
                "target": {"output_handle_id": "output-json-0", "path": "vendor"},
                "condition": {"kind": kind, "rubric": rubric},
            },
        },
        expect=201,
    )
    return dict(ev)


@pytest.mark.stores("sqlite")
async def test_simulated_judgements_say_so(api: Api) -> None:
    wf, block = await api.workflow_with_extract({"model": "retab-small", "json_schema": SCHEMA})
    cases = {
        "the vendor is Acme": ("passed", None),
        "the vendor is NOT Acme": ("failed", "assertion_failed"),  # it passed before: negation ignored
        "a an the": ("blocked", "judge_undecided"),  # nothing to look for: it passed before
        "vendor is not acme nor globex": ("blocked", "judge_undecided"),
    }
    ids = {(await judged(api, block, wf, rubric))["id"]: rubric for rubric in cases}
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    await api.wait_run(run["id"])
    rows = (await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200))["data"]
    assert len(rows) == len(cases)
    for row in rows:
        res = sdk(WorkflowEvalResult, row)
        outcome, code = cases[ids[res.eval_id]]
        assert res.verdict == outcome, (ids[res.eval_id], row["assertion_result"])
        ar = res.assertion_result
        assert ar is not None
        if outcome == "blocked":
            assert ar.failure is not None and ar.failure.code == code
            assert "simulated judge" in ar.failure.message and "could not decide" in ar.failure.message
            continue
        # Pass or fail: the SDK shows it was the simulated engine, not a model.
        assert ar.metric_kind == "simulated_judge"
        assert res.warnings and any("simulated engine, not a language model" in w for w in res.warnings)
        if outcome == "failed":
            assert ar.failure is not None and "simulated judge" in ar.failure.message


@pytest.mark.stores("sqlite")
async def test_engines_name_the_simulated_models(api: Api) -> None:
    body = await api.get("/v1/engines", expect=200)
    assert body["simulated_models"] == ["simulated*", "retab-*"]
    assert "no language model" in body["simulated_note"]
    retab = next(r for r in body["data"] if r["match"] == "retab-*")
    assert retab["simulated"] is True and retab["engine"] == "simulated"
