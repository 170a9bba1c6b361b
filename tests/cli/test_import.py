"""`orchestrator import`: idempotent re-imports, updates, pruning, and clear errors (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from orchestrator.demo import invoice_files
from tests.cli.conftest import Server, cli

pytestmark = pytest.mark.e2e

YAML = """\
workflow:
  name: {name}
  description: Invoice evals kept in git
blocks:
  - label: Extract invoice
    type: extract
    config:
      model: simulated
      json_schema:
        type: object
        properties:
          invoice_number: {{type: string}}
          invoice_date: {{type: string}}
          total: {{type: number}}
evals:
  - name: INV-1001 total
    document: docs/inv-1001.txt
    path: total
    condition: {{kind: equals, expected: {total}}}
  - name: INV-1001 date
    document: docs/inv-1001.txt
    path: invoice_date
    condition: {{kind: equals, expected: 2026-01-05}}
  - name: INV-1002 number
    block: Extract invoice
    inputs:
      input-file-document: {{file: docs/inv-1002.txt}}
    path: invoice_number
    condition: {{kind: matches_regex, pattern: "^INV-\\\\d{{4}}$"}}
experiments:
  - name: Consensus
    n_consensus: 3
    documents: ["docs/*.txt"]
"""


def write_project(root: Path, name: str, total: str = "253.79") -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for filename, data in invoice_files()[:3]:
        (root / "docs" / filename).write_bytes(data)
    path = root / "evals.yaml"
    path.write_text(YAML.format(name=name, total=total))
    return path


def state(server: Server, name: str) -> dict[str, Any]:
    """Everything an import may touch, with the timestamps that must not move on a no-op import."""
    (wf,) = [w for w in server.workflows() if w["name"] == name]
    q = {"workflow_id": wf["id"], "limit": 100}
    evals = server.http("GET", "/v1/workflows/evals", params=q)["data"]
    exps = server.http("GET", "/v1/workflows/experiments", params=q)["data"]
    blocks = server.http("GET", "/v1/workflows/blocks", params=q)["data"]
    return {
        "workflow": (wf["id"], wf["updated_at"]),
        "blocks": sorted((b["id"], b["updated_at"]) for b in blocks),
        "evals": sorted((e["name"], e["id"], e["updated_at"]) for e in evals),
        "experiments": sorted((x["name"], x["id"], x["updated_at"], x["document_count"]) for x in exps),
        "files": len(server.http("GET", "/v1/files", params={"limit": 1000})["data"]),
    }


def test_import_twice_changes_nothing(bare_server: Server, tmp_path: Path) -> None:
    path = write_project(tmp_path, "Twice")
    first = cli("import", str(path), "--json", server=bare_server)
    assert first.code == 0, first
    assert first.json()["counts"]["created"] == 6 and first.json()["files"] == {"uploaded": 3, "reused": 0}
    before = state(bare_server, "Twice")
    assert len(before["evals"]) == 3 and before["experiments"][0][3] == 3 and before["files"] == 3

    second = cli("import", str(path), server=bare_server)
    assert second.code == 0, second
    assert "No changes (6 up to date)." in second.out
    assert state(bare_server, "Twice") == before
    assert [w["name"] for w in bare_server.workflows()].count("Twice") == 1


def test_import_updates_only_what_changed_and_prunes(bare_server: Server, tmp_path: Path) -> None:
    path = write_project(tmp_path, "Edited")
    assert cli("import", str(path), server=bare_server).code == 0
    before = state(bare_server, "Edited")

    write_project(tmp_path, "Edited", total="999")
    dry = cli("import", str(path), "--dry-run", "--json", server=bare_server)
    assert dry.code == 0 and dry.json()["counts"]["updated"] == 1
    assert state(bare_server, "Edited") == before

    res = cli("import", str(path), "--json", server=bare_server)
    changed = {(c["kind"], c["name"]) for c in res.json()["changes"] if c["action"] != "unchanged"}
    assert changed == {("eval", "INV-1001 total")}
    after = state(bare_server, "Edited")
    assert after["workflow"][0] == before["workflow"][0] and after["experiments"] == before["experiments"]
    ev = {e[0]: e for e in after["evals"]}
    assert ev["INV-1001 date"] in before["evals"] and ev["INV-1001 total"] not in before["evals"]

    wf_id = after["workflow"][0]
    run = cli("run", "eval", "--workflow", wf_id, "--json", server=bare_server).json()
    assert [f["name"] for f in run["failures"]] == ["INV-1001 total"]

    path.write_text(path.read_text().split("  - name: INV-1002 number")[0] + "experiments: []\n")
    pruned = cli("import", str(path), "--prune", "--json", server=bare_server).json()
    deleted = {(c["kind"], c["name"]) for c in pruned["changes"] if c["action"] == "deleted"}
    assert deleted == {("eval", "INV-1002 number"), ("experiment", "Consensus")}


def test_block_type_change_is_refused(bare_server: Server, tmp_path: Path) -> None:
    path = write_project(tmp_path, "Typed")
    assert cli("import", str(path), server=bare_server).code == 0
    path.write_text(path.read_text().replace("type: extract", "type: classifier", 1))
    res = cli("import", str(path), server=bare_server)
    assert res.code == 2 and "type cannot change" in res.err, res


BASE = "workflow: {name: x}\nblocks: [{label: B, type: extract}]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workflow: {name: x\n", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
        ("workflow: {nam: x}\n", "workflow.name: Field required"),
        (
            BASE + "evals: [{name: a, document: nope.txt, condition: {kind: exists}}]\n",
            "cannot read document 'nope.txt'",
        ),
        (BASE + "evals: [{name: a, block: C, document: e.yaml, condition: {kind: exists}}]\n", "unknown block 'C'"),
        (BASE + "evals: [{name: a, document: e.yaml, condition: {kind: nearly}}]\n", "evals[0] (a).condition"),
        (BASE + "evals: [{name: a, condition: {kind: exists}}]\n", "exactly one of `document`"),
        (BASE + "experiments: [{name: e, n_consensus: 4, documents: [e.yaml]}]\n", "n_consensus"),
        (BASE + "experiments: [{name: e, documents: ['*.pdf']}]\n", "matches no file"),
        ("workflow: {name: x}\nblocks: [{label: B, type: extract, config: {json_schema: {type: 7}}}]\n", "JSON schema"),
        (BASE.replace("blocks: [", "blocks: [{label: B, type: split}, "), "two blocks are named 'B'"),
    ],
)
def test_invalid_files_exit_2_before_touching_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    # In-process (a process per table row is slow) and with no server: nothing may be sent anywhere.
    assert main(["import", str(path), "--url", "http://127.0.0.1:9", "--api-key", "k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and path.name in err and message in err, err


def test_missing_file_exits_2(tmp_path: Path) -> None:
    res = cli("import", str(tmp_path / "absent.yaml"))
    assert res.code == 2 and "cannot read" in res.err and "Traceback" not in res.err, res


def test_documents_are_relative_to_the_yaml_file(bare_server: Server, tmp_path: Path) -> None:
    write_project(tmp_path / "repo", "Relative")
    res = cli("import", "repo/evals.yaml", "--json", cwd=tmp_path, server=bare_server)
    assert res.code == 0, res
    # The same bytes under the same names were uploaded by other tests' imports: reused, not duplicated.
    assert res.json()["files"]["uploaded"] + res.json()["files"]["reused"] == 3
