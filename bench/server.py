"""A real server subprocess, its memory counters, and a small HTTP driver for experiment runs."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
from anyio.abc import Process

from orchestrator.core.lifecycle import TERMINAL
from orchestrator.demo import MINIMAL_INVOICE_SCHEMA

API_KEY = "bench-key"
SCHEMA = MINIMAL_INVOICE_SCHEMA
ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """The server or a request misbehaved: the measurement is void, not slow."""


def _proc_status(pid: int, field: str) -> int:
    """A `kB` field of /proc/PID/status (VmHWM = peak RSS, VmRSS = current), in kB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProc:
    proc: Process
    url: str
    workdir: Path
    workers: int = 0
    worker_pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_mb(self) -> float:
        return _proc_status(self.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return _proc_status(self.pid, "VmRSS") / 1024

    def reset_peak(self) -> None:
        """Reset VmHWM to the current RSS (`5` in clear_refs), to measure one phase's peak."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid) + sum(cpu_seconds(pid) for pid in self.worker_pids)

    async def find_workers(self, api: Api, expected: int) -> list[int]:
        """The runner processes' pids, from `GET /v1/workers`, once `expected` of them beat (so their
        memory and CPU can be read from /proc like the API process's)."""
        with anyio.fail_after(60):
            while True:
                rows = (await api.call("GET", "/v1/workers"))["data"]
                pids = sorted({int(w["pid"]) for w in rows if w.get("status") != "stopped"})
                if len(pids) >= expected:
                    self.worker_pids = pids
                    return pids
                await anyio.sleep(0.05)

    def workers_peak_rss_mb(self) -> float:
        """The largest peak RSS among the runner processes (each holds its own claims)."""
        return max((_proc_status(pid, "VmHWM") / 1024 for pid in self.worker_pids), default=0.0)

    def reset_workers_peak(self) -> None:
        for pid in self.worker_pids:
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.workdir / "server.err").read_text().splitlines()[-lines:])
        except OSError:
            return ""


@asynccontextmanager
async def running_server(
    max_concurrency: int = 64, extra: tuple[str, ...] = (), db: str | None = None, workers: int | None = None
) -> AsyncIterator[ServerProc]:
    """Start `python -m orchestrator serve` on `db` (default: a fresh SQLite file in a temp dir), with
    `workers` runner processes (default: serve's own, one per core); stop it with SIGTERM. With workers
    given, wait until they all beat, so a measurement never times their start."""
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        workdir = Path(tmp)
        out = (workdir / "server.out").open("wb")
        err = (workdir / "server.err").open("wb")
        cmd = [
            sys.executable,
            "-m",
            "orchestrator",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            db or str(workdir / "bench.db"),
            "--api-key",
            API_KEY,
            "--no-demo",
            "--max-concurrency",
            str(max_concurrency),
            "--max-body-bytes",
            str(256 * 1024 * 1024),
            "--log-level",
            "warning",
            *(("--workers", str(workers)) if workers is not None else ()),
            *extra,
        ]
        proc = await anyio.open_process(cmd, stdout=out, stderr=err, cwd=ROOT)
        try:
            url = ""
            with anyio.fail_after(60):
                while not url:
                    if proc.returncode is not None:
                        raise BenchError("server exited at start:\n" + (workdir / "server.err").read_text()[-2000:])
                    for line in (workdir / "server.out").read_text().splitlines():
                        if line.startswith("orchestrator listening on "):
                            url = line.split()[-1]
                    await anyio.sleep(0.05)
            srv = ServerProc(proc, url, workdir, workers or 0)
            if workers:
                async with aiohttp.ClientSession() as session:
                    await srv.find_workers(Api(url, session), workers)
            yield srv
        finally:
            with anyio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    with anyio.move_on_after(30):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
                await proc.aclose()
            out.close()
            err.close()


def documents(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "handle_inputs": {
                "input-json-0": {
                    "type": "json",
                    "data": {"invoice_number": f"INV-{offset + i:06d}", "vendor": "ACME Inc", "total": (i % 997) * 1.5},
                }
            }
        }
        for i in range(n)
    ]


class Api:
    """JSON over one aiohttp session, authenticated, raising BenchError on an unexpected status."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base = base_url.rstrip("/")
        self.session = session
        self.headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        data = orjson.dumps(body) if body is not None else None
        async with self.session.request(method, self.base + path, data=data, headers=self.headers) as resp:
            raw = await resp.read()
            if resp.status != expect:
                raise BenchError(f"{method} {path} → {resp.status}: {raw[:500]!r}")
            return orjson.loads(raw) if raw else None

    async def experiment(self, n_docs: int, *, n_consensus: int = 5, simulation: dict[str, Any] | None = None) -> str:
        """A workflow + extract block on the simulated engine + an experiment of `n_docs` JSON documents."""
        wf = await self.call("POST", "/v1/workflows", {"name": "bench", "project_id": "bench"}, 201)
        config: dict[str, Any] = {"model": "simulated", "json_schema": SCHEMA}
        if simulation:
            config["simulation"] = simulation
        block = await self.call(
            "POST", "/v1/workflows/blocks", {"workflow_id": wf["id"], "type": "extract", "config": config}, 201
        )
        exp = await self.call(
            "POST",
            "/v1/workflows/experiments",
            {
                "workflow_id": wf["id"],
                "block_id": block["id"],
                "name": f"bench {n_docs}",
                "n_consensus": n_consensus,
                "documents": documents(n_docs),
            },
            201,
        )
        return str(exp["id"])

    async def start_run(self, experiment_id: str) -> str:
        run = await self.call("POST", "/v1/workflows/experiments/runs", {"experiment_id": experiment_id}, 201)
        return str(run["id"])

    async def run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/v1/workflows/experiments/runs/{run_id}"))

    async def completion_times(self, run_id: str) -> list[float]:
        """Every child's `completed_at` (epoch seconds), sorted: the commit-time proxy for latency."""
        from datetime import datetime

        out: list[float] = []
        after: str | None = None
        while True:
            path = f"/v1/workflows/experiments/results?run_id={run_id}&limit=1000"
            page = await self.call("GET", path + (f"&after={after}" if after else ""))
            for r in page["data"]:
                ts = (r.get("timing") or {}).get("completed_at")
                if ts:
                    out.append(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
            after = page["list_metadata"].get("after")
            if not after or not page["data"]:
                break
        out.sort()
        return out


def run_status(run: dict[str, Any]) -> str:
    lifecycle = run.get("lifecycle")
    if isinstance(lifecycle, dict):
        return str(lifecycle.get("status"))
    return str(run.get("status"))


def now() -> float:
    return time.perf_counter()


async def wait_run(api: Api, run_id: str, timeout_s: float = 900.0) -> tuple[dict[str, Any], str]:
    """Await a run's end through its SSE feed (the orchestrator's own client); poll GET if there is no feed.

    Returns the final run JSON and how it was awaited ("feed" or "poll").
    """
    from orchestrator.cli.client import Client, ClientError

    with anyio.fail_after(timeout_s):
        try:
            async with Client(api.base, API_KEY, idle_timeout_s=timeout_s) as client:
                async for event in client.run_events(run_id, mode="progress"):
                    if event.get("type") == "run.finished":
                        break
            return await api.run(run_id), "feed"
        except ClientError as exc:
            if exc.status != 404:
                raise
        while True:
            run = await api.run(run_id)
            if run_status(run) in TERMINAL:
                return run, "poll"
            await anyio.sleep(0.02)
