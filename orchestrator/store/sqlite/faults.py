"""SQLite's failures as the API reports them: a full disk is `storage_full` (507), a read-only or corrupt
file a `store_error` that says which, never a bare 500 with a traceback per request."""

from __future__ import annotations

import logging
import sqlite3
import time

from orchestrator.errors import OrchestratorError, RateLimitedLog, StorageFull, StoreError

log = logging.getLogger("orchestrator.store")
# Primary result codes (the low byte of an extended code): https://sqlite.org/rescode.html
FULL, READONLY, CORRUPT, NOTADB, CANTOPEN, IOERR = 13, 8, 11, 26, 14, 10


def primary(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def describe(path: str, exc: sqlite3.Error) -> OrchestratorError | None:
    """The error to raise for `exc`, or None for one that is not about the file (a bug: let it be seen)."""
    code = primary(exc)
    if code == FULL or "disk is full" in str(exc):
        return StorageFull(
            f"The disk of the database {path} is full: nothing was written. Free some space; runs go on by"
            " themselves once writes succeed again.",
            details={"store": path},
        )
    if code == READONLY:
        return StoreError(
            f"The database {path} is read-only: {exc}. Check the file's permissions and its filesystem.",
            code="store_read_only",
            details={"store": path},
        )
    if code in (CORRUPT, NOTADB):
        return StoreError(
            f"The database {path} is damaged ({exc}). Restore it from a backup, or start with another --db.",
            code="store_corrupt",
            details={"store": path},
        )
    if code in (CANTOPEN, IOERR):
        return StoreError(f"The database {path} cannot be used: {exc}", code="store_unavailable", details={})
    return None


class Faults:
    """One store's write health: when writes started failing for lack of space, logged once per 30 s."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.full_since: float | None = None
        self._log = RateLimitedLog(log)

    def translate(self, exc: sqlite3.Error) -> OrchestratorError | None:
        mapped = describe(self.path, exc)
        if isinstance(mapped, StorageFull):
            if self.full_since is None:
                self.full_since = time.monotonic()
            self._log.warning("full", "storage full: a write to %s was refused (%s)", self.path, exc)
        elif mapped is not None:
            self._log.warning(mapped.code, "%s", mapped.message)
        return mapped

    def wrote(self) -> None:
        if self.full_since is not None:
            log.warning(
                "storage: writes to %s succeed again after %.0f s", self.path, time.monotonic() - self.full_since
            )
            self.full_since = None
            self._log.forget("full")
