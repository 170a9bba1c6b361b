"""A real chat-completions HTTP server on 127.0.0.1 with scripted answers, for engine tests."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or a str sent as-is
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # wait until the server stops (to provoke client timeouts)
    gate: asyncio.Event | None = None  # answer only once this is set


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]


Responder = Callable[[dict[str, Any]], Reply]


def answer(content: Any, *, usage: dict[str, int] | None = None, finish_reason: str = "stop") -> Reply:
    """A 200 chat completion whose message content is `content` (JSON-encoded unless a str)."""
    text = content if isinstance(content, str) else json.dumps(content)
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return Reply(body=body)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        body={"error": {"message": message, "type": "invalid_request_error"}},
        headers=headers or {},
    )


class ChatServer:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.replies: deque[Reply | Responder] = deque()
        self.base_url = ""
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._gates: list[asyncio.Event] = []

    def script(self, *replies: Reply | Responder) -> None:
        self.replies.extend(replies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(Seen(body=body, headers=dict(request.headers)))
        reply = self.replies.popleft() if self.replies else error(500, "no scripted reply left")
        if not isinstance(reply, Reply):
            reply = reply(body)
        if reply.hang:
            await self._release.wait()
        if reply.gate is not None:
            self._gates.append(reply.gate)
            await reply.gate.wait()
        if isinstance(reply.body, str):
            return web.Response(status=reply.status, text=reply.body, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        for gate in self._gates:  # a failed test must not leave a handler waiting forever
            gate.set()
        if self._runner is not None:
            await self._runner.cleanup()
