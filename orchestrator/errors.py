"""The exception tree. Each class carries an HTTP status and a stable error code.

One middleware (api/middleware.py) renders them as the Retab envelope
`{"detail": {"code", "message", "details"}}`; nothing else formats errors.
"""

from __future__ import annotations

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


class NotFound(OrchestratorError):
    status = 404
    code = "not_found"


class MethodNotAllowed(OrchestratorError):
    status = 405
    code = "method_not_allowed"


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


class NotImplementedRoute(OrchestratorError):
    """A route of the Retab API this server does not serve (README, "Not served")."""

    status = 501
    code = "not_implemented"
