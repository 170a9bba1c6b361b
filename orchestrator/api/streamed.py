"""Request bodies that carry an experiment's document set, parsed as a stream.

A 100,000-document body parsed whole is ~100 MB of dicts and as much again of models; here ijson reads
it from the socket and each document is validated and encoded as it arrives, so what is held is the
encoded set (a few bytes per byte of input), never every document as objects.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import ijson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from orchestrator.api.http import body_timeout, depth_error
from orchestrator.api.keys import SETTINGS
from orchestrator.core.planning import DocumentSet, DocumentSetBuilder
from orchestrator.errors import BadRequest, PayloadTooLarge, Unprocessable
from orchestrator.wire import requests as rq
from orchestrator.wire.limits import MAX_DEPTH
from orchestrator.wire.validation import validation_error

M = TypeVar("M", bound=BaseModel)
STREAMED = "documents"


class _Limited:
    """The request body, read at most `limit` bytes (aiohttp's client_max_size guards read(), not this),
    all of it within the body timeout."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self.request = request
        self.content = request.content
        self.limit = limit
        self.seen = 0
        self.deadline = asyncio.get_running_loop().time() + request.app[SETTINGS].body_timeout_s

    async def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""  # ijson probes with read(0) whether the stream gives bytes or text
        # wait_for, not asyncio.timeout: ijson awaits this from its own frames, where a cancellation of
        # the handler's task would escape as CancelledError instead of becoming the timeout.
        remaining = max(0.0, self.deadline - asyncio.get_running_loop().time())
        try:
            data = await asyncio.wait_for(self.content.read(n if n > 0 else 65536), remaining)
        except TimeoutError:
            raise body_timeout(self.request) from None
        self.seen += len(data)
        if self.seen > self.limit:
            raise PayloadTooLarge(f"Request body is larger than {self.limit} bytes")
        return data


class _Capture:
    """One JSON value rebuilt from parse events (ijson's ObjectBuilder), complete when its depth is 0.
    `base`: the levels above it in the body (the body itself, the documents array)."""

    def __init__(self, base: int = 1) -> None:
        self.builder = ijson.ObjectBuilder()
        self.depth = 0
        self.base = base

    def feed(self, event: str, value: Any) -> bool:
        self.builder.event(event, value)
        if event in ("start_map", "start_array"):
            self.depth += 1
            if self.base + self.depth > MAX_DEPTH:
                raise depth_error()
        elif event in ("end_map", "end_array"):
            self.depth -= 1
        return self.depth == 0

    @property
    def value(self) -> Any:
        return self.builder.value


async def parse_with_documents(request: web.Request, model: type[M], limit: int) -> tuple[M, DocumentSet | None]:
    """The body as `model` (its `documents` field stands for the set: [] when given, None when not), and
    the documents as a DocumentSet (None when the body has no `documents` array)."""
    if request.content_length == 0:
        return _validate(model, {}), None  # an empty body, as the SDK sends on bodyless calls
    fields: dict[str, Any] = {}
    builder: DocumentSetBuilder | None = None
    key: str | None = None
    value_of: _Capture | None = None  # a top-level value being rebuilt
    document: _Capture | None = None  # a document being rebuilt
    started = in_documents = False
    try:
        async for prefix, event, value in ijson.parse_async(_Limited(request, limit), use_float=True):
            if not started:
                if event != "start_map":
                    raise Unprocessable(
                        "The JSON body must be an object",
                        details={"errors": [{"loc": ["body"], "msg": "expected an object", "type": "dict_type"}]},
                    )
                started = True
            elif value_of is not None:
                if value_of.feed(event, value):
                    fields[str(key)], value_of = value_of.value, None
            elif in_documents:
                if prefix == STREAMED and event == "end_array":
                    in_documents = False
                    continue
                document = document or _Capture(base=2)
                if document.feed(event, value):
                    _add(builder, document.value)
                    document = None
            elif prefix == "" and event == "map_key":
                key = value
            elif prefix == "" and event == "end_map":
                continue
            elif key == STREAMED and event == "start_array":
                builder, in_documents = DocumentSetBuilder(), True
            else:
                value_of = _Capture()
                if value_of.feed(event, value):
                    fields[str(key)], value_of = value_of.value, None
    except ijson.JSONError as exc:
        raise BadRequest(f"Malformed JSON body: {exc}", code="invalid_json") from exc
    if not started:
        return _validate(model, {}), None
    if builder is not None:
        fields[STREAMED] = []
    return _validate(model, fields), builder.done() if builder is not None else None


def _add(builder: DocumentSetBuilder | None, raw: Any) -> None:
    assert builder is not None
    try:
        doc = rq.ExperimentDocument.model_validate(raw)
    except ValidationError as exc:
        err = validation_error(exc, f"{STREAMED}.{builder.count}")
        raise Unprocessable(err.message, details=err.details) from exc
    data = doc.model_dump(mode="json", exclude_none=True)
    builder.add(data.get("handle_inputs", {}), data.get("provenance"))


def _validate(model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(exc) from exc
