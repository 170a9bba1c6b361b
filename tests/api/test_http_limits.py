"""Issue 15, the HTTP edge: a URL over 8,190 bytes and a body that never finishes get the envelope (and
a timeout); `/health` is real; links are built from the configured or bound address, never `Host`;
the OpenAPI document lists what the routes answer (201, 204, required query parameters) and 405s name
the allowed methods."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from orchestrator.api.server import running
from tests.api.test_support import assert_envelope, raw
from tests.conftest import AUTH, Api, AppFactory, make_settings


async def test_long_urls_and_oversized_headers_answer_with_the_envelope(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, port=0)) as started, aiohttp.ClientSession() as http:
        base = started.settings.base_url
        async with http.get(base + "/v1/workflows?x=" + "a" * 9000, headers=AUTH) as resp:
            assert resp.status == 414
            body = orjson.loads(await resp.read())
            assert body["detail"]["code"] == "uri_too_long" and resp.headers["x-request-id"].startswith("req_")
        async with http.get(base + "/v1/workflows", headers={**AUTH, "X-Big": "b" * 9000}) as resp:
            assert resp.status == 431
            assert orjson.loads(await resp.read())["detail"]["code"] == "header_too_large"
        async with http.get(base + "/v1/health") as resp:
            assert resp.status == 200  # the server is fine afterwards


async def test_a_body_that_never_finishes_times_out_with_the_envelope(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, port=0, body_timeout_s=0.5)) as started:
        port = started.settings.port
        for path in ("/v1/workflows", "/v1/workflows/experiments"):  # parsed whole, and streamed
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            writer.write(head.encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(65536), timeout=10)
            writer.close()
            status_line = answer.decode().partition("\r\n")[0]
            assert " 408 " in status_line, answer
            assert b'"code":"request_timeout"' in answer


async def test_health_answers_on_both_paths_without_a_key(api: Api) -> None:
    for path in ("/health", "/v1/health"):
        r = await raw(api, "GET", path, auth=False)
        assert r.status == 200 and r.body["status"] == "ok" and r.body["store"] == "ok", r.body


async def test_upload_urls_come_from_the_configured_address_not_the_host_header(make_api: AppFactory) -> None:
    api = await make_api(public_url="https://files.example.org/")
    up = await api.post(
        "/v1/files/upload", {"filename": "a.txt", "size_bytes": 1}, headers={"Host": "evil.example"}, expect=200
    )
    assert up["upload_url"].startswith("https://files.example.org/v1/files/upload/"), up["upload_url"]
    link = await api.post("/v1/session/link", {}, headers={"Host": "evil.example"}, expect=200)
    assert link["url"].startswith("https://files.example.org/?token=")


async def test_openapi_lists_the_real_statuses_and_required_parameters(api: Api) -> None:
    doc = await api.get("/v1/openapi.json", expect=200)
    paths = doc["paths"]
    assert set(paths["/v1/workflows"]["post"]["responses"]) >= {"201", "4XX"}
    assert "200" not in paths["/v1/workflows"]["post"]["responses"]
    assert "204" in paths["/v1/workflows/{workflow_id}"]["delete"]["responses"]
    blocks = paths["/v1/workflows/blocks"]["get"]["parameters"]
    assert {"name": "workflow_id", "in": "query", "required": True} == {
        k: v for k, v in next(p for p in blocks if p["name"] == "workflow_id").items() if k != "schema"
    }
    metrics = [p["name"] for p in paths["/v1/workflows/experiments/metrics"]["get"]["parameters"] if p["required"]]
    assert metrics == ["run_id"]  # document_id / target_path are required by some views only
    assert paths["/v1/health"]["get"]["security"] == []


async def test_405_names_the_allowed_methods(api: Api) -> None:
    r = await raw(api, "DELETE", "/v1/health")
    detail = assert_envelope(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD" and detail["details"]["allowed"] == ["GET", "HEAD"]
