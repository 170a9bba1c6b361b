"""`orchestrator run … --no-cache`, the usage line of the summary and `--json`, and `orchestrator cache
stats|clear`, against a real server process."""

from __future__ import annotations

from typing import Any

from tests.cli.conftest import Server, cli
from tests.conftest import INVOICE_SCHEMA


def _experiment(server: Server, name: str) -> str:
    wf = server.http("POST", "/v1/workflows", {"name": name})
    config = {"model": "simulated", "json_schema": INVOICE_SCHEMA, "simulation": {"disagreement": 0.2}}
    block = server.http("POST", "/v1/workflows/blocks", {"workflow_id": wf["id"], "type": "extract", "config": config})
    docs: list[dict[str, Any]] = [
        {"handle_inputs": {"input-json-0": {"type": "json", "data": {"invoice_number": f"N-{i}", "total": i}}}}
        for i in range(4)
    ]
    body = {"workflow_id": wf["id"], "block_id": block["id"], "name": "x", "n_consensus": 5, "documents": docs}
    return str(server.http("POST", "/v1/workflows/experiments", body)["id"])


def test_a_rerun_reports_zero_engine_calls_and_no_cache_calls_again(bare_server: Server) -> None:
    exp = _experiment(bare_server, "cli cache")
    first = cli("run", "experiment", "--experiment", exp, server=bare_server)
    assert first.code == 0, first
    assert "(estimated by the simulated engine), cost unknown (no price" in first.out, first.out
    assert "· 20 engine calls" in first.out and "from the cache" not in first.out
    again = cli("run", "experiment", "--experiment", exp, server=bare_server)
    assert again.code == 0, again
    assert "Usage: 0 in + 0 out tokens" in again.out and "$0.0000 · 0 engine calls" in again.out, again.out
    assert "· 20 passes from the cache (saved" in again.out
    report = cli("run", "experiment", "--experiment", exp, "--json", server=bare_server).json()
    assert (report["usage"]["engine_calls"], report["usage"]["cache_hits"]) == (0, 20)
    fresh = cli("run", "experiment", "--experiment", exp, "--no-cache", "--json", server=bare_server)
    usage = fresh.json()["usage"]
    assert (usage["engine_calls"], usage["cache_hits"], fresh.json()["run"]["cache"]) == (20, 0, False)


def test_cache_stats_and_clear(bare_server: Server) -> None:
    exp = _experiment(bare_server, "cli stats")
    assert cli("run", "experiment", "--experiment", exp, "--json", server=bare_server).code == 0
    stats = cli("cache", "stats", "--json", server=bare_server)
    assert stats.code == 0, stats
    body = stats.json()
    assert body["entries"] >= 20 and body["bytes"] > 0 and body["max_bytes"] == 1024 << 20
    assert body["models"][0]["model"] == "simulated" and body["enabled"] is True
    human = cli("cache", "stats", server=bare_server)
    assert "Pass cache: on" in human.out and "hit rate:" in human.out and "simulated" in human.out
    kept = cli("cache", "clear", "--model", "gpt-*", "--older-than", "30d", server=bare_server)
    assert kept.code == 0 and "Removed 0 entries." in kept.out, kept
    bad = cli("cache", "clear", "--older-than", "soon", server=bare_server)
    assert bad.code == 2 and "older_than" in bad.err, bad
    cleared = cli("cache", "clear", "--model", "simulated", "--json", server=bare_server)
    assert cleared.code == 0 and cleared.json()["removed"] == body["entries"]
    assert cleared.json()["cache"]["entries"] == 0
