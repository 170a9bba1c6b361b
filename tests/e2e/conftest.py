"""End-to-end fixtures: the REAL server process, and a cached venv holding retab==0.0.155.

`live_server` starts `python -m orchestrator serve --port 0`, reads the bound URL from stdout and,
at teardown, sends SIGTERM and asserts a clean exit (code 0). `sdk155_python` is the interpreter of
a separate venv (`.cache/sdk155-venv` under the repo) with the last SDK that has `workflows.tests`.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SDK155_VENV = REPO / ".cache" / "sdk155-venv"
SDK155_VERSION = "0.0.155"
API_KEY = "k"
START_TIMEOUT_S = 60.0


@dataclass
class LiveServer:
    base_url: str
    api_key: str
    proc: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)

    def stderr_tail(self, path: Path) -> str:
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _read_until_listening(proc: subprocess.Popen[str], deadline: float) -> tuple[str, list[str]]:
    """Wait (on the pipe, not on a clock tick) for `orchestrator listening on URL`."""
    assert proc.stdout is not None
    lines: list[str] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"server did not report its URL; stdout so far: {lines}")
            if not sel.select(timeout=left):
                continue
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited with {proc.wait()} before listening; stdout: {lines}")
            lines.append(line.rstrip("\n"))
            if line.startswith("orchestrator listening on "):
                return line.split("orchestrator listening on ", 1)[1].strip(), lines
    finally:
        sel.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("live")
    stderr_path = tmp / "server.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "RETAB_"))}
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--db",
                str(tmp / "live.db"),
                "--api-key",
                API_KEY,
                "--no-demo",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )
        try:
            url, lines = _read_until_listening(proc, time.monotonic() + START_TIMEOUT_S)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        server = LiveServer(base_url=url, api_key=API_KEY, proc=proc, stdout=lines)

        def drain() -> None:  # keep the pipe from filling; the server prints little after start-up
            assert proc.stdout is not None
            for line in proc.stdout:
                server.stdout.append(line.rstrip("\n"))

        threading.Thread(target=drain, daemon=True).start()
        try:
            yield server
        finally:
            alive = proc.poll() is None
            if alive:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("server did not exit within 30 s of SIGTERM") from None
    assert alive, f"the server died during the tests (exit {code}): {server.stderr_tail(stderr_path)}"
    assert code == 0, f"unclean exit {code} after SIGTERM: {server.stderr_tail(stderr_path)}"


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
