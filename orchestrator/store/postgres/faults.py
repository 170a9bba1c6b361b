"""PostgreSQL's "disk full" (SQLSTATE 53100, e.g. `could not extend file`) as the API reports it:
`storage_full` (507), logged once per 30 s, never a 500 with a traceback per request."""

from __future__ import annotations

import logging
import time

from orchestrator.errors import RateLimitedLog, StorageFull

log = logging.getLogger("orchestrator.store")


class Faults:
    def __init__(self, where: str) -> None:
        self.where = where
        self.full_since: float | None = None
        self._log = RateLimitedLog(log)

    def full(self, exc: Exception) -> StorageFull:
        if self.full_since is None:
            self.full_since = time.monotonic()
        self._log.warning("full", "storage full: a write to %s was refused (%s)", self.where, exc)
        return StorageFull(
            f"The disk of the database {self.where} is full: nothing was written. Free some space; runs go on by"
            " themselves once writes succeed again.",
            details={"store": self.where},
        )

    def wrote(self) -> None:
        if self.full_since is not None:
            log.warning(
                "storage: writes to %s succeed again after %.0f s", self.where, time.monotonic() - self.full_since
            )
            self.full_since = None
            self._log.forget("full")
