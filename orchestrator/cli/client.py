"""A small asyncio client for the orchestrator's REST API and live feeds (used by the CLI).

`Client.run_events(run_id)` yields a run's feed events (snapshot first) and resumes by itself after a
dropped connection, with `Last-Event-ID` (SSE) or `?after=` (WebSocket), so no event is missed or repeated.
`mode="progress"` asks for the coalesced feed (snapshot, at most one `progress` per run per 100 ms, then
`run.finished`; no per-child events): a reconnection there starts again from a fresh snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from types import TracebackType
from typing import Any, Literal

import aiohttp
import anyio
import orjson

from orchestrator.ids import RUN_PREFIX, run_kind_of

Transport = Literal["sse", "ws"]
FeedMode = Literal["all", "progress"]
_COLLECTION = {"eval": "evals", "test": "tests", "experiment": "experiments"}


class ClientError(Exception):
    """A non-2xx answer (status > 0) or a feed that could not be (re)connected (status 0)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}


class _Over(Exception):
    """The server says the stream has nothing more to give (204 on a finished run)."""


class _Dropped(Exception):
    """The stream ended or broke before its natural end: reconnect."""


def _error_from(status: int, body: bytes) -> ClientError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ClientError(status, f"http_{status}", body.decode(errors="replace")[:500] or "request failed")
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, dict):
        return ClientError(
            status,
            str(detail.get("code") or f"http_{status}"),
            str(detail.get("message") or ""),
            detail.get("details") if isinstance(detail.get("details"), dict) else None,
        )
    return ClientError(status, f"http_{status}", str(detail if detail is not None else data))


def run_path(run_id: str) -> str:
    """The REST path of a run, from its id prefix."""
    kind = run_kind_of(run_id)
    if kind is None:
        *first, last = [f"{prefix}_…" for prefix in RUN_PREFIX.values()]
        raise ValueError(f"not a run id: {run_id!r} (expected {', '.join(first)} or {last})")
    return f"/v1/workflows/{_COLLECTION[kind]}/runs/{run_id}"


class Client:
    """`async with Client(base_url, api_key) as c: run = await c.get_run(run_id)`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60,
        retries: int = 8,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        idle_timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # The server pings every feed_ping_s (15 s by default); silence longer than this is a dead link.
        self.idle_timeout_s = idle_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.api_key}"})
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use `async with Client(...)` before calling it")
        return self._session

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    run_path = staticmethod(run_path)

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """JSON in, JSON out; raises ClientError on a non-2xx answer (the Retab error envelope parsed)."""
        async with self.session.request(
            method,
            self.url(path),
            data=orjson.dumps(json) if json is not None else None,
            params=params,
            headers={"Content-Type": "application/json"} if json is not None else None,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as resp:
            body = await resp.read()
            if resp.status >= 300:
                raise _error_from(resp.status, body)
            return orjson.loads(body) if body else None

    async def get_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = await self.request("GET", run_path(run_id))
        return run

    async def run_events(
        self, run_id: str, *, after: int | None = None, transport: Transport = "sse", mode: FeedMode = "all"
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event of one run (a snapshot first unless `after` is given); ends after `run.finished`.

        mode="progress": the snapshot, then the run's latest state at most every 100 ms, then `run.finished`.
        """
        base = run_path(run_id)
        path = base + ("/events" if transport == "sse" else "/ws")
        async for event in self._follow(path, "seq", after, transport, stop_on_finish=True, mode=mode):
            yield event

    async def all_events(
        self, *, after: int | None = None, transport: Transport = "sse", mode: FeedMode = "all"
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event of every run (cursor `gseq`); never ends by itself."""
        path = "/v1/events" if transport == "sse" else "/v1/ws"
        async for event in self._follow(path, "gseq", after, transport, stop_on_finish=False, mode=mode):
            yield event

    async def _follow(
        self,
        path: str,
        key: str,
        after: int | None,
        transport: Transport,
        *,
        stop_on_finish: bool,
        mode: FeedMode = "all",
    ) -> AsyncIterator[dict[str, Any]]:
        cursor = after
        failures = 0
        while True:
            try:
                stream = self._sse(path, cursor, mode) if transport == "sse" else self._ws(path, cursor, mode)
                async with aclosing(stream):
                    async for event in stream:
                        failures = 0
                        if isinstance(event.get(key), int) and event["type"] not in ("lagged", "shutdown"):
                            cursor = event[key]
                        yield event
                        if stop_on_finish and event["type"] == "run.finished":
                            return
                raise _Dropped("stream ended")
            except _Over:
                return
            except (_Dropped, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                failures += 1
                if failures > self.retries:
                    raise ClientError(
                        0, "feed_disconnected", f"{path}: gave up after {self.retries} retries: {exc}"
                    ) from exc
            except ClientError as exc:
                if exc.status < 500:
                    raise
                failures += 1
                if failures > self.retries:
                    raise
            await anyio.sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1)))

    async def _sse(self, path: str, cursor: int | None, mode: FeedMode = "all") -> AsyncGenerator[dict[str, Any], None]:
        headers = {"Accept": "text/event-stream"}
        # Every-event feeds come in batches (one message per commit slice); events are yielded one by one.
        params: dict[str, str] = {"mode": mode} if mode != "all" else {"batch": "1"}
        if cursor is not None:
            headers["Last-Event-ID"] = str(cursor)
            params["after"] = str(cursor)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=self.idle_timeout_s)
        async with self.session.get(self.url(path), headers=headers, params=params, timeout=timeout) as resp:
            if resp.status == 204:
                raise _Over()
            if resp.status >= 300:
                raise _error_from(resp.status, await resp.read())
            pending = b""
            data: list[bytes] = []
            # Split lines ourselves: StreamReader.readline() refuses lines over 64 KiB (big snapshots).
            async for chunk in resp.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.rstrip(b"\r")
                    if not line:
                        if data:
                            for event in _events(orjson.loads(b"\n".join(data))):
                                yield event
                            data = []
                    elif line.startswith(b"data:"):
                        data.append(line[5:].lstrip(b" "))
                    # `id:` repeats the event's seq/gseq, `event:` its type, `:` is a keep-alive comment.

    async def _ws(self, path: str, cursor: int | None, mode: FeedMode = "all") -> AsyncGenerator[dict[str, Any], None]:
        params = {"after": str(cursor)} if cursor is not None else {}
        if mode != "all":
            params["mode"] = mode
        else:
            params["batch"] = "1"
        try:
            ws = await self.session.ws_connect(
                self.url(path), params=params, timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout)
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise ClientError(exc.status, f"http_{exc.status}", exc.message) from exc
        async with ws:
            while True:
                msg = await ws.receive(timeout=self.idle_timeout_s)
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    for event in _events(orjson.loads(msg.data)):
                        yield event
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    return
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise _Dropped(f"websocket error: {ws.exception()!r}")


def _events(message: Any) -> list[dict[str, Any]]:
    """A feed message: one event, or a batch of them (a JSON array)."""
    return [e for e in message if isinstance(e, dict)] if isinstance(message, list) else [message]


__all__ = ["Client", "ClientError", "FeedMode", "Transport", "run_path"]
