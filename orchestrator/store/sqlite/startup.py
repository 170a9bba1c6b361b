"""What a server checks of its SQLite file before it serves: that it is a readable, writable, undamaged
database, and that no other server uses it.

A second server on the same file re-queued the first one's 165 in-flight children, which then ran
twice. The lock is an exclusive `flock` on `FILE.lock`, held by the API process for its life (the
kernel drops it when the process dies, however it dies); the file names the holder for the message.
The server's own worker processes, and `orchestrator worker` started by hand, open the database
without it: they are what the server coordinates through the store.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import sys
import time
from contextlib import suppress

from orchestrator.errors import StoreError
from orchestrator.store.sqlite.faults import describe


def check_file(conn: sqlite3.Connection, path: str) -> None:
    """`PRAGMA quick_check` and a write that is rolled back: a corrupt, truncated or read-only file is
    refused now, with what to do, instead of showing up later as 500s."""
    try:
        problems = [str(next(iter(r.values()))) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise StoreError(
                f"The database {path} is damaged ({'; '.join(problems)}). Restore it from a backup, or start"
                " with another --db.",
                code="store_corrupt",
            )
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS temp.write_probe (x INTEGER)")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise describe(path, exc) or StoreError(f"The database {path} cannot be used: {exc}") from exc


class ServerLock:
    """The exclusive claim of one server on one SQLite file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path + ".lock"
        self._fd: int | None = None

    def acquire(self, database: str) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(
                f"The database {database} cannot be written: {exc.strerror} ({self.path}). Its folder must be"
                " writable (SQLite keeps its journal and this server's lock beside the file).",
                code="store_read_only",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise StoreError(
                f"Another orchestrator server is using {database}: {holder}. Stop it first, or give this one"
                " another --db. (Workers of that server, or `orchestrator worker`, are what may share the file.)",
                code="store_locked",
            ) from None
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv[:6]),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock


def _read(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "a process that has not said who it is"
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')} ({info.get('command')})"
