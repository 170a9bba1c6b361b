"""Uploaded files: a pending upload session, then bytes, then completion."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta

import anyio.to_thread

from orchestrator.errors import Gone, NotFound, Unprocessable
from orchestrator.ids import iso, new_id, now, now_iso, parse_iso
from orchestrator.store.records import FileQuery, Page, PageRequest, Row
from orchestrator.store.sqlite.db import Database, one
from orchestrator.store.sqlite.paging import Where, page

_META = "n, id, filename, mime_type, size_bytes, sha256, status, expires_at, page_count, created_at, updated_at"


def _get(conn: sqlite3.Connection, file_id: str, *, include_pending: bool = False) -> Row:
    row = one(conn, f"SELECT {_META} FROM files WHERE id = ?", (file_id,))
    if row is None or (row["status"] != "complete" and not include_pending):
        raise NotFound(f"File {file_id} not found", details={"file_id": file_id})
    return row


def _check_open(row: Row) -> None:
    if row["status"] != "complete" and parse_iso(row["expires_at"]) < now():
        raise Gone(
            f"Upload session {row['id']} has expired",
            code="upload_expired",
            details={"file_id": row["id"], "expires_at": row["expires_at"]},
        )


class FileStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_upload(
        self, *, filename: str, size_bytes: int, mime_type: str, sha256: str | None, ttl_s: int
    ) -> Row:
        fid = new_id("file")
        ts = now_iso()
        expires = iso(now() + timedelta(seconds=ttl_s))

        def tx(conn: sqlite3.Connection) -> Row:
            conn.execute(
                "INSERT INTO files(id, filename, mime_type, size_bytes, sha256, status, expires_at, created_at,"
                " updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (fid, filename, mime_type, size_bytes, sha256, "pending", expires, ts, ts),
            )
            return _get(conn, fid, include_pending=True)

        return await self.db.write(tx)

    async def get(self, file_id: str, *, include_pending: bool = False) -> Row:
        row = await self.db.fetchone(f"SELECT {_META} FROM files WHERE id = ?", (file_id,))
        if row is None or (row["status"] != "complete" and not include_pending):
            raise NotFound(f"File {file_id} not found", details={"file_id": file_id})
        return row

    async def put_bytes(self, file_id: str, data: bytes) -> Row:
        def tx(conn: sqlite3.Connection) -> Row:
            row = _get(conn, file_id, include_pending=True)
            _check_open(row)
            if row["status"] == "complete":
                raise Unprocessable(
                    "This upload is already complete", code="upload_complete", details={"file_id": file_id}
                )
            conn.execute(
                "UPDATE files SET data = ?, status = 'uploaded', updated_at = ? WHERE id = ?",
                (data, now_iso(), file_id),
            )
            return _get(conn, file_id, include_pending=True)

        return await self.db.write(tx)

    async def complete(self, file_id: str, sha256: str | None, page_count: int | None = None) -> Row:
        row = await self.get(file_id, include_pending=True)
        if row["status"] == "complete":
            return row
        _check_open(row)
        data = await self.data(file_id, include_pending=True)
        if data is None:
            raise Unprocessable(
                "No bytes were uploaded for this file", code="upload_missing", details={"file_id": file_id}
            )
        if len(data) != row["size_bytes"]:
            raise Unprocessable(
                f"Uploaded {len(data)} bytes but the upload declared {row['size_bytes']}",
                code="size_mismatch",
                details={"expected": row["size_bytes"], "received": len(data)},
            )
        # Up to max_body_bytes of hashing: off the event loop and outside the write lock.
        digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
        for want in (row["sha256"], sha256):
            if want and want.lower() != digest:
                raise Unprocessable(
                    "The uploaded bytes do not match the declared sha256",
                    code="checksum_mismatch",
                    details={"expected": want, "received": digest},
                )

        def tx(conn: sqlite3.Connection) -> Row:
            # Only the bytes that were hashed: a PUT that replaced them meanwhile leaves the upload open.
            conn.execute(
                "UPDATE files SET status = 'complete', sha256 = ?, page_count = ?, updated_at = ?"
                " WHERE id = ? AND status = 'uploaded' AND updated_at = ?",
                (digest, page_count, now_iso(), file_id, row["updated_at"]),
            )
            return _get(conn, file_id, include_pending=True)

        done = await self.db.write(tx)
        if done["status"] != "complete":
            raise Unprocessable(
                "The bytes changed while the upload was being completed; complete it again",
                code="upload_changed",
                details={"file_id": file_id},
            )
        return done

    async def data(self, file_id: str, *, include_pending: bool = False) -> bytes | None:
        row = await self.db.fetchone("SELECT data, status FROM files WHERE id = ?", (file_id,))
        if row is None or (row["status"] != "complete" and not include_pending):
            raise NotFound(f"File {file_id} not found", details={"file_id": file_id})
        data: bytes | None = row["data"]
        return data

    async def create_complete(self, *, filename: str, mime_type: str, data: bytes) -> Row:
        """Store bytes in one step (demo data, imports)."""
        fid = new_id("file")
        ts = now_iso()
        digest = hashlib.sha256(data).hexdigest()

        def tx(conn: sqlite3.Connection) -> Row:
            conn.execute(
                "INSERT INTO files(id, filename, mime_type, size_bytes, sha256, status, expires_at, data,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (fid, filename, mime_type, len(data), digest, "complete", ts, data, ts, ts),
            )
            return _get(conn, fid)

        return await self.db.write(tx)

    async def list_page(self, req: PageRequest, query: FileQuery) -> Page[Row]:
        where = Where("status = 'complete'").eq("mime_type", query.mime_type)
        where.sql("filename LIKE ?", f"%{query.filename}%" if query.filename else None)
        where.sql("created_at >= ?", query.from_date).sql("created_at <= ?", query.to_date)
        return await page(self.db, "files", where, req, columns=_META)

    async def purge_abandoned(self, before: str) -> int:
        """Delete uploads never completed whose session expired before `before` (ISO), with their bytes."""

        def tx(conn: sqlite3.Connection) -> int:
            cur = conn.execute("DELETE FROM files WHERE status != 'complete' AND expires_at < ?", (before,))
            return int(cur.rowcount)

        return await self.db.write(tx)
