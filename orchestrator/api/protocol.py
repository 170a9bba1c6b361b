"""Requests aiohttp refuses before any handler runs (a URL over 8,190 bytes, a malformed request line or
header) answer with the Retab envelope like every other error, not aiohttp's plain-text page.

aiohttp renders those in `RequestHandler.handle_error`, outside every middleware; the runner here makes
its server build handlers that render the envelope instead. A client error is logged at debug level
only: anyone can send them, and a log line each would let them fill the disk.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from orchestrator.ids import new_id

log = logging.getLogger("orchestrator.api")
# The start of the line aiohttp could not read, as its message quotes it: (a method and) a path or URL.
_REQUEST_LINE = re.compile(r"reading: (?:bytearray\()?b?['\"](?:[A-Z]+ )?(?:/|https?:)")


def _envelope(status: int, exc: BaseException | None, message: str | None) -> tuple[int, str, str]:
    if status >= 500:
        return status, "internal_error", "Internal error; see the server log"
    if isinstance(exc, LineTooLong) and _REQUEST_LINE.search(str(exc)):
        return 414, "uri_too_long", "The request line (method and URL) is longer than 8190 bytes"
    if isinstance(exc, LineTooLong):
        return 431, "header_too_large", "A request header is longer than 8190 bytes"
    return status, "bad_http_request", f"Malformed HTTP request: {message or exc or 'unreadable'}"


class EnvelopeHandler(RequestHandler):
    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            log.debug("refused a malformed request from %s: %s", request.remote, message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        code_status, code, text = _envelope(status, exc, message)
        body = {"detail": {"code": code, "message": text, "details": {}}}
        resp = web.Response(
            status=code_status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers={"x-request-id": new_id("req")},
        )
        resp.force_close()
        return resp


class EnvelopeServer(Server):
    def __call__(self) -> RequestHandler:
        kwargs: dict[str, Any] = self._kwargs
        return EnvelopeHandler(self, loop=self._loop, **kwargs)


class EnvelopeRunner(web.AppRunner):
    """`web.AppRunner` whose connections render protocol errors as the envelope."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = EnvelopeServer  # same state, one overridden method: no copy of its construction
        return server
