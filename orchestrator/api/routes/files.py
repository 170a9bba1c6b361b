"""File uploads (spec §2.4): create_upload → PUT bytes to upload_url → complete."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from orchestrator.api.http import json_response, page_json, page_request, parse_body, q, q_date, read_body
from orchestrator.api.keys import BASE
from orchestrator.api.keys import services as svc
from orchestrator.store.records import FileQuery
from orchestrator.wire import render
from orchestrator.wire import requests as rq


def _origin(request: web.Request) -> str:
    return request.app[BASE].url


async def create_upload(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateUpload)
    upload = await svc(request).files.create_upload(body)
    return json_response(render.upload(upload.file, upload.signature, _origin(request)))


async def put_content(request: web.Request) -> web.Response:
    row, received = await svc(request).files.put_bytes(
        request.match_info["file_id"], request.query.get("sig", ""), lambda: read_body(request)
    )
    return json_response({"file_id": row["id"], "received_bytes": received})


async def complete(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CompleteUpload)
    row = await svc(request).files.complete(request.match_info["file_id"], body)
    return json_response(render.uploaded_file(row, _origin(request)))


async def list_files(request: web.Request) -> web.Response:
    query = FileQuery(
        filename=q(request, "filename"),
        mime_type=q(request, "mime_type"),
        from_date=q_date(request, "from_date"),
        to_date=q_date(request, "to_date", end_of_day=True),
    )
    p = await svc(request).files.list_page(page_request(request, 10), query)
    return json_response(page_json(p, [render.file(r) for r in p.rows]))


async def get_file(request: web.Request) -> web.Response:
    return json_response(render.file(await svc(request).files.get(request.match_info["file_id"])))


async def download_link(request: web.Request) -> web.Response:
    row = await svc(request).files.get(request.match_info["file_id"])
    return json_response(render.download_link(row, _origin(request)))


async def download(request: web.Request) -> web.Response:
    got = await svc(request).files.download(request.match_info["file_id"])
    return web.Response(
        body=got.data, content_type=got.mime_type, headers={"Content-Disposition": _disposition(got.file["filename"])}
    )


def _disposition(filename: str) -> str:
    """A header-safe Content-Disposition for any stored filename (RFC 6266 + RFC 5987): control
    characters must never reach a header, and quotes must not end the quoted string early."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


routes = [
    web.post("/v1/files/upload", create_upload),
    web.put("/v1/files/upload/{file_id}/content", put_content),
    web.post("/v1/files/upload/{file_id}/complete", complete),
    web.get("/v1/files", list_files),
    web.get("/v1/files/{file_id}", get_file),
    web.get("/v1/files/{file_id}/download-link", download_link),
    web.get("/v1/files/{file_id}/download", download),
]
