"""File uploads (spec §2.4): create_upload → PUT bytes to upload_url → complete."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import re
from urllib.parse import quote

from aiohttp import web

from orchestrator.api.http import json_response, page_json, page_request, parse_body, q, q_date
from orchestrator.api.keys import SETTINGS
from orchestrator.api.routes.workflows import svc
from orchestrator.errors import Unauthorized, Unprocessable
from orchestrator.wire import render
from orchestrator.wire import requests as rq

routes = web.RouteTableDef()


def _sig(request: web.Request, file_id: str) -> str:
    # Keyed by the API key(s), not a per-process secret: an upload URL must outlive a restart for
    # as long as its session does (expires_at), and the key is already the server's secret.
    secret = hashlib.sha256(b"orchestrator-upload\0" + ",".join(request.app[SETTINGS].api_keys).encode()).digest()
    return hmac.new(secret, file_id.encode(), hashlib.sha256).hexdigest()[:32]


@routes.post("/v1/files/upload")
async def create_upload(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateUpload)
    s = svc(request)
    mime = body.content_type or mimetypes.guess_type(body.filename)[0] or "application/octet-stream"
    if not _MIME.fullmatch(mime.split(";", 1)[0].strip()) or any(ord(c) < 32 for c in mime):
        raise Unprocessable(
            f"content_type {mime!r} is not a MIME type",
            details={"errors": [{"loc": ["body", "content_type"], "msg": "not a MIME type", "type": "value_error"}]},
        )
    mime = mime.split(";", 1)[0].strip()
    row = await s.store.files.create_upload(
        filename=body.filename,
        size_bytes=body.size_bytes,
        mime_type=mime,
        sha256=body.sha256,
        ttl_s=s.settings.upload_ttl_s,
    )
    base = str(request.url.origin())
    url = f"{base}/v1/files/upload/{row['id']}/content?sig={_sig(request, row['id'])}"
    return json_response(
        {
            "file_id": row["id"],
            "upload_url": url,
            "upload_method": "PUT",
            "upload_headers": {"Content-Type": mime},
            "expires_at": row["expires_at"],
            "mime_data": {"filename": row["filename"], "url": f"{base}/v1/files/{row['id']}/download"},
        }
    )


@routes.put("/v1/files/upload/{file_id}/content")
async def put_content(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    if not hmac.compare_digest(request.query.get("sig", ""), _sig(request, file_id)):
        raise Unauthorized("This upload URL is not valid", code="invalid_upload_signature")
    data = await request.read()
    row = await svc(request).store.files.put_bytes(file_id, data)
    return json_response({"file_id": row["id"], "received_bytes": len(data)})


@routes.post("/v1/files/upload/{file_id}/complete")
async def complete(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CompleteUpload)
    row = await svc(request).store.files.complete(request.match_info["file_id"], body.sha256)
    base = str(request.url.origin())
    return json_response(
        {
            "id": row["id"],
            "filename": row["filename"],
            "mime_type": row["mime_type"],
            "url": f"{base}/v1/files/{row['id']}/download",
            "size_bytes": row["size_bytes"],
        }
    )


@routes.get("/v1/files")
async def list_files(request: web.Request) -> web.Response:
    p = await svc(request).store.files.list_page(
        page_request(request, 10),
        filename=q(request, "filename"),
        mime_type=q(request, "mime_type"),
        from_date=q_date(request, "from_date"),
        to_date=q_date(request, "to_date", end_of_day=True),
    )
    return json_response(page_json(p, [render.file(r) for r in p.rows]))


@routes.get("/v1/files/{file_id}")
async def get_file(request: web.Request) -> web.Response:
    return json_response(render.file(await svc(request).store.files.get(request.match_info["file_id"])))


@routes.get("/v1/files/{file_id}/download-link")
async def download_link(request: web.Request) -> web.Response:
    row = await svc(request).store.files.get(request.match_info["file_id"])
    base = str(request.url.origin())
    return json_response(
        {"download_url": f"{base}/v1/files/{row['id']}/download", "expires_in": "1h", "filename": row["filename"]}
    )


@routes.get("/v1/files/{file_id}/download")
async def download(request: web.Request) -> web.Response:
    s = svc(request)
    row = await s.store.files.get(request.match_info["file_id"])
    data = await s.store.files.data(row["id"])
    mime = row["mime_type"] if _MIME.fullmatch(row["mime_type"] or "") else "application/octet-stream"
    return web.Response(
        body=data or b"", content_type=mime, headers={"Content-Disposition": _disposition(row["filename"])}
    )


_MIME = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def _disposition(filename: str) -> str:
    """A header-safe Content-Disposition for any stored filename (RFC 6266 + RFC 5987): control
    characters must never reach a header, and quotes must not end the quoted string early."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
