"""Live progress feeds: SSE and WebSocket, per run and across runs (the logic is in feed/stream.py).

SSE framing is `id: <seq|gseq>\\nevent: <type>\\ndata: <json>\\n\\n` (control events carry no id); a
comment line `: ping` after feed_ping_s without events. WebSocket: one JSON text message per event, a
protocol ping after feed_ping_s without events. Resume with `Last-Event-ID` (SSE) or `?after=` (both).
Every event carries `ts`, the server's commit time (epoch seconds). `?mode=progress` on any of the four
endpoints: the snapshot, then at most one `progress` per run per 100 ms (the newest state, with the
newest seq/gseq it covers), then `run.finished`; no per-child events, and a resume starts from a fresh
snapshot (see feed/stream.py). `?batch=1` (every-event mode): the events of one commit slice come as ONE
message, `event: batch` whose data is a JSON array of the events (WebSocket: one text frame holding the
array), its id the last cursor; the snapshot and control events stay single messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio
from aiohttp import web

from orchestrator.api.keys import HUB, SERVICES
from orchestrator.core.lifecycle import TERMINAL
from orchestrator.errors import Unprocessable
from orchestrator.feed.hub import MODES, Hub, Mode
from orchestrator.feed.stream import Feed, Frame, sse_frame
from orchestrator.feed.wsframe import ws_text
from orchestrator.store.records import Record, RunRecord
from orchestrator.wire import render

__all__ = ["on_shutdown", "routes", "sse_bytes", "ws_text"]

routes = web.RouteTableDef()
KINDS = {"evals": ("eval",), "tests": ("test", "eval"), "experiments": ("experiment",)}
SHUTDOWN_GRACE_S = 1.0  # time a stream gets to write its last event before it is cut at shutdown


class WireRender:
    def run(self, row: Record) -> dict[str, Any]:
        return render.run(row)

    def child(self, child: Record) -> dict[str, Any]:
        status = child.get("status") or "completed"
        return {
            "id": child.get("id"),
            "lifecycle": render.lifecycle(status, child.get("error"), None),
            "verdict": child.get("verdict"),
            "score": child.get("score"),
            "check_id": child.get("check_id"),
        }


WIRE = WireRender()


async def on_shutdown(app: web.Application) -> None:
    """Register in app.on_shutdown: streams end with a `shutdown` event before aiohttp waits for handlers."""
    app[HUB].close_all()


def _feed(request: web.Request) -> Feed:
    services = request.app[SERVICES]
    return Feed(services.store, request.app[HUB], WIRE, ping_s=services.settings.feed_ping_s)


def _cursor(request: web.Request, *, header: bool) -> int | None:
    raw = (request.headers.get("Last-Event-ID") if header else None) or request.query.get("after")
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise Unprocessable(
            f"The feed cursor must be an integer, not {raw!r}",
            details={"errors": [{"loc": ["query", "after"], "msg": "must be an integer", "type": "int_parsing"}]},
        ) from None


def sse_bytes(frame: Frame) -> bytes:
    return frame.sse or sse_frame(frame.cursor, frame.type, frame.data)


def _batched(request: web.Request) -> bool:
    return (request.query.get("batch") or "").lower() in ("1", "true", "yes")


def _mode(request: web.Request) -> Mode:
    raw = request.query.get("mode") or "all"
    if raw not in MODES:
        raise Unprocessable(
            f"The feed mode must be one of {', '.join(MODES)}, not {raw!r}",
            details={"errors": [{"loc": ["query", "mode"], "msg": "must be all or progress", "type": "enum"}]},
        )
    return "progress" if raw == "progress" else "all"


async def _run_id(request: web.Request, feed: Feed) -> tuple[str, RunRecord]:
    run_id = request.match_info["run_id"]
    return run_id, await feed.run(run_id, KINDS[request.match_info["kind"]])


async def _guarded(hub: Hub, body: Callable[[], Awaitable[None]], on_cut: Callable[[], None]) -> None:
    """Run `body`; at shutdown give it a grace period to send its last event, then cut it off."""
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await hub.closed.wait()
            await anyio.sleep(SHUTDOWN_GRACE_S)
            on_cut()
            tg.cancel_scope.cancel()

        async def main() -> None:
            try:
                await body()
            finally:
                tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(main)


def _abort(request: web.Request) -> Callable[[], None]:
    def cut() -> None:
        if request.transport is not None:
            request.transport.abort()

    return cut


async def _sse(request: web.Request, run_id: str | None) -> web.StreamResponse:
    feed = _feed(request)
    after = _cursor(request, header=True)
    mode = _mode(request)
    if run_id is not None:
        run_id, row = await _run_id(request, feed)
        if after is not None and mode == "all" and row["status"] in TERMINAL and after == row["last_seq"]:
            # Nothing will ever follow: 204 tells a browser EventSource to stop reconnecting.
            return web.Response(status=204)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    write_timeout = 4 * feed.ping_s
    stuck = False

    async def body() -> None:
        nonlocal stuck
        try:
            await resp.write(b"retry: 1000\n\n")
            async with aclosing(feed.stream(run_id, after, mode, batched=_batched(request))) as frames:
                async for batch in frames:
                    data = b"".join(sse_bytes(f) for f in batch) if batch else b": ping\n\n"
                    with anyio.move_on_after(write_timeout) as scope:
                        await resp.write(data)
                    if scope.cancelled_caught:
                        stuck = True  # a client that reads nothing for this long is gone: drop it
                        return
        except ConnectionError:
            return

    await _guarded(feed.hub, body, _abort(request))
    if stuck:
        _abort(request)()
    return resp


async def _ws(request: web.Request, run_id: str | None) -> web.StreamResponse:
    feed = _feed(request)
    after = _cursor(request, header=False)
    mode = _mode(request)
    if run_id is not None:
        run_id, _row = await _run_id(request, feed)
    # No permessage-deflate: zlib on every small JSON message costs more CPU than the bytes it saves.
    # No aiohttp heartbeat either: it drops a client whose pong queues behind megabytes of events; we
    # ping when idle and drop only a client that accepts nothing for write_timeout.
    ws = web.WebSocketResponse(max_msg_size=1 << 20, compress=False)
    # Frames of a batch go out in one write through the upgraded connection's stream writer: one
    # send() per batch instead of one per event (per-frame sends dominated the cost with many clients).
    raw = await ws.prepare(request)
    write_timeout = 4 * feed.ping_s
    ending: list[Frame] = []

    async def body() -> None:
        async with anyio.create_task_group() as tg:

            async def reader() -> None:
                # Answer the client's pings and see its close; a closed client ends the stream.
                async for _msg in ws:
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(reader)
            try:
                async with aclosing(feed.stream(run_id, after, mode, batched=_batched(request))) as frames:
                    async for batch in frames:
                        with anyio.move_on_after(write_timeout) as scope:
                            if batch:
                                await raw.write(b"".join(f.ws or ws_text(f.data) for f in batch))
                            else:
                                await ws.ping()
                        if scope.cancelled_caught:
                            ending[:] = [Frame(None, "stuck", b"")]
                            tg.cancel_scope.cancel()
                            return
                        if batch:
                            ending[:] = batch[-1:]
                code, message = 1000, b"stream ended"
                if ending and ending[0].type == "run.finished":
                    message = b"run finished"
                elif ending and ending[0].type == "shutdown":
                    code, message = 1001, b"server shutting down"
                with anyio.move_on_after(SHUTDOWN_GRACE_S):
                    await ws.close(code=code, message=message)
            except ConnectionError:
                pass
            tg.cancel_scope.cancel()

    await _guarded(feed.hub, body, _abort(request))
    if ending and ending[0].type == "stuck":
        _abort(request)()
    return ws


@routes.get("/v1/events")
async def all_events_sse(request: web.Request) -> web.StreamResponse:
    return await _sse(request, None)


@routes.get("/v1/ws")
async def all_events_ws(request: web.Request) -> web.StreamResponse:
    return await _ws(request, None)


@routes.get("/v1/workflows/{kind:evals|tests|experiments}/runs/{run_id}/events")
async def run_events_sse(request: web.Request) -> web.StreamResponse:
    return await _sse(request, request.match_info["run_id"])


@routes.get("/v1/workflows/{kind:evals|tests|experiments}/runs/{run_id}/ws")
async def run_events_ws(request: web.Request) -> web.StreamResponse:
    return await _ws(request, request.match_info["run_id"])
