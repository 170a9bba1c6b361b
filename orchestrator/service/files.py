"""File uploads (spec §2.4): create_upload → PUT the bytes to the signed upload URL → complete."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.errors import PayloadTooLarge, Unauthorized, Unprocessable
from orchestrator.service.base import UseCase
from orchestrator.store.records import FileQuery, Page, PageRequest, Row
from orchestrator.wire import requests as rq

_MIME = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


@dataclass(frozen=True)
class Upload:
    """An upload session: the pending file and the signature its upload URL carries."""

    file: Row
    signature: str


@dataclass(frozen=True)
class Download:
    file: Row
    data: bytes
    mime_type: str  # the stored type when it is a valid MIME type, else application/octet-stream


class FileService(UseCase):
    async def create_upload(self, body: rq.CreateUpload) -> Upload:
        mime = body.content_type or mimetypes.guess_type(body.filename)[0] or "application/octet-stream"
        if not _MIME.fullmatch(mime.split(";", 1)[0].strip()) or any(ord(c) < 32 for c in mime):
            raise Unprocessable(
                f"content_type {mime!r} is not a MIME type",
                details={
                    "errors": [{"loc": ["body", "content_type"], "msg": "not a MIME type", "type": "value_error"}]
                },
            )
        limit = self._deps.settings.max_body_bytes
        if body.size_bytes > limit:
            raise PayloadTooLarge(
                f"size_bytes {body.size_bytes} is larger than the largest upload ({limit} bytes, --max-body-bytes)",
                details={"size_bytes": body.size_bytes, "max_bytes": limit},
            )
        row = await self._store.files.create_upload(
            filename=body.filename,
            size_bytes=body.size_bytes,
            mime_type=mime.split(";", 1)[0].strip(),
            sha256=body.sha256,
            ttl_s=self._deps.settings.upload_ttl_s,
        )
        return Upload(row, self._signature(row["id"]))

    async def put_bytes(self, file_id: str, signature: str, read: Callable[[], Awaitable[bytes]]) -> tuple[Row, int]:
        """The bytes of an upload, read (by `read`) only once the URL's signature holds; (file, byte count)."""
        if not hmac.compare_digest(signature, self._signature(file_id)):
            raise Unauthorized("This upload URL is not valid", code="invalid_upload_signature")
        data = await read()
        return await self._store.files.put_bytes(file_id, data), len(data)

    async def complete(self, file_id: str, body: rq.CompleteUpload) -> Row:
        return await self._store.files.complete(file_id, body.sha256)

    async def store_bytes(self, *, filename: str, mime_type: str, data: bytes) -> Row:
        """A complete file in one step (the demo's sample documents)."""
        return await self._store.files.create_complete(filename=filename, mime_type=mime_type, data=data)

    async def list_page(self, req: PageRequest, query: FileQuery) -> Page[Row]:
        return await self._store.files.list_page(req, query)

    async def get(self, file_id: str) -> Row:
        return await self._store.files.get(file_id)

    async def download(self, file_id: str) -> Download:
        row = await self._store.files.get(file_id)
        data = await self._store.files.data(row["id"])
        mime = row["mime_type"] if _MIME.fullmatch(row["mime_type"] or "") else "application/octet-stream"
        return Download(row, data or b"", mime)

    def _signature(self, file_id: str) -> str:
        # Keyed by the API key(s), not a per-process secret: an upload URL must outlive a restart for
        # as long as its session does (expires_at), and the key is already the server's secret.
        keys = ",".join(self._deps.settings.api_keys).encode()
        secret = hashlib.sha256(b"orchestrator-upload\0" + keys).digest()
        return hmac.new(secret, file_id.encode(), hashlib.sha256).hexdigest()[:32]
