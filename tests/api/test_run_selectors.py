"""A run names its checks one way on every run route: `scope`, or `test_id` / `target` (0.0.142 and the
seeds), or nothing (the whole workflow). Two selectors at once, or an empty id, is a 422 with the envelope:
the flat route used to answer 201 and drop `target`, and `test_id: ""` ran every test of the workflow."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_support import assert_envelope, raw
from tests.api.test_test_runs_api import setup
from tests.conftest import Api

ROUTES = ("/v1/workflows/tests/runs", "/v1/workflows/evals/runs", "/v1/workflows/{wf}/tests/runs")


def _body(route: str, wf: str, body: dict[str, Any]) -> dict[str, Any]:
    return body if "{wf}" in route else {"workflow_id": wf, **body}


@pytest.mark.stores("sqlite")
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"test_id": "T1", "target": {"type": "block", "block_id": "B"}}, "at most one of"),
        ({"test_id": ""}, "test_id"),
        ({"target": {"type": "block", "block_id": ""}}, "block_id"),
        ({"test_id": "T1", "scope": {"type": "single", "test_id": "T1"}}, "at most one of"),
        ({"target": {"type": "block", "block_id": "B"}, "scope": {"type": "workflow"}}, "at most one of"),
        ({"scope": {"type": "single", "eval_id": ""}}, "eval_id"),
        ({"scope": {"type": "single", "test_id": "T1", "eval_id": "T2"}}, "two different checks"),
        ({"scope": {"type": "block", "block_id": ""}}, "block_id"),
    ],
)
async def test_two_selectors_or_an_empty_id_is_a_422(api: Api, route: str, body: dict[str, Any], mentions: str) -> None:
    ids = await setup(api)
    sub = {"T1": ids["t1"], "T2": ids["t2"], "B": ids["block"]}

    def fill(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        return sub.get(v, v) if isinstance(v, str) else v

    if "{wf}" in route and "scope" in body:
        pytest.skip("the seed route has no `scope`")
    url = route.format(wf=ids["wf"])
    r = await raw(api, "POST", url, json=_body(route, ids["wf"], fill(body)))
    detail = assert_envelope(r, 422, "validation_error")
    assert mentions in detail["message"] or mentions in str(detail["details"]), detail
    # Nothing was started.
    listed = await api.get("/v1/runs", params={"workflow_id": ids["wf"]}, expect=200)
    assert listed["data"] == []


@pytest.mark.stores("sqlite")
async def test_empty_workflow_and_experiment_ids_are_422(api: Api) -> None:
    for path, body in (
        ("/v1/workflows/evals/runs", {"workflow_id": ""}),
        ("/v1/workflows/tests/runs", {"workflow_id": ""}),
        ("/v1/workflows/experiments/runs", {"experiment_id": ""}),
        ("/v1/workflows/experiments/runs", {"experiment_id": "exp_x", "workflow_id": ""}),
    ):
        assert_envelope(await raw(api, "POST", path, json=body), 422, "validation_error")


@pytest.mark.stores("sqlite")
async def test_one_selector_still_works_everywhere(api: Api) -> None:
    ids = await setup(api)
    flat = await api.post(
        "/v1/workflows/tests/runs", {"workflow_id": ids["wf"], "target": {"type": "block", "block_id": ids["block"]}}
    )
    assert flat["total_tests"] == 2 and flat["target"] == {"type": "block", "block_id": ids["block"]}
    one = await api.post("/v1/workflows/tests/runs", {"workflow_id": ids["wf"], "test_id": ids["t1"]})
    assert one["total_tests"] == 1 and one["test_id"] == ids["t1"]
    same = {"type": "single", "eval_id": ids["t1"], "test_id": ids["t1"]}  # both names, one check
    both = await api.post("/v1/workflows/evals/runs", {"workflow_id": ids["wf"], "scope": same})
    assert both["total_evals"] == 1
    for run in (flat, one, both):
        await api.wait_run(run["id"])
