"""The CLI's pure parts: connection settings, progress arithmetic, failure rows, the import file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.common import CliError, resolve_key, resolve_url
from orchestrator.cli.follow import Snapshot, format_rate, rate_eta, snapshot
from orchestrator.cli.importer.spec import DEFAULT_HANDLE, SpecError, load
from orchestrator.cli.report import failure_of


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, "http://127.0.0.1:8000"),
        ("http://h:1/", {"ORCHESTRATOR_URL": "http://e:2"}, "http://h:1"),
        (None, {"ORCHESTRATOR_URL": "http://e:2", "RETAB_API_BASE_URL": "http://r:3"}, "http://e:2"),
        (None, {"RETAB_API_BASE_URL": "http://r:3/v1/"}, "http://r:3"),
    ],
)
def test_resolve_url(flag: str | None, env: dict[str, str], expected: str) -> None:
    assert resolve_url(flag, env) == expected


@pytest.mark.parametrize(
    ("flag", "env", "key_file", "expected"),
    [
        ("f", {"ORCHESTRATOR_API_KEY": "o", "RETAB_API_KEY": "r"}, "kf", "f"),
        (None, {"ORCHESTRATOR_API_KEY": " o1 , o2", "RETAB_API_KEY": "r"}, "kf", "o1"),
        (None, {"RETAB_API_KEY": "r"}, "kf", "r"),
        (None, {}, "kf\n", "kf"),
        (None, {"ORCHESTRATOR_DB": "data/x.db"}, None, "custom"),
    ],
)
def test_resolve_key(
    tmp_path: Path, flag: str | None, env: dict[str, str], key_file: str | None, expected: str
) -> None:
    if key_file is not None:
        (tmp_path / "orchestrator.db.key").write_text(key_file)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.db.key").write_text("custom\n")
    assert resolve_key(flag, env, tmp_path) == expected


def test_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no API key"):
        resolve_key(None, {}, tmp_path)


EVAL_RUN: dict[str, Any] = {
    "id": "wfevalrun_1",
    "lifecycle": {"status": "running"},
    "total_evals": 10,
    "counts": {
        "lifecycle_counts": {"pending": 2, "queued": 1, "running": 1, "completed": 5, "error": 1, "cancelled": 0},
        "outcome": {"passed": 3, "failed": 1, "blocked": 1},
    },
}
EXP_RUN: dict[str, Any] = {
    "id": "exprun_1",
    "lifecycle": {"status": "completed"},
    "total_document_count": 20,
    "completed_document_count": 19,
    "error_count": 1,
    "score": 0.9,
}


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (
            EVAL_RUN,
            Snapshot(10, 6, "running", {"passed": 3, "failed": 1, "blocked": 1, "error": 1, "cancelled": 0}),
        ),
        (EXP_RUN, Snapshot(20, 20, "completed", {"completed": 19, "error": 1, "cancelled": 0})),
        (
            {"id": "wftestrun_1", "lifecycle": {"status": "pending"}},
            Snapshot(0, 0, "pending", {**dict.fromkeys(("passed", "failed", "blocked", "error", "cancelled"), 0)}),
        ),
    ],
)
def test_snapshot(run: dict[str, Any], expected: Snapshot) -> None:
    assert snapshot(run) == expected


@pytest.mark.parametrize(
    ("args", "expected", "text"),
    [
        ((0, 0, 1.0, 10), (None, None), ""),
        ((0, 5, 0.0, 10), (None, None), ""),
        ((2, 6, 2.0, 10), (2.0, 2.0), "2.0/s  ETA 0:02"),
        ((0, 10, 4.0, 10), (2.5, 0.0), "2.5/s"),
    ],
)
def test_rate_eta(args: tuple[int, int, float, int], expected: tuple[float | None, float | None], text: str) -> None:
    assert rate_eta(*args) == expected
    assert format_rate(*expected) == text


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"lifecycle": {"status": "completed"}, "verdict": "passed"}, None),
        (
            {
                "id": "r1",
                "eval_id": "e1",
                "lifecycle": {"status": "completed"},
                "verdict": "failed",
                "assertion_result": {
                    "condition_kind": "equals",
                    "expected_value": 2,
                    "actual_value": 3,
                    "failure": {"code": "assertion_failed", "message": "m", "details": {"path": "total"}},
                },
            },
            {"verdict": "failed", "path": "total", "expected": 2, "actual": 3, "code": "assertion_failed"},
        ),
        (
            {"id": "r2", "test_id": "t", "lifecycle": {"status": "error", "message": "boom"}, "verdict": None},
            {"verdict": None, "status": "error", "eval_id": "t", "message": "boom"},
        ),
    ],
)
def test_failure_of(row: dict[str, Any], expected: dict[str, Any] | None) -> None:
    got = failure_of(row)
    if expected is None:
        assert got is None
    else:
        assert got is not None and {k: got[k] for k in expected} == expected


def test_import_file_resolves_globs_dates_and_inputs(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for name in ("b.txt", "a.txt"):
        (tmp_path / "docs" / name).write_text(f"Invoice Number: {name}\n")
    (tmp_path / "spec.yaml").write_text(
        """
workflow: {name: W}
blocks: [{label: X, type: extract, config: {model: simulated}}]
evals:
  - {name: date, document: docs/a.txt, path: d, condition: {kind: equals, expected: 2026-01-05}}
  - name: json input
    inputs: {payload: {json: {a: 1}}, input-file-document: {file: docs/b.txt}}
    condition: {kind: exists}
experiments: [{name: E, documents: ["docs/*.txt", docs/a.txt]}]
"""
    )
    plan = load(tmp_path / "spec.yaml")
    date, js = plan.evals
    assert date.assertion["condition"] == {"kind": "equals", "expected": "2026-01-05"}
    assert date.block == "X" and "id" not in date.assertion
    assert js.inputs["payload"] == ("json", {"a": 1}) and js.inputs[DEFAULT_HANDLE][1].filename == "b.txt"
    (exp,) = plan.experiments
    assert [d[DEFAULT_HANDLE][1].filename for d in exp.documents] == ["a.txt", "b.txt", "a.txt"]
    assert exp.n_consensus == 3 and len(plan.files) == 2


def test_import_file_errors_name_the_place(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("workflow: {name: W}\nevals: [{name: a, inputs: {h: {file: x, json: 1}}}]\n")
    with pytest.raises(SpecError) as info:
        load(tmp_path / "s.yaml")
    assert "evals[0].inputs.h" in str(info.value) and "evals[0].condition: Field required" in str(info.value)
