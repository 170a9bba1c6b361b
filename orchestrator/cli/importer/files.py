"""Documents of an import: reuse a server file with the same name and sha256, else upload it once."""

from __future__ import annotations

from typing import Any

from orchestrator.cli.client import Client
from orchestrator.cli.common import EXIT_UNAVAILABLE, CliError, list_all
from orchestrator.cli.importer.spec import LocalFile


class FileResolver:
    def __init__(self, client: Client, *, dry_run: bool = False) -> None:
        self.client = client
        self.dry_run = dry_run
        self.refs: dict[tuple[str, str], dict[str, Any]] = {}
        self.uploaded = 0
        self.reused = 0

    async def ref(self, f: LocalFile) -> dict[str, Any]:
        """The FileRef (`{id, filename, mime_type}`) the server knows this document by."""
        key = (f.filename, f.sha256)
        if key not in self.refs:
            self.refs[key] = await self._existing(f) or await self._upload(f)
        return self.refs[key]

    async def _existing(self, f: LocalFile) -> dict[str, Any] | None:
        # `filename` filters by substring; the exact name and the content hash decide.
        for row in await list_all(self.client, "/v1/files", {"filename": f.filename}, limit=100, most=5_000):
            if row.get("filename") == f.filename and str(row.get("sha256") or "").lower() == f.sha256:
                self.reused += 1
                return {"id": row["id"], "filename": f.filename, "mime_type": row.get("mime_type") or f.mime_type}
        return None

    async def _upload(self, f: LocalFile) -> dict[str, Any]:
        self.uploaded += 1
        if self.dry_run:
            return {"id": f"(new file {f.sha256[:12]})", "filename": f.filename, "mime_type": f.mime_type}
        up = await self.client.request(
            "POST",
            "/v1/files/upload",
            json={"filename": f.filename, "size_bytes": len(f.data), "content_type": f.mime_type, "sha256": f.sha256},
        )
        headers = {str(k): str(v) for k, v in (up.get("upload_headers") or {}).items()}
        # The signed upload URL takes raw bytes, which Client.request (JSON only) does not send.
        async with self.client.session.request(
            up.get("upload_method") or "PUT", up["upload_url"], data=f.data, headers=headers
        ) as resp:
            if resp.status >= 300:
                text = (await resp.text())[:300]
                raise CliError(f"uploading {f.filename} failed: {resp.status} {text}", EXIT_UNAVAILABLE)
        await self.client.request("POST", f"/v1/files/upload/{up['file_id']}/complete", json={"sha256": f.sha256})
        return {"id": up["file_id"], "filename": f.filename, "mime_type": f.mime_type}
