"""The exception tree. Each class carries an HTTP status and a stable error code.

One middleware (api/middleware.py) renders them as the Retab envelope
`{"detail": {"code", "message", "details"}}`; nothing else formats errors.
"""

from __future__ import annotations

import logging
import time
from typing import Any


class OrchestratorError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}

    def envelope(self) -> dict[str, Any]:
        return {"detail": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(OrchestratorError):
    status = 400
    code = "bad_request"


class Unauthorized(OrchestratorError):
    status = 401
    code = "unauthorized"


class Forbidden(OrchestratorError):
    status = 403
    code = "forbidden"


class NotFound(OrchestratorError):
    status = 404
    code = "not_found"


class MethodNotAllowed(OrchestratorError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(OrchestratorError):
    status = 408
    code = "request_timeout"


class Conflict(OrchestratorError):
    status = 409
    code = "conflict"


class Gone(OrchestratorError):
    status = 410
    code = "gone"


class PayloadTooLarge(OrchestratorError):
    status = 413
    code = "payload_too_large"


class Unprocessable(OrchestratorError):
    status = 422
    code = "validation_error"


class StoreError(OrchestratorError):
    """A database that cannot be used (e.g. written by a newer version)."""

    status = 500
    code = "store_error"


class StorageFull(StoreError):
    """The store cannot write: its disk (or its quota) is full. Nothing was written; runs pause and go on
    by themselves once writes succeed again."""

    status = 507
    code = "storage_full"


class NotImplementedRoute(OrchestratorError):
    """A route of the Retab API this server does not serve (README, "Not served")."""

    status = 501
    code = "not_implemented"


class RateLimitedLog:
    """At most one line per `every_s` for a recurring fault, with how many were left out. A full disk made
    ≈ 1,000 tracebacks (1.6 MB of log) in 30 s, which is its own way to fill the disk."""

    def __init__(self, logger: logging.Logger, every_s: float = 30.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        self._last[key] = now
        suffix = f" ({skipped} more since the last report)" if skipped else ""
        self.logger.warning(message + suffix, *args)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
        self._skipped.pop(key, None)
