"""Request parsing and response writing shared by every route module."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from orchestrator.api.keys import SETTINGS
from orchestrator.core.enums import lenient_enum
from orchestrator.core.lifecycle import OPEN, TERMINAL
from orchestrator.errors import BadRequest, RequestTimeout, Unprocessable
from orchestrator.ids import iso, parse_iso
from orchestrator.store.records import Page, PageRequest
from orchestrator.wire.limits import MAX_DEPTH, too_deep
from orchestrator.wire.validation import validation_error

M = TypeVar("M", bound=BaseModel)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status, content_type="application/json"
    )


def no_content() -> web.Response:
    return web.Response(status=204)


def body_timeout(request: web.Request) -> RequestTimeout:
    seconds = request.app[SETTINGS].body_timeout_s
    return RequestTimeout(f"The request body did not arrive within {seconds:g} s", details={"timeout_s": seconds})


async def read_body(request: web.Request) -> bytes:
    """The whole body, or 408 when it does not arrive within `body_timeout_s` (a client that sends its
    headers and then nothing, or a byte a minute, must not hold a handler forever)."""
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout_s):
            return await request.read()
    except TimeoutError:
        raise body_timeout(request) from None


def depth_error(where: str = "body") -> Unprocessable:
    return Unprocessable(
        f"JSON nested more than {MAX_DEPTH} levels deep",
        code="json_too_deep",
        details={"errors": [{"loc": [where], "msg": f"nested more than {MAX_DEPTH} levels", "type": "too_deep"}]},
    )


async def raw_json(request: web.Request) -> Any:
    """The JSON body, `{}` for an empty one (the SDK sends Content-Type on bodyless POSTs)."""
    data = await read_body(request)
    if not data.strip():
        return {}
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc).lower():
            raise depth_error() from None
        raise BadRequest(f"Malformed JSON body: {exc}", code="invalid_json") from exc
    if too_deep(value):
        raise depth_error()
    return value


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await raw_json(request)
    if not isinstance(raw, dict):
        raise Unprocessable(
            "The JSON body must be an object",
            details={"errors": [{"loc": ["body"], "msg": "expected an object", "type": "dict_type"}]},
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def q(request: web.Request, name: str, default: str | None = None) -> str | None:
    """A free-text parameter (ids, filenames, target paths): returned exactly as sent."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    return value


def q_enum(request: web.Request, name: str, default: str | None = None) -> str | None:
    """An enum-valued parameter: `Class.MEMBER` is read as `member`. Never use it on free text,
    where `Alpha.txt` or `Vendor.Name` would be mangled."""
    value: str | None = lenient_enum(q(request, name, default))
    return value


def q_required(request: web.Request, name: str) -> str:
    value = q(request, name)
    if value is None:
        raise Unprocessable(
            f"Query parameter `{name}` is required",
            details={"errors": [{"loc": ["query", name], "msg": "Field required", "type": "missing"}]},
        )
    return value


def q_list(request: web.Request, name: str) -> list[str]:
    """Repeated keys (`?statuses=a&statuses=b`) and comma-joined values (seed era) both work."""
    out: list[str] = []
    for raw in request.query.getall(name, []):
        out += [str(v) for v in (lenient_enum(p) for p in raw.split(",")) if v]
    return out


def q_int(request: web.Request, name: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise Unprocessable(
            f"Query parameter `{name}` must be an integer",
            details={
                "errors": [{"loc": ["query", name], "msg": "Input should be a valid integer", "type": "int_parsing"}]
            },
        ) from exc
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise Unprocessable(
            f"Query parameter `{name}` must be between {lo} and {hi}",
            details={"errors": [{"loc": ["query", name], "msg": f"must be between {lo} and {hi}", "type": "range"}]},
        )
    return value


def q_bool(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    return raw.lower() in ("1", "true", "yes", "on")


def q_date(request: web.Request, name: str, *, end_of_day: bool = False) -> str | None:
    """ISO-8601 (`T` or a space) or a bare date. With `end_of_day` (upper bounds), a bare date
    covers the whole day: `to_date=2026-05-18` includes runs created that afternoon."""
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    raw = raw.strip()
    try:
        dt = parse_iso(raw)
        if end_of_day and len(raw) == 10:
            dt += timedelta(days=1) - timedelta(milliseconds=1)
        return iso(dt)
    except ValueError as exc:
        raise Unprocessable(
            f"Query parameter `{name}` is not an ISO-8601 date or datetime",
            details={"errors": [{"loc": ["query", name], "msg": "invalid datetime", "type": "datetime_parsing"}]},
        ) from exc


def page_request(request: web.Request, default_limit: int = 50, default_order: str = "desc") -> PageRequest:
    order = q_enum(request, "order", default_order)
    if order not in ("asc", "desc"):
        raise Unprocessable(
            "`order` must be asc or desc",
            details={"errors": [{"loc": ["query", "order"], "msg": "must be asc or desc", "type": "enum"}]},
        )
    before, after = q(request, "before"), q(request, "after")
    if before and after:
        raise BadRequest("Pass either `before` or `after`, not both.", code="invalid_cursor")
    return PageRequest(
        limit=q_int(request, "limit", default_limit, 1, 1000),
        order=order,  # type: ignore[arg-type]
        before=before,
        after=after,
    )


def page_json(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    return {"data": items, "list_metadata": {"before": page.before, "after": page.after}}


STATUSES = OPEN | TERMINAL


def run_filters(request: web.Request, check_key: str) -> dict[str, Any]:
    """The run list filters (status, dates, ids …); `check_key` names the saved-check id parameter."""
    statuses = q_list(request, "statuses") + q_list(request, "status")
    excluded = q_list(request, "exclude_status") + q_list(request, "exclude_statuses")
    bad = [s for s in statuses + excluded if s not in STATUSES]
    if bad:
        raise Unprocessable(
            f"Unknown status {bad[0]!r}",
            details={
                "errors": [{"loc": ["query", "status"], "msg": f"must be one of {sorted(STATUSES)}", "type": "enum"}]
            },
        )
    return {
        "workflow_id": q(request, "workflow_id"),
        "check_id": q(request, check_key),
        "experiment_id": q(request, "experiment_id"),
        "block_id": q(request, "block_id"),
        "target_block_id": q(request, "target_block_id"),
        "statuses": statuses,
        "exclude_statuses": excluded,
        "trigger_types": q_list(request, "trigger_type") + q_list(request, "trigger_types"),
        "from_date": q_date(request, "from_date"),
        "to_date": q_date(request, "to_date", end_of_day=True),
    }
