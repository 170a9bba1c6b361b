"""retab==0.0.155 (the last SDK with `workflows.tests`, sends `Api-Key`) in its own venv, against the
real server; plus the seed-era routes (reference pages 002/004) authenticated with `Api-Key`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_test_runs_api import SEED_002, SEED_004, check_seed_run
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e
FLOW = Path(__file__).with_name("sdk155_flow.py")


def test_sdk155_tests_flow(live_server: LiveServer, sdk155_python: Path) -> None:
    proc = subprocess.run(
        [str(sdk155_python), str(FLOW), live_server.base_url, live_server.api_key],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["test_id"].startswith("wfnodetest_") and out["requests"] > 10


def test_seed_routes_with_api_key(live_server: LiveServer) -> None:
    """REPO141 style: base URL ending in /v1, paths /workflows/…, header Api-Key."""
    h = {"Api-Key": live_server.api_key, "Content-Type": "application/json"}
    with httpx.Client(base_url=live_server.base_url + "/v1", headers=h, timeout=30) as s:

        def call(method: str, path: str, status: int, body: Any = None) -> Any:
            r = s.request(method, path, json=body)
            assert r.status_code == status, (method, path, r.status_code, r.text)
            assert r.headers["x-request-id"].startswith("req_")
            return r.json() if r.content else None

        wf = call("POST", "/workflows", 201, {"project_id": "p", "name": "Invoice workflow"})
        schema = {"type": "object", "properties": {"total": {"type": "number"}}}
        block = call(
            "POST",
            "/workflows/blocks",
            201,
            {"workflow_id": wf["id"], "type": "extract", "config": {"model": "retab-small", "json_schema": schema}},
        )
        test = call(
            "POST",
            f"/workflows/{wf['id']}/tests",
            201,
            {
                "target": {"type": "block", "block_id": block["id"]},
                "source": {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"total": 3}}}},
                "assertion": {
                    "target": {"output_handle_id": "output-json-0", "path": "total"},
                    "condition": {"kind": "exists"},
                },
            },
        )
        assert call("GET", f"/workflows/{wf['id']}/tests/{test['id']}", 200)["id"] == test["id"]
        assert [t["id"] for t in call("GET", f"/workflows/{wf['id']}/tests", 200)["data"]] == [test["id"]]

        created = call("POST", f"/workflows/{wf['id']}/tests/runs", 201, {"test_id": test["id"], "n_consensus": 3})
        check_seed_run(created, SEED_002)
        assert created["workflow"]["name_at_run_time"] == "Invoice workflow" and created["total_tests"] == 1
        run, deadline = created, time.monotonic() + 60
        while run["lifecycle"]["status"] not in ("completed", "error", "cancelled") and time.monotonic() < deadline:
            run = call("GET", f"/workflows/tests/runs/{created['id']}", 200)
            check_seed_run(run, SEED_004)
        assert run["lifecycle"]["status"] == "completed" and run["timing"]["duration_ms"] is not None
        rows = call("GET", f"/workflows/tests/runs/{run['id']}/results", 200)
        assert len(rows["data"]) == 1 and rows["data"][0]["test_id"] == test["id"]
        one = call("GET", f"/workflows/tests/runs/{run['id']}/results/{test['id']}", 200)
        assert one["run_id"] == run["id"] and one["assertion_result"]["status"] == one["assertion_result"]["outcome"]
        listed = call("GET", "/workflows/tests/runs", 200, None)
        assert run["id"] in [r["id"] for r in listed["data"]]
        call("POST", f"/workflows/tests/runs/{run['id']}/cancel", 404, {})
        call("DELETE", f"/workflows/{wf['id']}/tests/{test['id']}", 204)
        call("DELETE", f"/workflows/{wf['id']}", 204)
