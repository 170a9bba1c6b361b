"""`scripts/bench --db postgresql://…`: the PostgreSQL store across processes, next to SQLite.

- throughput with 1, 2 and 4 worker processes (`serve --workers W`) at N documents, on SQLite and on
  PostgreSQL in the same invocation;
- the feed across nodes: a subscriber on API node A (`serve --api-only`), the run executed by the
  workers of node B (`serve --workers 2`); latency is `arrival − ts`, `ts` being the worker's commit
  stamp read back from the table by node A (one machine, one clock);
- kill -9 of a worker mid-run (an API node and two `orchestrator worker` processes): the time until
  the dead worker's children are released, and until all of them are claimed again (or done), then a
  check that every child has exactly one result, one artifact and one `child.finished` event.

Each measurement gets a fresh database on the server of `--db` (created and dropped here; the URL's
user needs CREATEDB).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import anyio
import asyncpg
import orjson

from bench.latency import _lines
from bench.server import API_KEY, ROOT, Api, BenchError, running_server, wait_run
from bench.stats import Scale, median, ratio
from bench.throughput import one_run

CLAIMED = ("queued", "running")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.asynccontextmanager
async def fresh_database(base: str) -> AsyncIterator[str]:
    """A new empty database on the server of `base`; dropped (with its connections) on the way out."""
    name = f"orch_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_db(base, name)
    finally:
        with anyio.CancelScope(shield=True):
            admin = await asyncpg.connect(base)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


@contextlib.asynccontextmanager
async def _store_db(kind: str, base: str) -> AsyncIterator[str | None]:
    if kind == "postgres":
        async with fresh_database(base) as url:
            yield url
    else:
        yield None  # running_server's own fresh SQLite file


async def _throughput(scale: Scale, base: str, log: Any) -> list[dict[str, Any]]:
    rows = []
    for workers in scale.cluster_workers:
        for kind in ("sqlite", "postgres"):
            reps = []
            for rep in range(scale.reps):
                async with (
                    _store_db(kind, base) as db,
                    running_server(scale.concurrency, ("--workers", str(workers)), db=db) as srv,
                    aiohttp.ClientSession() as session,
                ):
                    r = await one_run(srv, Api(srv.url, session), scale.cluster_n, scale.passes)
                reps.append(r)
                log(
                    f"  cluster throughput {kind} workers={workers} N={scale.cluster_n} rep {rep + 1}/{scale.reps}:"
                    f" {r['passes_per_s']:,.0f} passes/s ({r['seconds']:.2f} s)"
                )
            rows.append(
                {
                    "store": kind,
                    "workers": workers,
                    "n_docs": scale.cluster_n,
                    "passes_per_s": median([r["passes_per_s"] for r in reps]),
                    "seconds": median([r["seconds"] for r in reps]),
                    "reps": [r["passes_per_s"] for r in reps],
                }
            )
    return rows


async def _cross_node_latency(scale: Scale, base: str, log: Any) -> dict[str, Any]:
    reps = []
    for rep in range(scale.reps):
        async with (
            fresh_database(base) as db,
            running_server(scale.concurrency, ("--api-only",), db=db) as node_a,
            running_server(scale.concurrency, ("--workers", "2"), db=db) as node_b,
            aiohttp.ClientSession() as session,
        ):
            api_b = Api(node_b.url, session)
            exp = await api_b.experiment(scale.latency_children, n_consensus=scale.passes)
            proc = await anyio.open_process(
                [sys.executable, "-m", "bench.subscribers", node_a.url, API_KEY, "sse", "1", "120", "all"], cwd=ROOT
            )
            async with proc:
                assert proc.stdout is not None and proc.stdin is not None
                lines = _lines(proc.stdout)
                with anyio.fail_after(120):
                    if (await anext(lines)).strip() != "ready":
                        raise BenchError("the subscriber did not start")
                run_id = await api_b.start_run(exp)
                await proc.stdin.send((run_id + "\n").encode())
                with anyio.fail_after(scale.latency_timeout_s + 120):
                    summary = orjson.loads(await anext(lines))
                await proc.wait()
        reps.append(summary)
        log(
            f"  cross-node feed rep {rep + 1}/{scale.reps}: p50 {summary['ts_p50_ms']:.1f} ms,"
            f" p99 {summary['ts_p99_ms']:.1f} ms, events {summary['events']:,}, finished {summary['finished']}/1"
        )
    return {
        "children": scale.latency_children,
        "p50_ms": median([r["ts_p50_ms"] for r in reps]),
        "p99_ms": median([r["ts_p99_ms"] for r in reps]),
        "max_ms": median([r["ts_max_ms"] for r in reps]),
        "events": median([r["events"] for r in reps]),
        "all_finished": all(r["finished"] == 1 for r in reps),
    }


@contextlib.asynccontextmanager
async def _workers(db: str, count: int, workdir: Path, *flags: str) -> AsyncIterator[list[Any]]:
    procs = []
    try:
        for i in range(count):
            err = (workdir / f"worker{i}.err").open("wb")
            cmd = [sys.executable, "-m", "orchestrator", "worker", "--db", db, "--log-level", "warning", *flags]
            procs.append(await anyio.open_process(cmd, stdout=err, stderr=err, cwd=ROOT))
        yield procs
    finally:
        with anyio.CancelScope(shield=True):
            for p in procs:
                if p.returncode is None:
                    p.terminate()
            for p in procs:
                with anyio.move_on_after(20):
                    await p.wait()
                if p.returncode is None:
                    p.kill()
                    await p.wait()


async def _held(conn: Any, run_id: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT lease_owner, count(*) AS k FROM children WHERE run_id = $1 AND status = ANY($2::text[])"
        " AND lease_owner IS NOT NULL GROUP BY lease_owner",
        run_id,
        list(CLAIMED),
    )
    return {r["lease_owner"]: int(r["k"]) for r in rows}


async def _kill9_once(scale: Scale, base: str, workdir: Path) -> dict[str, Any]:
    flags = ("--max-concurrency", "16", "--heartbeat-s", "1", "--lease-s", "10", "--poll-s", "0.25")
    async with (
        fresh_database(base) as db,
        running_server(16, ("--api-only",), db=db) as node,
        _workers(db, 2, workdir, *flags) as procs,
        aiohttp.ClientSession() as session,
    ):
        api = Api(node.url, session)
        conn = await asyncpg.connect(db)
        try:
            exp = await api.experiment(scale.kill_n, n_consensus=scale.passes, simulation={"latency_ms": 100})
            run_id = await api.start_run(exp)
            with anyio.fail_after(120):
                while True:  # both workers hold children, and some are done
                    held = await _held(conn, run_id)
                    done = await conn.fetchval(
                        "SELECT count(*) FROM children WHERE run_id = $1 AND status = 'completed'", run_id
                    )
                    if len(held) == 2 and done >= scale.kill_n // 10:
                        break
                    await anyio.sleep(0.05)
            pids = {r["id"]: r["pid"] for r in await conn.fetch("SELECT id, pid FROM workers")}
            victim_id = max(held, key=lambda w: held[w])
            victim = next(p for p in procs if p.pid == pids[victim_id])
            victim.kill()  # SIGKILL: no release, no last commit
            t0 = time.perf_counter()
            orphans = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM children WHERE run_id = $1 AND lease_owner = $2 AND status = ANY($3::text[])",
                    run_id,
                    victim_id,
                    list(CLAIMED),
                )
            ]
            released_s: float | None = None
            reclaimed_s: float | None = None
            with anyio.fail_after(120):
                while reclaimed_s is None:  # until every orphan is claimed again by the survivor, or done
                    rows = await conn.fetch(
                        "SELECT status, lease_owner FROM children WHERE id = ANY($1::text[])", orphans
                    )
                    if released_s is None and all(r["lease_owner"] != victim_id for r in rows):
                        released_s = time.perf_counter() - t0
                    if all(
                        r["status"] in ("completed", "error")
                        or (r["status"] in CLAIMED and r["lease_owner"] not in (None, victim_id))
                        for r in rows
                    ):
                        reclaimed_s = time.perf_counter() - t0
                    await anyio.sleep(0.02)
            run, _ = await wait_run(api, run_id, timeout_s=600)
            check = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM children WHERE run_id = $1 AND status = 'completed') AS completed,"
                " (SELECT count(*) FROM artifacts WHERE run_id = $1) AS artifacts,"
                " (SELECT count(DISTINCT child_id) FROM artifacts WHERE run_id = $1) AS artifact_children,"
                " (SELECT count(*) FROM events WHERE run_id = $1 AND type = 'child.finished') AS finished_events,"
                " (SELECT count(DISTINCT child_id) FROM events WHERE run_id = $1 AND type = 'child.finished')"
                " AS finished_children, (SELECT c_completed FROM runs WHERE id = $1) AS counted,"
                " (SELECT count(*) FROM children WHERE run_id = $1 AND attempt > 0) AS rerun",
                run_id,
            )
        finally:
            await conn.close()
    n = scale.kill_n
    exactly_once = (
        check["completed"] == n
        and check["artifacts"] == check["artifact_children"] == n
        and check["finished_events"] == check["finished_children"] == n
        and check["counted"] == n
    )
    return {
        "children": n,
        "orphans": len(orphans),
        "released_s": released_s,
        "reclaimed_s": reclaimed_s,
        "rerun": int(check["rerun"]),
        "status": run.get("lifecycle", {}).get("status"),
        "exactly_once": bool(exactly_once),
        "check": dict(check),
    }


async def _kill9(scale: Scale, base: str, log: Any) -> dict[str, Any]:
    reps = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-kill-") as tmp:
        for rep in range(scale.reps):
            r = await _kill9_once(scale, base, Path(tmp))
            reps.append(r)
            log(
                f"  kill -9 rep {rep + 1}/{scale.reps}: {r['orphans']} children orphaned, released after"
                f" {r['released_s'] or 0:.2f} s, re-claimed after {r['reclaimed_s'] or 0:.2f} s; run {r['status']},"
                f" exactly once: {r['exactly_once']}"
            )
    return {
        "children": scale.kill_n,
        "orphans": median([r["orphans"] for r in reps]),
        "released_s": median([r["released_s"] for r in reps]),
        "reclaimed_s": median([r["reclaimed_s"] for r in reps]),
        "rerun": median([r["rerun"] for r in reps]),
        "exactly_once": all(r["exactly_once"] and r["status"] == "completed" for r in reps),
        "reps": reps,
    }


async def measure(scale: Scale, base: str, log: Any = print) -> dict[str, Any]:
    rows = await _throughput(scale, base, log)
    by = {(r["store"], r["workers"]): r["passes_per_s"] for r in rows}
    for r in rows:
        r["vs_sqlite"] = ratio(r["passes_per_s"], by[("sqlite", r["workers"])])
    parts = urlsplit(base)
    return {
        "db": f"postgresql://{parts.hostname}:{parts.port or 5432}",
        "throughput": rows,
        "cross_node": await _cross_node_latency(scale, base, log),
        "kill9": await _kill9(scale, base, log),
    }
