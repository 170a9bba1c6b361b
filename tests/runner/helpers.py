"""Helpers shared by the runner tests: bulk set-up through the store, condition waits, run URLs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio

from orchestrator.api.keys import SERVICES
from orchestrator.core.lifecycle import invariant_violations
from orchestrator.runner.scheduler import Scheduler
from orchestrator.service import Services
from orchestrator.wire.validation import checked_assertion
from tests.conftest import Api

EXPECTED_TOTAL = 1234.5
ASSERT_TOTAL: dict[str, Any] = {
    "target": {"output_handle_id": "output-json-0", "path": "total"},
    "condition": {"kind": "equals", "expected": EXPECTED_TOTAL},
}
OPEN = ("pending", "queued", "running")


def services(api: Api) -> Services[Scheduler]:
    """The app's services, whose runner is the in-process Scheduler (tests run with `workers=0`)."""
    app = api.client.app
    assert app is not None
    found = app[SERVICES]
    assert isinstance(found.scheduler, Scheduler), "in-process tests run the scheduler in the API process"
    return cast(Services[Scheduler], found)


def json_inputs(i: int, total: float = EXPECTED_TOTAL) -> dict[str, Any]:
    data = {"invoice_number": f"INV-{i:06d}", "vendor": f"Vendor {i % 97}", "total": total}
    return {"input-json-0": {"type": "json", "data": data}}


def sim(**options: Any) -> dict[str, Any]:
    return {"simulation": options}


def run_path(run_id: str) -> str:
    kind = "experiments" if run_id.startswith("exprun_") else "tests" if run_id.startswith("wftestrun_") else "evals"
    return f"/v1/workflows/{kind}/runs/{run_id}"


async def add_block(api: Api, workflow_id: str, config: dict[str, Any]) -> str:
    from tests.conftest import INVOICE_SCHEMA

    block = await api.post(
        "/v1/workflows/blocks",
        {
            "workflow_id": workflow_id,
            "type": "extract",
            "label": "Extract",
            "config": {"model": "simulated", "json_schema": INVOICE_SCHEMA, **config},
        },
        expect=201,
    )
    return str(block["id"])


async def add_checks(
    api: Api,
    workflow_id: str,
    block_id: str,
    count: int,
    *,
    prefix: str = "wfnodeeval",
    total: Callable[[int], float] = lambda i: EXPECTED_TOTAL,
) -> list[str]:
    """Saved checks straight through the store: 2,000 HTTP round trips would dominate the test."""
    store = services(api).store
    assertion = checked_assertion(ASSERT_TOTAL)
    ids = []
    for i in range(count):
        row = await store.checks.create(
            prefix=prefix,
            workflow_id=workflow_id,
            block_id=block_id,
            name=f"check {i}",
            source={"type": "manual", "handle_inputs": json_inputs(i, total(i))},
            assertion=assertion,
        )
        ids.append(str(row["id"]))
    return ids


async def eval_run(api: Api, workflow_id: str, scope: dict[str, Any] | None = None, kind: str = "evals") -> Any:
    body: dict[str, Any] = {"workflow_id": workflow_id}
    if scope is not None:
        body["scope"] = scope
    return await api.post(f"/v1/workflows/{kind}/runs", body, expect=201)


async def experiment(api: Api, workflow_id: str, block_id: str, docs: int, n_consensus: int = 3) -> str:
    exp = await api.post(
        "/v1/workflows/experiments",
        {
            "workflow_id": workflow_id,
            "block_id": block_id,
            "name": "exp",
            "n_consensus": n_consensus,
            "documents": [{"handle_inputs": json_inputs(i)} for i in range(docs)],
        },
        expect=201,
    )
    return str(exp["id"])


async def experiment_run(api: Api, experiment_id: str) -> Any:
    return await api.post("/v1/workflows/experiments/runs", {"experiment_id": experiment_id}, expect=201)


async def get_run(api: Api, run_id: str) -> Any:
    return await api.get(run_path(run_id), expect=200)


async def wait_for(probe: Callable[[], Awaitable[Any]], until: Callable[[Any], bool], within_s: float = 60.0) -> Any:
    """Poll `probe` until `until(value)`; condition-based, never a fixed sleep."""
    with anyio.fail_after(within_s):
        while True:
            value = await probe()
            if until(value):
                return value
            await anyio.sleep(0.005)


async def assert_counts_match_children(api: Api, run_id: str) -> dict[str, Any]:
    """The run row's counts equal a recount from the children, and the invariants hold."""
    store = services(api).store
    run = dict(await store.runs.get(run_id))
    recount = await store.children.recount(run_id)
    for key in ("c_pending", "c_queued", "c_running", "c_completed", "c_error", "c_cancelled"):
        assert run[key] == recount.get(key, 0), (key, run[key], recount)
    for key in ("o_passed", "o_failed", "o_blocked"):
        assert run[key] == recount.get(key, 0), (key, run[key], recount)
    assert invariant_violations(run) == [], invariant_violations(run)
    return run


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
