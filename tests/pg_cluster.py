"""A throwaway PostgreSQL cluster for the tests (and the README's demonstration): `initdb` in a temporary
folder, one server on a loopback port and a private socket folder, stopped and deleted at the end.

Nothing depends on a system service: the binaries are found under /usr/lib/postgresql/*/bin (Debian's
`postgresql` package, which scripts/test installs when missing), `pg_config --bindir` or the PATH.
`initdb` refuses to run as root, so as root the cluster runs as the `postgres` user (`runuser`), in a
folder that user owns. Durability is off (fsync, synchronous_commit, full_page_writes): a test cluster
is thrown away, and this keeps a test database's creation and every commit cheap.

Each test gets a fresh database copied from a template that already holds the current schema
(`CREATE DATABASE … TEMPLATE`), which takes milliseconds instead of applying every migration again.
Synchronous on purpose (subprocess + asyncpg in a private event loop): fixtures of any scope call it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

TEMPLATE = "orch_template"
SUPERUSER = "postgres"
OWNER = "owner.pid"  # the pid of the process that started the cluster: its clusters outlive it only by accident


def find_bindir() -> Path | None:
    """The folder of initdb/pg_ctl/postgres: the newest /usr/lib/postgresql/*/bin, else pg_config's, else PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    if candidates:
        return Path(candidates[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
            if (Path(out) / "initdb").exists():
                return Path(out)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse root: as root, run them as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Cluster:
    bindir: Path
    root: Path  # holds data/ and the socket; deleted by stop()
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement on the maintenance database, from sync code or from inside an event loop."""

        async def run() -> None:
            conn = await asyncpg.connect(self.url(), timeout=30)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        _in_thread(run)

    def create_database(self, name: str | None = None, *, template: str | None = TEMPLATE) -> str:
        """A fresh database (a copy of the migrated template unless `template` is None); returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        tpl = f" TEMPLATE {template}" if template else ""
        # FILE_COPY: a small template is copied as files, faster than WAL_LOG's page-by-page copy.
        strategy = " STRATEGY FILE_COPY" if template else ""
        self.admin(f'CREATE DATABASE "{name}"{tpl}{strategy}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def make_template(self) -> None:
        """The template: an empty database migrated by the current store (then no connection may stay)."""
        from orchestrator.store.postgres import PostgresStore

        url = self.create_database(TEMPLATE, template=None)

        async def migrate() -> None:
            store = PostgresStore(url)
            await store.open()
            await store.close()

        _in_thread(migrate)

    def stop(self) -> None:
        subprocess.run(
            _as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(bindir: Path) -> None:
    """Stop and delete the clusters of test sessions that died without stopping theirs (a killed pytest)."""
    for root in Path(tempfile.gettempdir()).glob("orch-pg-*"):
        try:
            owner = int((root / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            Cluster(bindir, root, 0).stop()


def start_cluster(*, template: bool = True) -> Cluster:
    """initdb + start on a free loopback port; raises RuntimeError when PostgreSQL is not installed."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH)")
    reap_orphans(bindir)
    root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    (root / OWNER).write_text(str(os.getpid()))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    try:
        subprocess.run(
            _as_owner(
                [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        for _ in range(5):  # a free port may be taken between the probe and the bind: try another
            port = _free_port()
            opts = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
                " -c shared_buffers=64MB"
            )
            pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60"]
            started = subprocess.run(
                _as_owner([*pg_ctl, "start"]),
                capture_output=True,
                text=True,
                check=False,
                timeout=90,
            )
            if started.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{_tail(root / 'log')}")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {exc.stderr}") from exc
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    cluster = Cluster(bindir, root, port)
    if template:
        try:
            cluster.make_template()
        except BaseException:
            cluster.stop()
            raise
    return cluster


def _in_thread(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run(fn()) in a thread of its own: callers may be inside a running event loop (async fixtures)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, fn()).result()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    try:
        yield c
    finally:
        c.stop()


if __name__ == "__main__":  # `python -m tests.pg_cluster`: a cluster for trying things by hand (Ctrl-C stops it)
    c = start_cluster(template=False)
    print(f"PostgreSQL running: {c.url()}  (data in {c.root}; Ctrl-C to stop and delete)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
