"""Peers on the same workload: N items × 5 repetitions, an instant fake model, concurrency 64.

Inspect AI (a `Task` with `epochs=5`, `mockllm/model` with `custom_outputs` returning a fixed
completion with usage filled in) and promptfoo (the `echo` provider, `--repeat 5`, `-j 64`, no cache)
are installed on first use into `.cache/peers/` (gitignored), never into the project's venv. Each
runs in its own process; its peak RSS comes from wait4() and its duration from the tool's own clock
where it has one (so interpreter start-up is not counted against it), else from the wall clock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from bench.server import ROOT, Api, running_server
from bench.stats import Scale, median, ratio
from bench.throughput import one_run

PEERS = ROOT / ".cache" / "peers"
INSPECT_VERSION = os.environ.get("BENCH_INSPECT_VERSION", "0.3.285")
# 0.121 is the newest line that runs on Node 20 (0.123 needs Node ≥ 22.22).
PROMPTFOO_VERSION = os.environ.get("BENCH_PROMPTFOO_VERSION", "0.121")
CONTENT = '{"invoice_number": "INV-000001", "vendor": "ACME Inc", "total": 1.5}'

INSPECT_SCRIPT = """
import json, sys, time
from inspect_ai import Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import match
from inspect_ai.solver import generate

N, CONC, LOG_DIR, CONTENT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def output(messages, tools, tool_choice, config):
    # usage filled in, or the mock counts tokens with a tokenizer it would download
    out = ModelOutput.from_content(model="mockllm/model", content=CONTENT)
    out.usage = ModelUsage(input_tokens=20, output_tokens=20, total_tokens=40)
    return out

samples = [Sample(input=f"Extract the invoice INV-{i:06d}", target=CONTENT) for i in range(N)]
task = Task(dataset=MemoryDataset(samples), solver=generate(), scorer=match(), epochs=5)
model = get_model("mockllm/model", custom_outputs=output)
t0 = time.perf_counter()
logs = eval(task, model=model, max_samples=CONC, max_connections=CONC, log_dir=LOG_DIR,
            display="none", log_level="error")
seconds = time.perf_counter() - t0
res = logs[0].results
print(json.dumps({"seconds": seconds, "status": logs[0].status,
                  "completed": res.completed_samples if res else None}))
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 3600) -> dict[str, Any]:
    """Run a command to its end; wall time, exit code, output, and peak RSS of it and its children."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = t0 + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "rc": proc.returncode,
            "wall_s": wall,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace")[-2000:],
        }


def ensure_inspect() -> Path:
    venv = PEERS / "inspect-venv"
    python = venv / "bin" / "python"
    stamp = venv / f".installed-{INSPECT_VERSION}"
    if not stamp.exists():
        PEERS.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"inspect-ai=={INSPECT_VERSION}"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        stamp.touch()
    return python


def ensure_promptfoo() -> Path:
    folder = PEERS / "promptfoo"
    binary = folder / "node_modules" / ".bin" / "promptfoo"
    stamp = folder / f".installed-{PROMPTFOO_VERSION}"
    if not stamp.exists():
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not installed (apt-get install nodejs npm)")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"promptfoo@{PROMPTFOO_VERSION}"],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stamp.touch()
    return binary


def inspect_once(python: Path, n: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-inspect-") as tmp:
        script = Path(tmp) / "peer_inspect.py"
        script.write_text(INSPECT_SCRIPT)
        env = {**os.environ, "INSPECT_LOG_DIR": tmp, "INSPECT_DISPLAY": "none"}
        r = _run([str(python), str(script), str(n), str(concurrency), str(Path(tmp) / "logs"), CONTENT], Path(tmp), env)
    if r["rc"] != 0:
        raise RuntimeError(f"inspect failed ({r['rc']}): {r['stderr'][-500:]}")
    info = json.loads(r["stdout"].strip().splitlines()[-1])
    if info.get("completed") != n * 5:
        raise RuntimeError(f"inspect completed {info.get('completed')} of {n * 5} samples")
    return {"seconds": float(info["seconds"]), "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}


def promptfoo_config(n: int) -> dict[str, Any]:
    return {
        "description": "orchestrator bench",
        "prompts": ["Extract the invoice {{doc}}"],
        "providers": ["echo"],
        "defaultTest": {"assert": [{"type": "contains", "value": "INV-"}]},
        "tests": [{"vars": {"doc": f"INV-{i:06d}"}} for i in range(n)],
    }


def promptfoo_once(binary: Path, n: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-promptfoo-") as tmp:
        config = Path(tmp) / "promptfooconfig.yaml"
        config.write_text(json.dumps(promptfoo_config(n)))  # JSON is YAML
        output = Path(tmp) / "out.json"
        env = {
            **os.environ,
            "PROMPTFOO_CONFIG_DIR": str(Path(tmp) / "home"),
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_DISABLE_SHARING": "1",
            "PROMPTFOO_CACHE_ENABLED": "false",
            "NO_COLOR": "1",
        }
        cmd = [str(binary), "eval", "-c", str(config), "--repeat", "5", "-j", str(concurrency), "--no-cache"]
        cmd += ["--no-progress-bar", "--no-table", "-o", str(output)]
        r = _run(cmd, Path(tmp), env)
        if not output.exists():
            raise RuntimeError(f"promptfoo failed ({r['rc']}): {r['stderr'][-500:]} {r['stdout'][-500:]}")
        data = json.loads(output.read_text())
    results = data.get("results", {})
    rows = results.get("results") or []
    stats = results.get("stats") or {}
    done = int(stats.get("successes", 0)) + int(stats.get("failures", 0)) + int(stats.get("errors", 0)) or len(rows)
    if done != n * 5:
        raise RuntimeError(f"promptfoo ran {done} of {n * 5} evaluations")
    own_ms = stats.get("evaluationDurationMs") or stats.get("durationMs")
    # Its own clock (the evaluation, not Node's start-up); else the wall time less a bare start-up.
    if isinstance(own_ms, int | float) and own_ms > 0:
        seconds = float(own_ms) / 1000
    else:
        seconds = max(1e-3, r["wall_s"] - _run([str(binary), "--version"], PEERS, env)["wall_s"])
    return {"seconds": seconds, "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}


def _version(tool: str) -> str:
    if tool == "inspect":
        return INSPECT_VERSION
    pkg = PEERS / "promptfoo" / "node_modules" / "promptfoo" / "package.json"
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return PROMPTFOO_VERSION


async def _ours(scale: Scale, n: int) -> dict[str, Any]:
    reps = []
    for _ in range(scale.reps):
        async with (
            running_server(scale.concurrency, workers=max(scale.workers)) as srv,
            aiohttp.ClientSession() as session,
        ):
            r = await one_run(srv, Api(srv.url, session), n, scale.passes)
            r["peak_rss_mb"] = max(srv.peak_rss_mb(), r["peak_rss_mb_create"])
            reps.append(r)
    return {
        "tool": "orchestrator (ours)",
        "version": "this tree",
        "n_docs": n,
        "passes_per_s": median([r["passes_per_s"] for r in reps]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in reps]),
        "wall_s": median([r["seconds"] for r in reps]),
        "vs_ours": 1.0,
        "note": f"HTTP-created, awaited on the feed, {max(scale.workers)} workers; API process RSS",
    }


async def measure(scale: Scale, log: Any = print) -> dict[str, Any]:
    n = scale.peers_n
    ours = await _ours(scale, n)
    log(f"  peers: ours {ours['passes_per_s']:,.0f} passes/s, peak RSS {ours['peak_rss_mb']:.0f} MB (N={n:,})")
    rows = [ours]
    for tool, ensure, once in (
        ("inspect", ensure_inspect, inspect_once),
        ("promptfoo", ensure_promptfoo, promptfoo_once),
    ):
        name = {"inspect": "Inspect AI (mockllm)", "promptfoo": "promptfoo (echo)"}[tool]
        try:
            path = await anyio.to_thread.run_sync(ensure)
            reps = []
            for rep in range(scale.reps):
                r = await anyio.to_thread.run_sync(once, path, n, scale.concurrency)
                reps.append(r)
                log(
                    f"  peers: {tool} rep {rep + 1}/{scale.reps}: {n * scale.passes / r['seconds']:,.0f} passes/s,"
                    f" peak RSS {r['peak_rss_mb']:.0f} MB"
                )
            pps = median([n * scale.passes / r["seconds"] for r in reps])
            rows.append(
                {
                    "tool": name,
                    "version": _version(tool),
                    "n_docs": n,
                    "passes_per_s": pps,
                    "peak_rss_mb": median([r["peak_rss_mb"] for r in reps]),
                    "wall_s": median([r["wall_s"] for r in reps]),
                    "vs_ours": ratio(pps, ours["passes_per_s"]),
                    "note": "its eval() time; process RSS" if tool == "inspect" else "its evaluation time; process RSS",
                    "reps": reps,
                }
            )
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            log(f"  peers: {tool} unavailable: {exc}")
            rows.append({"tool": name, "version": _version(tool), "n_docs": n, "note": f"not measured: {exc}"[:200]})
    return {"rows": rows}
