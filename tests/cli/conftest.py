"""A real `orchestrator serve` process per test module, and a helper that runs the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

KEY = "cli-test-key"
START_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any ORCHESTRATOR_* / RETAB_* setting that could leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "RETAB_"))}
    env.update(extra)
    return env


@dataclass
class Server:
    db: Path
    demo: bool = True
    url: str = ""
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)

    def start(self) -> Server:
        args = [sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--db", str(self.db), "--api-key", KEY]
        if not self.demo:
            args.append("--no-demo")
        log = (self.db.parent / "server.log").open("a")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=clean_env())
        log.close()
        out: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                out.put(line)

        threading.Thread(target=pump, daemon=True).start()
        while not any(line.startswith("SDK:") for line in self.lines):
            try:
                self.lines.append(out.get(timeout=START_TIMEOUT_S))
            except queue.Empty:
                self.stop()
                raise AssertionError(f"server did not start: {self.lines}") from None
        self.url = next(line.split()[-1] for line in self.lines if line.startswith("orchestrator listening on"))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        self.lines = []

    def http(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        from urllib.parse import urlencode

        url = self.url + path + ("?" + urlencode(params) if params else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {KEY}"})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def workflows(self) -> list[dict[str, Any]]:
        return list(self.http("GET", "/v1/workflows", params={"limit": 1000})["data"])

    def demo_workflow(self) -> dict[str, Any]:
        (wf,) = [w for w in self.workflows() if w["name"] == "Invoice demo"]
        return wf


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*args: str, server: Server | None = None, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """Run `python -m orchestrator ARGS` (with --url/--api-key for `server` if given)."""
    argv = [sys.executable, "-m", "orchestrator", *args]
    if server is not None:
        argv += ["--url", server.url, "--api-key", KEY]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=cwd, env=clean_env(**(env or {})), check=False
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("demo") / "orchestrator.db").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("bare") / "orchestrator.db", demo=False).start()
    yield server
    server.stop()
