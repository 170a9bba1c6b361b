"""A real `orchestrator serve` process per test module, and a helper that runs the CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ServerProcess, start_server
from tests.serverproc import clean_env as clean_env  # re-exported: the CLI tests use it too

KEY = "cli-test-key"
START_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


@dataclass
class Server:
    db: Path
    demo: bool = True
    running: ServerProcess | None = None

    @property
    def url(self) -> str:
        assert self.running is not None, "the server is not started"
        return self.running.base_url

    def start(self) -> Server:
        self.running = start_server(
            self.db, api_key=KEY, demo=self.demo, stderr=self.db.parent / "server.log", start_timeout=START_TIMEOUT_S
        )
        return self

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop(timeout=15)
        self.running = None

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
