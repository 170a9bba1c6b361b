"""Several machines, on one: two API nodes and two workers over one PostgreSQL database.

Node A serves the API only; node B serves the API with one worker process; a third process is a lone
`orchestrator worker`. A document is uploaded through A with its bytes PUT through B; a run created on
A is executed by the workers; a subscriber on A sees the events B's workers commit, and resumes on B
with `Last-Event-ID`, getting exactly the rest. The finished run's metrics agree on both nodes, and a
sign-in link traded on one is refused on the other."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import asyncpg
import pytest

from orchestrator.cli.client import Client
from tests.conftest import INVOICE_SCHEMA
from tests.feed.conftest import finished_child_ids, sse_messages
from tests.pg_cluster import Cluster
from tests.serverproc import ServerProcess, clean_env, start_server

pytestmark = pytest.mark.e2e
KEY = "two-nodes-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def _node(url: str, log: Path, *flags: str) -> ServerProcess:
    start = partial(start_server, url, api_key=KEY, extra=("--poll-s", "1", *flags), stderr=log)
    return await anyio.to_thread.run_sync(start)


async def _upload_across_nodes(a: Client, b_url: str, data: bytes) -> dict[str, Any]:
    """Session on A, bytes through B (the upload URL as a load balancer would route it), completion on A."""
    up = await a.request("POST", "/v1/files/upload", json={"filename": "inv.txt", "size_bytes": len(data)})
    path = "/" + up["upload_url"].split("://", 1)[1].split("/", 1)[1]
    async with aiohttp.ClientSession() as http, http.put(b_url + path, data=data) as resp:
        assert resp.status == 200, await resp.text()
    await a.request("POST", f"/v1/files/upload/{up['file_id']}/complete", json={})
    return {"id": up["file_id"], "filename": "inv.txt", "mime_type": "text/plain"}


async def _experiment_run(a: Client, doc: dict[str, Any], n: int) -> str:
    config = {"model": "simulated", "json_schema": INVOICE_SCHEMA, "simulation": {"latency_ms": 30}}
    wf = await a.request("POST", "/v1/workflows", json={"name": "two nodes", "project_id": "p"})
    block = await a.request(
        "POST", "/v1/workflows/blocks", json={"workflow_id": wf["id"], "type": "extract", "config": config}
    )
    docs: list[dict[str, Any]] = [{"handle_inputs": {"input-file-document": {"type": "file", "document": doc}}}]
    docs += [{"handle_inputs": {"input-json-0": {"type": "json", "data": {"doc": i}}}} for i in range(n - 1)]
    body = {"workflow_id": wf["id"], "block_id": block["id"], "name": "x", "n_consensus": 3, "documents": docs}
    exp = await a.request("POST", "/v1/workflows/experiments", json=body)
    run = await a.request("POST", "/v1/workflows/experiments/runs", json={"experiment_id": exp["id"]})
    return str(run["id"])


async def _sse(url: str, headers: dict[str, str], params: dict[str, str], until: int | None) -> list[dict[str, Any]]:
    """Events of a run's SSE feed: until `until` child.finished events, or to its end."""
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers={**AUTH, **headers}) as http, http.get(url, params=params) as resp:
        assert resp.status == 200
        with anyio.fail_after(120):
            async for msg in sse_messages(resp):
                if msg.data is None or msg.data.get("type") not in ("progress", "child.finished", "run.finished"):
                    continue
                assert msg.id == msg.data["seq"]
                out.append(msg.data)
                if until is not None and sum(e["type"] == "child.finished" for e in out) >= until:
                    break
                if msg.data["type"] == "run.finished":
                    break
    return out


async def test_a_subscriber_on_one_node_follows_workers_of_another_and_resumes_on_a_third(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    nodes: list[ServerProcess] = []
    lone: subprocess.Popen[bytes] | None = None
    try:
        nodes.append(await _node(url, tmp_path / "a.log", "--api-only"))
        nodes.append(await _node(url, tmp_path / "b.log", "--workers", "1"))
        a_url, b_url = nodes[0].base_url, nodes[1].base_url
        with (tmp_path / "worker.log").open("wb") as log:
            cmd = [sys.executable, "-m", "orchestrator", "worker", "--db", url, "--poll-s", "1"]
            lone = await anyio.to_thread.run_sync(
                lambda: subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=log)
            )
        async with Client(a_url, KEY) as a:
            with anyio.fail_after(60):
                while True:  # B's worker and the lone one have joined
                    if len((await a.request("GET", "/v1/workers"))["data"]) >= 2:
                        break
                    await anyio.sleep(0.1)
            doc = await _upload_across_nodes(a, b_url, b"Invoice Number: INV-77\nTotal: $12.50\n")
            run_id = await _experiment_run(a, doc, 120)
            path = f"/v1/workflows/experiments/runs/{run_id}/events"
            first = await _sse(a_url + path, {}, {"after": "0"}, until=20)
            rest = await _sse(b_url + path, {"Last-Event-ID": str(first[-1]["seq"])}, {}, until=None)
            assert rest[0]["seq"] > first[-1]["seq"], "resumed after the last event seen"
            seqs = [e["seq"] for e in first + rest]
            assert seqs == sorted(set(seqs)), "every event once, in order, across two nodes"
            # The only events a feed may skip are `progress` events a newer event of the run supersedes.
            conn = await asyncpg.connect(url)
            try:
                rows = await conn.fetch("SELECT seq, type FROM events WHERE run_id = $1", run_id)
            finally:
                await conn.close()
            assert {r["type"] for r in rows if r["seq"] not in set(seqs)} <= {"progress"}
            assert rest[-1]["type"] == "run.finished" and rest[-1]["run"]["lifecycle"]["status"] == "completed"

            async def get(p: str, params: dict[str, str]) -> Any:
                return await a.request("GET", p, params=params)

            ids = [e["child"]["id"] for e in first + rest if e["type"] == "child.finished"]
            assert len(ids) == len(set(ids)) == 120 and sorted(ids) == sorted(await finished_child_ids(get, run_id))
            results = await a.request("GET", "/v1/workflows/experiments/results", params={"run_id": run_id})
            by_doc = [r for r in results["data"] if r["document_id"] and r["lifecycle"]["status"] != "completed"]
            assert by_doc == [], "every document completed, the uploaded file's too"
            # The finished run's metrics, computed on A, are the same on B; a sign-in link works on one
            # node only once, whichever node trades it.
            metrics = "/v1/workflows/experiments/metrics"
            on_a = await a.request("GET", metrics, params={"run_id": run_id})
            async with Client(b_url, KEY) as b:
                assert await b.request("GET", metrics, params={"run_id": run_id}) == on_a
            link = await a.request("POST", "/v1/session/link", json={})
            signin = "/" + link["url"].split("/", 3)[3]
            async with aiohttp.ClientSession() as http:
                async with http.get(b_url + signin, allow_redirects=False) as resp:
                    assert resp.status == 303 and resp.headers["Location"] == "/"
                async with http.get(a_url + signin, allow_redirects=False) as resp:
                    assert resp.headers["Location"] == "/#/signin-failed", "spent on B: refused on A"
    finally:
        if lone is not None:
            lone.terminate()
            assert lone.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()[-2000:]
        for node in nodes:
            code = await anyio.to_thread.run_sync(partial(node.stop, timeout=30))
            assert code == 0, node.stderr_tail()
        pg_cluster.drop_database(url.rsplit("/", 1)[1])
