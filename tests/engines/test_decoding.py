"""Issue 15: documents decode in a bounded process pool with time, page and size limits, and the decoded
documents kept in memory are bounded by bytes."""

from __future__ import annotations

from typing import Any, cast

import pytest

from orchestrator.engines.base import Document, EngineError
from orchestrator.engines.decoding import DecodeLimits, Decoder
from orchestrator.runner.context import DocumentCache, document_bytes
from orchestrator.store import Store
from tests.api.test_hostile_inputs import BOMB, MANY_PAGES, pdf


async def decode(data: bytes, name: str = "doc.pdf", **limits: Any) -> Document:
    return await Decoder(DecodeLimits(**limits)).decode(filename=name, mime_type=None, data=data)


async def test_an_inflating_pdf_is_stopped_at_the_deadline() -> None:
    with pytest.raises(EngineError) as err:
        await decode(BOMB, timeout_s=1.0)
    assert err.value.code == "document_too_large" and "longer than 1 s" in err.value.message


async def test_too_many_pages_or_too_much_text_is_too_large() -> None:
    with pytest.raises(EngineError) as err:
        await decode(MANY_PAGES, max_pages=500)
    assert err.value.code == "document_too_large" and "20000 pages" in err.value.message
    wordy = pdf(3, b"BT /F1 12 Tf 72 700 Td (" + b"w" * 400 + b") Tj ET\n")
    with pytest.raises(EngineError) as err:
        await decode(wordy, max_chars=1000)
    assert err.value.code == "document_too_large"
    with pytest.raises(EngineError) as err:
        await decode(b"x" * 5000, "big.txt", max_chars=1000)
    assert err.value.code == "document_too_large"


async def test_readable_and_unreadable_documents() -> None:
    doc = await decode(pdf(2, b"BT /F1 12 Tf 72 700 Td (Hello world) Tj ET\n"))
    assert doc.pages == ("Hello world", "Hello world") and doc.page_count == 2
    with pytest.raises(EngineError) as err:
        await decode(b"%PDF-1.4 not really")
    assert err.value.code == "document_unreadable"


class FakeFiles:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    async def get(self, file_id: str) -> dict[str, Any]:
        return {"id": file_id, "filename": f"{file_id}.txt", "mime_type": "text/plain"}

    async def data(self, file_id: str) -> bytes:
        return self.blobs[file_id]


class FakeStore:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.files = FakeFiles(blobs)


async def test_the_document_cache_is_bounded_by_bytes_not_entries() -> None:
    blobs = {f"f{i}": bytes([97 + i]) * 100_000 for i in range(6)}  # six 100 KB documents
    cache = DocumentCache(cast(Store, FakeStore(blobs)), Decoder(DecodeLimits()), budget_bytes=350_000)
    for i in range(6):
        await cache.get({"id": f"f{i}"})
    one = document_bytes(await cache.get({"id": "f5"}))
    assert one > 100_000  # text and pages: two copies
    assert cache.held <= 350_000 and len(cache) == 350_000 // one
    huge = DocumentCache(cast(Store, FakeStore(blobs)), Decoder(DecodeLimits()), budget_bytes=1000)
    await huge.get({"id": "f0"})
    assert len(huge) == 0 and huge.held == 0, "a document larger than the budget is not kept"
