"""What the OpenAPI document says of each operation beyond its path: the statuses it answers with, the
query parameters it requires, and the type of its body. Read from the handler's own code (and the
helpers of its module it calls), so the document cannot drift from what the handler does."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

_CALLS = re.compile(r"\b(_[a-z]\w*)\(")
_REQUIRED = re.compile(r"q_required\(request, \"(\w+)\"\)")
STREAMS = {"text/event-stream"}


def _source(fn: Callable[..., Any], depth: int = 2) -> str:
    """The handler's source and that of the module's private helpers it calls (two levels)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        return ""
    if depth:
        module = inspect.getmodule(fn)
        for name in dict.fromkeys(_CALLS.findall(text)):
            helper = getattr(module, name, None)
            if inspect.isfunction(helper) and helper is not fn:
                text += _source(helper, depth - 1)
    return text


def success_statuses(fn: Callable[..., Any]) -> list[str]:
    text = _source(fn)
    found = [
        code for code, mark in (("201", ", 201)"), ("204", "no_content()"), ("303", "HTTPSeeOther")) if mark in text
    ]
    return found or ["200"]


def required_query(fn: Callable[..., Any]) -> list[str]:
    """Parameters required on every call (a `q_required` under a condition, e.g. per view, is not)."""
    lines = [line for line in _source(fn).splitlines() if " if " not in line]
    return list(dict.fromkeys(_REQUIRED.findall("\n".join(lines))))


def responses(fn: Callable[..., Any], path: str) -> dict[str, Any]:
    """Every status the operation may answer with, each with its content type."""
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    out: dict[str, Any] = {}
    for status in success_statuses(fn):
        if status == "204" or status == "303":
            out[status] = {"description": "No Content" if status == "204" else "See Other"}
        elif path.endswith("/download"):
            out[status] = {"description": "The file's bytes", "content": {"*/*": {}}}
        elif path.endswith("/events"):
            out[status] = {"description": "Server-sent events", "content": {"text/event-stream": {}}}
        else:
            out[status] = {"description": "OK", "content": {"application/json": {}}}
    out["4XX"] = {"description": "The Retab error envelope", "content": envelope}
    out["507"] = {"description": "The store's disk is full (storage_full): nothing was written", "content": envelope}
    return out


ERROR_ENVELOPE = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}},
        }
    },
}
