"""End-to-end fixtures: the REAL server process, and a cached venv holding retab==0.0.155.

`live_server` starts `python -m orchestrator serve --port 0`, reads the bound URL from stdout and,
at teardown, sends SIGTERM and asserts a clean exit (code 0). `sdk155_python` is the interpreter of
a separate venv (`.cache/sdk155-venv` under the repo) with the last SDK that has `workflows.tests`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess, start_server

REPO = Path(__file__).resolve().parents[2]
SDK155_VENV = REPO / ".cache" / "sdk155-venv"
SDK155_VERSION = "0.0.155"
MARKER = ".installed"  # written last, holding the version: its absence means the build did not finish
API_KEY = "k"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

LiveServer = ServerProcess  # the name the e2e tests import


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real server on each store: a SQLite file, and a database of the session's PostgreSQL cluster."""
    folder = tmp_path_factory.mktemp("live")
    db: Path | str = folder / "live.db"
    if request.param == "postgres":
        db = request.getfixturevalue("pg_cluster").create_database()
    server = start_server(db, api_key=API_KEY, start_timeout=START_TIMEOUT_S, stderr=folder / "server.stderr")
    try:
        yield server
    finally:
        alive = server.proc.poll() is None
        code = server.stop(timeout=STOP_TIMEOUT_S)
        if alive and code == -signal.SIGKILL:
            raise AssertionError(f"server did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM")
    assert alive, f"the server died during the tests (exit {code}): {server.stderr_tail()}"
    assert code == 0, f"unclean exit {code} after SIGTERM: {server.stderr_tail()}"


def _venv_version(venv: Path) -> str | None:
    """The retab version a cached venv holds, or None unless it is complete: its marker (written last,
    so an interrupted build has none) names the version, and its python imports that very version."""
    python = venv / "bin" / "python"
    try:
        marked = (venv / MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not python.exists():
        return None
    try:
        probe = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m, retab; print(m.version('retab'))"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = probe.stdout.strip() if probe.returncode == 0 else None
    return found if found == marked else None


def _quiet(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    """Run `cmd` with its output captured; None when it cannot start or does not end in time."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None


def ensure_sdk_venv(venv: Path, version: str) -> Path:
    """The python of `venv` holding retab==`version`: reused when complete and right, else (missing,
    another version, or half-built by an interrupted install) rebuilt from scratch. Sessions building
    it at the same time take turns on a lock file beside it. Skips the test when pip cannot install."""
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _venv_version(venv) == version:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        made = _quiet([sys.executable, "-m", "venv", str(venv)], timeout=300)
        if made is None or made.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.fail(f"could not create a venv at {venv}: {made.stderr[-800:] if made else 'timed out'}")
        pip = _quiet([str(python), "-m", "pip", "install", "-q", f"retab=={version}"], timeout=900)
        if pip is None or pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            why = pip.stderr[-800:] if pip else "pip did not finish in time"
            pytest.skip(f"pip could not install retab=={version} (no package index?): {why}")
        partial = venv / f"{MARKER}.partial"
        partial.write_text(version + "\n", encoding="utf-8")
        partial.replace(venv / MARKER)  # atomic: the marker is whole or absent
        if _venv_version(venv) != version:
            pytest.fail(f"the venv at {venv} does not import retab {version} after installing it")
    return python


@pytest.fixture(scope="session")
def sdk155_python() -> Path:
    """The python of a separate venv with retab==0.0.155, built once and cached under .cache/."""
    return ensure_sdk_venv(SDK155_VENV, SDK155_VERSION)
