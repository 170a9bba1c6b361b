"""`serve` refuses bad start-up conditions with one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--api-key", "k", "--no-demo", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=99")
    done = _serve("--db", str(db))
    assert done.returncode == 2
    assert "written by a newer orchestrator" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read models file"), ("[[routes]]\nmatch = 'x'\nengine = 'nope'\n", "nope")],
)
def test_a_bad_models_file_is_refused(tmp_path: Path, content: str | None, expected: str) -> None:
    models = tmp_path / "models.toml"
    if content is not None:
        models.write_text(content)
    done = _serve("--db", str(tmp_path / "x.db"), "--models", str(models))
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
