"""Validation failures as the API reports them: one 422 shape for bodies, assertions and block configs."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from orchestrator.errors import Unprocessable
from orchestrator.wire.blocks import BlockConfigError, validate_block_config
from orchestrator.wire.conditions import validate_assertion


def validation_error(exc: ValidationError, where: str = "body") -> Unprocessable:
    errors = [
        {"loc": [where, *[str(p) for p in e["loc"]]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False)
    ]
    first = errors[0] if errors else {"loc": [where], "msg": "invalid"}
    return Unprocessable(f"Invalid request: {'.'.join(first['loc'])}: {first['msg']}", details={"errors": errors})


def checked_assertion(raw: dict[str, Any]) -> dict[str, Any]:
    """The normalised assertion to store, or a 422 naming what is wrong with it."""
    try:
        return validate_assertion(raw)
    except ValidationError as exc:
        raise validation_error(exc, "assertion") from exc


def checked_block_config(block_type: str, config: dict[str, Any]) -> None:
    """`wire.blocks.validate_block_config`, failing with a 422."""
    try:
        validate_block_config(block_type, config)
    except BlockConfigError as exc:
        if exc.validation is not None:
            raise validation_error(exc.validation, "config") from exc
        raise Unprocessable(exc.message, details={"errors": exc.errors}) from exc
