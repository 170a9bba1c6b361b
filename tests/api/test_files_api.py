"""File upload flow (spec §2.4): create_upload → PUT bytes to upload_url → complete; download."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import pytest
from retab.types.files import CreateUploadResponse, File, FileLink
from retab.types.mime import MIMEData

from tests.api.test_support import assert_envelope, raw, sdk, sdk_page
from tests.conftest import Api, AppFactory

DATA = b"Invoice Number: INV-9\nTotal: $10.00\n"


async def start_upload(api: Api, data: bytes = DATA, **extra: Any) -> dict[str, Any]:
    body = {"filename": "inv.txt", "size_bytes": len(data), "content_type": "text/plain", **extra}
    up: dict[str, Any] = await api.post("/v1/files/upload", body, expect=200)
    sdk(CreateUploadResponse, up)
    return up


def local(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


async def put(api: Api, up: dict[str, Any], data: bytes) -> int:
    resp = await api.client.put(local(up["upload_url"]), data=data, headers=up["upload_headers"])
    return resp.status


async def test_upload_flow_and_download(api: Api) -> None:
    up = await start_upload(api, sha256=hashlib.sha256(DATA).hexdigest())
    assert up["upload_method"] == "PUT" and up["file_id"].startswith("file_")
    # Not complete yet: invisible to GET.
    assert_envelope(await raw(api, "GET", f"/v1/files/{up['file_id']}"), 404)
    assert await put(api, up, DATA) == 200
    done = await api.post(f"/v1/files/upload/{up['file_id']}/complete", expect=200)
    mime = sdk(MIMEData, done)
    assert mime.filename == "inv.txt"
    # completing twice is idempotent
    await api.post(f"/v1/files/upload/{up['file_id']}/complete", {}, expect=200)

    meta = sdk(File, await api.get(f"/v1/files/{up['file_id']}", expect=200))
    assert meta.id == up["file_id"] and meta.mime_type == "text/plain"
    link = sdk(FileLink, await api.get(f"/v1/files/{up['file_id']}/download-link", expect=200))
    resp = await api.client.get(local(link.download_url), headers={"Authorization": "Bearer test-key"})
    assert resp.status == 200 and await resp.read() == DATA
    assert resp.content_type == "text/plain"
    listed = await api.get("/v1/files", expect=200)
    sdk_page(File, listed)
    assert [f["id"] for f in listed["data"]] == [up["file_id"]]
    assert (await api.get("/v1/files", params={"filename": "inv"}, expect=200))["data"]
    assert not (await api.get("/v1/files", params={"filename": "zzz"}, expect=200))["data"]
    assert (await api.get("/v1/files", params={"filename": "inv.txt"}, expect=200))["data"]
    assert (await api.get("/v1/files", params={"mime_type": "text/plain"}, expect=200))["data"]
    assert (await api.get("/v1/files", params={"from_date": "2000-01-01"}, expect=200))["data"]
    assert not (await api.get("/v1/files", params={"to_date": "2000-01-01 00:00:00+00:00"}, expect=200))["data"]


async def test_size_mismatch_is_422(api: Api) -> None:
    up = await start_upload(api, DATA + b"more")
    assert await put(api, up, DATA) == 200
    d = assert_envelope(await raw(api, "POST", f"/v1/files/upload/{up['file_id']}/complete"), 422, "size_mismatch")
    assert d["details"] == {"expected": len(DATA) + 4, "received": len(DATA)}


async def test_sha256_mismatch_is_422_declared_or_on_complete(api: Api) -> None:
    up = await start_upload(api, sha256="0" * 64)
    assert await put(api, up, DATA) == 200
    assert_envelope(await raw(api, "POST", f"/v1/files/upload/{up['file_id']}/complete"), 422, "checksum_mismatch")

    up2 = await start_upload(api)
    assert await put(api, up2, DATA) == 200
    r = await raw(api, "POST", f"/v1/files/upload/{up2['file_id']}/complete", json={"sha256": "f" * 64})
    assert_envelope(r, 422, "checksum_mismatch")
    ok = await raw(
        api, "POST", f"/v1/files/upload/{up2['file_id']}/complete", json={"sha256": hashlib.sha256(DATA).hexdigest()}
    )
    assert ok.status == 200


async def test_complete_without_bytes_is_422(api: Api) -> None:
    up = await start_upload(api)
    assert_envelope(await raw(api, "POST", f"/v1/files/upload/{up['file_id']}/complete"), 422, "upload_missing")


async def test_expired_upload_is_410(make_api: AppFactory) -> None:
    api = await make_api(upload_ttl_s=0)
    up = await start_upload(api)
    resp = await api.client.put(local(up["upload_url"]), data=DATA)
    assert resp.status == 410
    assert_envelope(await raw(api, "POST", f"/v1/files/upload/{up['file_id']}/complete"), 410, "upload_expired")


async def test_unknown_upload_is_404(api: Api) -> None:
    assert_envelope(await raw(api, "POST", "/v1/files/upload/file_nope/complete"), 404)
    assert_envelope(await raw(api, "GET", "/v1/files/file_nope"), 404)
    assert_envelope(await raw(api, "GET", "/v1/files/file_nope/download"), 404)
    assert_envelope(await raw(api, "GET", "/v1/files/file_nope/download-link"), 404)


async def test_upload_url_is_a_capability(api: Api) -> None:
    up = await start_upload(api)
    path = local(up["upload_url"]).split("?", 1)[0]
    for query in ("", "?sig=bad"):
        r = await raw(api, "PUT", path + query, data=DATA, auth=False)
        assert_envelope(r, 401)
    # the signed URL works without an API key (the SDK leaves this PUT to plain httpx)
    r = await raw(api, "PUT", local(up["upload_url"]), data=DATA, auth=False)
    assert r.status == 200
    await api.post(f"/v1/files/upload/{up['file_id']}/complete", expect=200)
    again = await raw(api, "PUT", local(up["upload_url"]), data=DATA, auth=False)
    assert_envelope(again, 422, "upload_complete")


async def test_create_upload_validation(api: Api) -> None:
    for body in ({}, {"filename": "", "size_bytes": 1}, {"filename": "a", "size_bytes": -1}, {"filename": "a"}):
        d = assert_envelope(await raw(api, "POST", "/v1/files/upload", json=body), 422, "validation_error")
        assert d["details"]["errors"]
    guessed = await api.post("/v1/files/upload", {"filename": "doc.pdf", "size_bytes": 3}, expect=200)
    assert guessed["upload_headers"]["Content-Type"] == "application/pdf"


async def test_filename_filter_is_not_read_as_an_enum_member(api: Api) -> None:
    """`Alpha.txt` looks like `Class.MEMBER`; only enum-valued parameters may be mapped."""
    ids = {}
    for name in ("Alpha.txt", "Beta.txt"):
        up = await api.post("/v1/files/upload", {"filename": name, "size_bytes": len(DATA)}, expect=200)
        assert await put(api, up, DATA) == 200
        await api.post(f"/v1/files/upload/{up['file_id']}/complete", expect=200)
        ids[name] = up["file_id"]
    found = await api.get("/v1/files", params={"filename": "Alpha.txt"}, expect=200)
    assert [f["id"] for f in found["data"]] == [ids["Alpha.txt"]]


@pytest.mark.parametrize("name", ['a"b\\c.txt', "ünïcødé ✓.txt", "a\r\nX-Evil: 1.txt", "tab\there.txt", "x" * 1000])
async def test_any_filename_downloads_with_a_safe_header(api: Api, name: str) -> None:
    up = await api.post("/v1/files/upload", {"filename": name, "size_bytes": 1}, expect=200)
    assert await put(api, up, b"x") == 200
    await api.post(f"/v1/files/upload/{up['file_id']}/complete", expect=200)
    assert (await api.get(f"/v1/files/{up['file_id']}", expect=200))["filename"] == name
    r = await raw(api, "GET", f"/v1/files/{up['file_id']}/download")
    assert r.status == 200 and r.body == "x"
    disposition = r.headers["Content-Disposition"]
    assert "X-Evil" not in r.headers and disposition.startswith('attachment; filename="')
    assert disposition.endswith("filename*=UTF-8''" + quote(name, safe=""))


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Evil: 1", "not a mime", "/", "text/"])
async def test_bad_content_type_is_422(api: Api, content_type: str) -> None:
    r = await raw(
        api, "POST", "/v1/files/upload", json={"filename": "a", "size_bytes": 1, "content_type": content_type}
    )
    assert_envelope(r, 422, "validation_error")


async def test_content_type_parameters_are_dropped(api: Api) -> None:
    up = await api.post(
        "/v1/files/upload", {"filename": "a", "size_bytes": 1, "content_type": "text/plain; charset=utf-8"}, expect=200
    )
    assert up["upload_headers"] == {"Content-Type": "text/plain"}
