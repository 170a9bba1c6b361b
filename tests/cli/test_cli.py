"""The CLI against a real server process: the demo, run/follow/summary, watch, runs, connection settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.cli.conftest import KEY, Server, clean_env, cli

pytestmark = pytest.mark.e2e

FAILING = {"INV-1007 total (wrong expected value)", "INV-1010 has 4 line items (it has 3)"}
BLOCKED = {"INV-1009 PO number (invalid regex)"}


def test_demo_is_created_on_first_start_only(tmp_path: Path) -> None:
    server = Server(tmp_path / "orchestrator.db").start()
    try:
        wf = server.demo_workflow()
        evals = server.http("GET", "/v1/workflows/evals", params={"workflow_id": wf["id"], "limit": 100})["data"]
        (exp,) = server.http("GET", "/v1/workflows/experiments", params={"workflow_id": wf["id"]})["data"]
        docs = server.http("GET", f"/v1/workflows/experiments/{exp['id']}/documents")["data"]
        assert (len(evals), exp["n_consensus"], len(docs)) == (11, 5, 20)
    finally:
        server.stop()
    again = Server(tmp_path / "orchestrator.db").start()
    try:
        assert [w["id"] for w in again.workflows()] == [wf["id"]]
    finally:
        again.stop()


def test_no_demo_flag(bare_server: Server) -> None:
    assert bare_server.workflows() == []


def test_run_eval_exits_nonzero_and_names_failures(demo_server: Server) -> None:
    res = cli("run", "eval", "--workflow", "Invoice demo", server=demo_server)
    assert res.code == 1, res
    assert "11 evals: 8 passed, 2 failed, 1 blocked" in res.out
    for name in FAILING | BLOCKED:
        assert name in res.out
    assert "expected: 2464.0" in res.out and "actual:   2646.0" in res.out
    assert "invalid_regex" in res.out
    assert "INV-1001 invoice number" not in res.out  # passes are not listed


def test_run_eval_json(demo_server: Server) -> None:
    # --no-cache: the demo's passes were cached by the test before; this one watches them being called.
    res = cli("run", "eval", "--workflow", "Invoice demo", "--json", "--no-cache", server=demo_server)
    assert res.code == 1, res
    report = res.json()
    assert (report["ok"], report["status"], report["total"]) == (False, "completed", 11)
    assert report["counts"] == {"passed": 8, "failed": 2, "blocked": 1, "error": 0, "cancelled": 0}
    by_name = {f["name"]: f for f in report["failures"]}
    assert set(by_name) == FAILING | BLOCKED
    wrong_total = by_name["INV-1007 total (wrong expected value)"]
    assert (wrong_total["verdict"], wrong_total["expected"], wrong_total["actual"]) == ("failed", 2464.0, 2646.0)
    assert by_name["INV-1009 PO number (invalid regex)"]["code"] == "invalid_regex"
    assert report["run"]["id"] == report["run_id"]
    # Slow enough to watch (README: about 5 s): 33 passes of at least 2 s each through at most 32 slots.
    assert report["run"]["timing"]["duration_ms"] >= 4000


@pytest.mark.parametrize(
    ("scope", "code", "total"),
    [
        (["--eval", "INV-1001 invoice number"], 0, 1),
        (["--eval", "INV-1007 total (wrong expected value)"], 1, 1),
        (["--block", "Extract invoice"], 1, 11),
    ],
)
def test_run_eval_scopes(demo_server: Server, scope: list[str], code: int, total: int) -> None:
    wf = demo_server.demo_workflow()
    res = cli("run", "eval", "--workflow", wf["id"], *scope, "--json", server=demo_server)
    assert (res.code, res.json()["total"]) == (code, total), res


def test_run_test_dialect(demo_server: Server) -> None:
    res = cli("run", "test", "--workflow", "Invoice demo", "--json", server=demo_server)
    assert res.code == 1, res
    report = res.json()
    assert (report["kind"], report["total"], report["run_id"][:10]) == ("test", 11, "wftestrun_")


def test_run_experiment_prints_score_and_least_agreed_fields(demo_server: Server) -> None:
    res = cli("run", "experiment", "--workflow", "Invoice demo", "--no-cache", server=demo_server)
    assert res.code == 0, res
    assert "20 documents: 20 completed" in res.out
    assert "Score: 0.9" in res.out and "Least agreed fields:" in res.out

    exp_id = res.out.split("Experiment run ")[1].split()[0].rstrip(":")
    run = demo_server.http("GET", f"/v1/workflows/experiments/runs/{exp_id}")
    # About 15 s (README): 100 passes of at least 2 s each through at most 32 pass slots take at least 6.25 s.
    assert run["timing"]["duration_ms"] >= 6250
    strict = cli("watch", run["id"], "--min-score", "0.99", "--json", server=demo_server)
    report = strict.json()
    assert strict.code == 1 and report["ok"] is False and 0 < report["score"] < 0.99
    assert report["least_agreed"] and all(0 <= f["likelihood"] < 1 for f in report["least_agreed"])


def test_watch_follows_a_run_created_elsewhere_and_runs_lists_it(demo_server: Server) -> None:
    wf = demo_server.demo_workflow()
    run = demo_server.http("POST", "/v1/workflows/evals/runs", {"workflow_id": wf["id"]})
    res = cli("watch", run["id"], "--json", server=demo_server)
    assert res.code == 1, res
    assert (res.json()["run_id"], res.json()["status"]) == (run["id"], "completed")

    listed = cli("runs", "--json", "--limit", "50", server=demo_server)
    assert listed.code == 0, listed
    ids = [r["id"] for r in listed.json()["data"]]
    assert run["id"] in ids and len(ids) == len(set(ids))
    table = cli("runs", "--workflow", "Invoice demo", "--kind", "eval", server=demo_server)
    assert table.code == 0 and run["id"] in table.out and "8 passed, 2 failed, 1 blocked" in table.out


def test_workflows_lists_the_demo(demo_server: Server) -> None:
    res = cli("workflows", "--json", server=demo_server)
    (wf,) = [w for w in res.json()["data"] if w["name"] == "Invoice demo"]
    assert wf["eval_count"] == 11 and len(wf["experiments"]) == 1


def test_connection_from_retab_env_and_key_file(demo_server: Server, tmp_path: Path) -> None:
    via_sdk_env = cli("runs", "--json", env={"RETAB_API_BASE_URL": demo_server.url + "/", "RETAB_API_KEY": KEY})
    assert via_sdk_env.code == 0, via_sdk_env
    (tmp_path / "orchestrator.db.key").write_text(KEY + "\n")
    via_key_file = cli("runs", "--json", cwd=tmp_path, env={"ORCHESTRATOR_URL": demo_server.url})
    assert via_key_file.code == 0, via_key_file


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["runs", "--url", "http://127.0.0.1:9", "--api-key", "k"], {}, 3, "cannot reach the server"),
        (["runs", "--api-key", "wrong"], {"ORCHESTRATOR_URL": "{url}"}, 2, "refused the API key"),
        (["runs"], {"ORCHESTRATOR_URL": "{url}"}, 2, "no API key"),
        (["watch", "nonsense", "--api-key", KEY], {"ORCHESTRATOR_URL": "{url}"}, 2, "not a run id"),
        (["watch", "wfevalrun_missing", "--api-key", KEY], {"ORCHESTRATOR_URL": "{url}"}, 2, "not found"),
        (["run", "eval", "--workflow", "nope", "--api-key", KEY], {"ORCHESTRATOR_URL": "{url}"}, 2, "no workflow"),
    ],
)
def test_errors_are_messages_with_exit_codes(
    demo_server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    # In-process (same code path as the subprocess, without paying a process start per row).
    monkeypatch.chdir(tmp_path)
    for name in clean_env().keys() ^ os.environ.keys():
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(url=demo_server.url))
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
