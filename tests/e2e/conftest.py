"""End-to-end fixtures: the REAL server process, and a cached venv holding retab==0.0.155.

`live_server` starts `python -m orchestrator serve --port 0`, reads the bound URL from stdout and,
at teardown, sends SIGTERM and asserts a clean exit (code 0). `sdk155_python` is the interpreter of
a separate venv (`.cache/sdk155-venv` under the repo) with the last SDK that has `workflows.tests`.
"""

from __future__ import annotations

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
API_KEY = "k"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

LiveServer = ServerProcess  # the name the e2e tests import


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live") / "live.db", api_key=API_KEY, start_timeout=START_TIMEOUT_S)
    try:
        yield server
    finally:
        alive = server.proc.poll() is None
        code = server.stop(timeout=STOP_TIMEOUT_S)
        if alive and code == -signal.SIGKILL:
            raise AssertionError(f"server did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM")
    assert alive, f"the server died during the tests (exit {code}): {server.stderr_tail()}"
    assert code == 0, f"unclean exit {code} after SIGTERM: {server.stderr_tail()}"


def _sdk155_ok(python: Path) -> bool:
    if not (python.exists() and (SDK155_VENV / ".installed").exists()):
        return False
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, retab; print(m.version('retab'))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return probe.returncode == 0 and probe.stdout.strip() == SDK155_VERSION


@pytest.fixture(scope="session")
def sdk155_python() -> Path:
    """The python of a separate venv with retab==0.0.155, built once and cached under .cache/."""
    python = SDK155_VENV / "bin" / "python"
    if _sdk155_ok(python):
        return python
    # `.installed` is written last, so a half-built venv (interrupted install) is rebuilt, not trusted.
    shutil.rmtree(SDK155_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(SDK155_VENV)], check=True, timeout=300)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"retab=={SDK155_VERSION}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if pip.returncode != 0:
        shutil.rmtree(SDK155_VENV, ignore_errors=True)
        pytest.skip(f"pip could not install retab=={SDK155_VERSION} (no package index?): {pip.stderr[-800:]}")
    (SDK155_VENV / ".installed").write_text(SDK155_VERSION + "\n")
    if not _sdk155_ok(python):
        pytest.fail(f"the venv at {SDK155_VENV} does not import retab {SDK155_VERSION}")
    return python
