"""The hand-encoded WebSocket frames, written raw after aiohttp's upgrade, reach aiohttp's client as the
same text messages, for every length class of RFC 6455 (7-bit, 16-bit and 64-bit lengths)."""

from __future__ import annotations

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.feed.wsframe import ws_text

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 200_000]


def _payload(size: int) -> bytes:
    """A JSON text of exactly `size` bytes."""
    return b'"' + b"a" * (size - 2) + b'"' if size >= 2 else b"7" * size


async def _server_writes_raw_frames(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    raw = await ws.prepare(request)
    await raw.write(b"".join(ws_text(_payload(n)) for n in SIZES))  # one write for the whole batch
    await ws.close()
    return ws


async def test_every_length_class_round_trips_through_a_real_client() -> None:
    app = web.Application()
    app.router.add_get("/ws", _server_writes_raw_frames)
    async with TestClient(TestServer(app)) as client:
        ws = await client.ws_connect("/ws")
        got = [msg async for msg in ws]
    assert [m.type for m in got] == [WSMsgType.TEXT] * len(SIZES)
    assert [m.data for m in got] == [_payload(n).decode() for n in SIZES]


@pytest.mark.parametrize(("size", "header"), [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_frame_layout(size: int, header: int) -> None:
    frame = ws_text(b"x" * size)
    assert len(frame) == header + size
    assert frame[0] == 0x81, "FIN + text opcode, no compression bit"
    assert frame[1] & 0x80 == 0, "a server never masks"
