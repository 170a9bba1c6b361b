"""`--max-concurrency` holds across worker processes: two workers of one server never have more passes
in flight together than the global limit, and both do part of the work (each gets its share)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_workers_e2e import Http, finished, serving, until
from tests.serverproc import ROOT, clean_env

LIMIT = 4


@pytest.mark.e2e
async def test_two_workers_never_exceed_the_global_concurrency_limit(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    (probe / "in-flight").mkdir(parents=True)
    env = {**clean_env(), "PROBE_DIR": str(probe), "PYTHONPATH": str(ROOT)}
    async with (
        serving(
            tmp_path / "runs.db",
            "--workers",
            "2",
            "--max-concurrency",
            str(LIMIT),
            "--python-modules",
            "tests.e2e.concurrency_probe",
            env=env,
        ) as srv,
        aiohttp.ClientSession() as session,
    ):
        http = Http(srv.base_url, session)
        await until(lambda: _two(http))  # both joined: each now holds half of the limit
        wf = await http.post("/v1/workflows", {"name": "limits", "project_id": "p"})
        config = {
            "model": "python:tests.e2e.concurrency_probe:extract",
            "json_schema": {"type": "object", "properties": {"invoice_number": {"type": "string"}}},
        }
        block = await http.post(
            "/v1/workflows/blocks", {"workflow_id": wf["id"], "type": "extract", "label": "E", "config": config}
        )
        docs = [{"handle_inputs": {"input-json-0": {"type": "json", "data": {"doc": i}}}} for i in range(24)]
        exp = await http.post(
            "/v1/workflows/experiments",
            {"workflow_id": wf["id"], "block_id": block["id"], "n_consensus": 3, "documents": docs, "name": "x"},
        )
        run = await http.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"], "cache": False})
        done = await finished(http, run["id"])
    assert done["lifecycle"]["status"] == "completed", done
    seen = [line.split() for line in (probe / "seen.log").read_text().splitlines()]
    assert len(seen) == 24 * 3
    assert max(int(n) for _, n in seen) <= LIMIT, "more passes in flight than --max-concurrency"
    per_worker = Counter(pid for pid, _ in seen)
    assert len(per_worker) == 2, f"both workers call passes: {per_worker}"


async def _two(http: Http) -> bool:
    return len(await http.workers()) >= 2
