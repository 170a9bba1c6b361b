"""Uploaded files: a pending upload session, then bytes, then completion.

Where the bytes live: in PostgreSQL, in 1 MiB rows of `file_chunks`. Every worker on every machine
already reaches the database, so a document uploaded through any node is readable by any worker with no
shared filesystem to configure, mount and back up separately; the bytes and their metadata change in
the same transactions (completion checks that the bytes it hashed are still the ones stored), and are
copied, backed up and deleted with everything else. Chunked rather than one `bytea` value: no single
value, WAL record or protocol message grows with the upload (up to `--max-body-bytes`, 64 MiB by
default), and a reader never needs more than one chunk's worth of extra server memory per row.
The documents of a run are read once per worker and cached (runner/context.py), so reads stay rare.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import anyio.to_thread

from orchestrator.errors import Gone, NotFound, Unprocessable
from orchestrator.ids import iso, new_id, now, now_iso, parse_iso
from orchestrator.store.postgres.db import Conn, Database, affected, one
from orchestrator.store.postgres.paging import Where, page
from orchestrator.store.records import FileQuery, Page, PageRequest, Row

CHUNK = 1 << 20
_META = "n, id, filename, mime_type, size_bytes, sha256, status, expires_at, page_count, created_at, updated_at"


def _missing(file_id: str) -> NotFound:
    return NotFound(f"File {file_id} not found", details={"file_id": file_id})


async def _get(conn: Conn, file_id: str, *, include_pending: bool = False) -> Row:
    row = await one(conn, f"SELECT {_META} FROM files WHERE id = $1", file_id)
    if row is None or (row["status"] != "complete" and not include_pending):
        raise _missing(file_id)
    return row


def _check_open(row: Row) -> None:
    if row["status"] != "complete" and parse_iso(row["expires_at"]) < now():
        raise Gone(
            f"Upload session {row['id']} has expired",
            code="upload_expired",
            details={"file_id": row["id"], "expires_at": row["expires_at"]},
        )


async def _put_chunks(conn: Conn, file_id: str, data: bytes) -> None:
    await conn.execute("DELETE FROM file_chunks WHERE file_id = $1", file_id)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    await conn.execute(
        "INSERT INTO file_chunks(file_id, idx, data) SELECT $1, i, d FROM unnest($2::int4[], $3::bytea[]) AS u(i, d)",
        file_id,
        list(range(len(chunks))),
        chunks,
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

        async def tx(conn: Conn) -> Row:
            await conn.execute(
                "INSERT INTO files(id, filename, mime_type, size_bytes, sha256, status, expires_at, created_at,"
                " updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7)",
                fid,
                filename,
                mime_type,
                size_bytes,
                sha256,
                expires,
                ts,
            )
            return await _get(conn, fid, include_pending=True)

        return await self.db.write(tx)

    async def get(self, file_id: str, *, include_pending: bool = False) -> Row:
        row = await self.db.fetchone(f"SELECT {_META} FROM files WHERE id = $1", file_id)
        if row is None or (row["status"] != "complete" and not include_pending):
            raise _missing(file_id)
        return row

    async def put_bytes(self, file_id: str, data: bytes) -> Row:
        async def tx(conn: Conn) -> Row:
            row = await one(conn, f"SELECT {_META} FROM files WHERE id = $1 FOR UPDATE", file_id)
            if row is None:
                raise _missing(file_id)
            _check_open(row)
            if row["status"] == "complete":
                raise Unprocessable(
                    "This upload is already complete", code="upload_complete", details={"file_id": file_id}
                )
            await _put_chunks(conn, file_id, data)
            version = _later(row["updated_at"])
            await conn.execute("UPDATE files SET status = 'uploaded', updated_at = $1 WHERE id = $2", version, file_id)
            return await _get(conn, file_id, include_pending=True)

        return await self.db.write(tx)

    async def complete(self, file_id: str, sha256: str | None, page_count: int | None = None) -> Row:
        row = await self.get(file_id, include_pending=True)
        if row["status"] == "complete":
            return row
        _check_open(row)
        data = await self.data(file_id, include_pending=True) if row["status"] == "uploaded" else None
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
        digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
        for want in (row["sha256"], sha256):
            if want and want.lower() != digest:
                raise Unprocessable(
                    "The uploaded bytes do not match the declared sha256",
                    code="checksum_mismatch",
                    details={"expected": want, "received": digest},
                )

        async def tx(conn: Conn) -> Row:
            # Only the bytes that were hashed: a PUT that replaced them meanwhile leaves the upload open.
            await conn.execute(
                "UPDATE files SET status = 'complete', sha256 = $1, page_count = $2, updated_at = $3"
                " WHERE id = $4 AND status = 'uploaded' AND updated_at = $5",
                digest,
                page_count,
                _later(row["updated_at"]),
                file_id,
                row["updated_at"],
            )
            return await _get(conn, file_id, include_pending=True)

        done = await self.db.write(tx)
        if done["status"] != "complete":
            raise Unprocessable(
                "The bytes changed while the upload was being completed; complete it again",
                code="upload_changed",
                details={"file_id": file_id},
            )
        return done

    async def data(self, file_id: str, *, include_pending: bool = False) -> bytes | None:
        # One statement: the status and every chunk from one snapshot, never half of a replaced upload.
        rows = await self.db.fetchall(
            "SELECT f.status, c.data FROM files f LEFT JOIN file_chunks c ON c.file_id = f.id WHERE f.id = $1"
            " ORDER BY c.idx",
            file_id,
        )
        if not rows or (rows[0]["status"] != "complete" and not include_pending):
            raise _missing(file_id)
        if rows[0]["data"] is None:
            return None
        return b"".join(r["data"] for r in rows)

    async def create_complete(self, *, filename: str, mime_type: str, data: bytes) -> Row:
        """Store bytes in one step (demo data, imports)."""
        fid = new_id("file")
        ts = now_iso()
        digest = hashlib.sha256(data).hexdigest()

        async def tx(conn: Conn) -> Row:
            await conn.execute(
                "INSERT INTO files(id, filename, mime_type, size_bytes, sha256, status, expires_at, created_at,"
                " updated_at) VALUES ($1, $2, $3, $4, $5, 'complete', $6, $6, $6)",
                fid,
                filename,
                mime_type,
                len(data),
                digest,
                ts,
            )
            await _put_chunks(conn, fid, data)
            return await _get(conn, fid)

        return await self.db.write(tx)

    async def list_page(self, req: PageRequest, query: FileQuery) -> Page[Row]:
        where = Where("status = 'complete'").eq("mime_type", query.mime_type)
        # ILIKE: SQLite's LIKE ignores ASCII case, and a search must find the same files in both stores.
        where.sql("filename ILIKE {}", f"%{query.filename}%" if query.filename else None)
        where.sql("created_at >= {}", query.from_date).sql("created_at <= {}", query.to_date)
        return await page(self.db, "files", where, req, columns=_META)

    async def purge_abandoned(self, before: str) -> int:
        """Delete uploads never completed whose session expired before `before` (ISO), with their chunks."""

        async def tx(conn: Conn) -> int:
            return affected(
                await conn.execute("DELETE FROM files WHERE status <> 'complete' AND expires_at < $1", before)
            )

        return await self.db.write(tx)


def _later(previous: str) -> str:
    """now, but strictly after `previous`: `updated_at` is the version `complete` checks, so two PUTs
    within one millisecond must still give two versions (SQLite's one writer makes that unlikely;
    several nodes do not)."""
    ts = now_iso()
    if ts > previous:
        return ts
    return iso(parse_iso(previous) + timedelta(milliseconds=1)) or ts
