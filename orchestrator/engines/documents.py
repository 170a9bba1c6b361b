"""Bytes of an uploaded file → the `Document` engines read (text, pages, images), within limits.

Synchronous and CPU-bound: `engines.decoding` runs it in a separate process, so a PDF that inflates
to 60 MB of text, or has 20,000 pages, cannot stall the event loop. The limits stop it early: a
document with more pages or more text than they allow is `document_too_large`; one that cannot be
read is `document_unreadable`.
"""

from __future__ import annotations

import hashlib
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

from orchestrator.engines.base import Document, EngineError

Kind = Literal["text", "html", "xml", "json", "pdf", "image"]

_MIME_KINDS: dict[str, Kind] = {
    "text/plain": "text",
    "text/markdown": "text",
    "text/x-markdown": "text",
    "text/csv": "text",
    "application/csv": "text",
    "text/tab-separated-values": "text",
    "application/json": "json",
    "text/json": "json",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/pdf": "pdf",
    "image/png": "image",
    "image/jpeg": "image",
    "image/jpg": "image",
    "image/gif": "image",
    "image/webp": "image",
}

_EXT_MIMES: dict[str, str] = {
    "txt": "text/plain",
    "text": "text/plain",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "html": "text/html",
    "htm": "text/html",
    "xhtml": "application/xhtml+xml",
    "xml": "application/xml",
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}

# Uploads frequently arrive with a meaningless generic type; those must not win over the extension.
_GENERIC_MIMES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})

_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "tr", "li", "ul", "ol", "table", "section", "article", "header", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", "dt", "dd", "title",
    }
)  # fmt: skip
_HIDDEN_TAGS = frozenset({"script", "style", "head", "template", "noscript"})
_HSPACE = re.compile(r"[ \t\r\v\xa0]+")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Limits:
    """What one document may hold once decoded (settings `document_max_pages`, `document_max_chars`)."""

    max_pages: int = 5_000
    max_chars: int = 20_000_000


def too_large(filename: str, why: str, **details: object) -> EngineError:
    return EngineError(
        kind="input",
        code="document_too_large",
        message=f"document {filename!r} is too large: {why}",
        details={"filename": filename, **details},
    )


def load_document(*, filename: str, mime_type: str | None, data: bytes, limits: Limits = Limits()) -> Document:
    """Decode a file; raise `EngineError(kind="input")` for unsupported, unreadable or too large content."""
    mime, kind = _detect(filename, mime_type, data)
    content_id = hashlib.sha256(data).hexdigest()[:16]
    if kind == "image":
        return Document(filename, mime, content_id, "", ("",), images=(data,), page_count=1)
    if kind == "pdf":
        pages = _pdf_pages(filename, data, limits)
        return Document(filename, mime, content_id, "\f".join(pages), pages, page_count=len(pages))
    if len(data) > 4 * limits.max_chars:  # more bytes than the text could hold in UTF-8
        raise too_large(filename, f"{len(data)} bytes", max_chars=limits.max_chars)
    raw = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if kind == "html":
        raw = _html_text(raw)
    elif kind == "xml":
        raw = _xml_text(raw)
    if len(raw) > limits.max_chars:
        raise too_large(filename, f"{len(raw)} characters of text, more than {limits.max_chars}")
    # A form feed is the page break of plain text, so split blocks can work on text documents.
    pages = tuple(raw.split("\f"))
    if len(pages) > limits.max_pages:
        raise too_large(filename, f"{len(pages)} pages, more than {limits.max_pages}")
    return Document(filename, mime, content_id, raw, pages, page_count=len(pages))


def needs_process(filename: str, mime_type: str | None, data: bytes) -> bool:
    """Whether decoding this file is real work (parsing), worth a separate process; unsupported types
    raise here, at no cost."""
    return _detect(filename, mime_type, data)[1] in ("pdf", "html", "xml")


def _detect(filename: str, mime_type: str | None, data: bytes) -> tuple[str, Kind]:
    mime = (mime_type or "").split(";", 1)[0].strip().lower()
    if mime in _MIME_KINDS:
        return mime, _MIME_KINDS[mime]
    if mime.endswith("+json"):
        return mime, "json"
    if mime.endswith("+xml"):
        return mime, "xml"
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext in _EXT_MIMES:
        return _EXT_MIMES[ext], _MIME_KINDS[_EXT_MIMES[ext]]
    if mime.startswith("text/"):
        return mime, "text"
    if mime in _GENERIC_MIMES:
        sniffed = _sniff(data)
        if sniffed is not None:
            return sniffed, _MIME_KINDS[sniffed]
    named = mime or (f".{ext}" if ext else "unknown")
    raise EngineError(
        kind="input",
        code="unsupported_document",
        message=f"unsupported document type {named!r} for {filename!r}",
        details={"filename": filename, "mime_type": mime_type},
    )


def _sniff(data: bytes) -> str | None:
    head = data[:16]
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _unreadable(filename: str, why: str) -> EngineError:
    return EngineError(
        kind="input",
        code="document_unreadable",
        message=f"cannot read {filename!r}: {why}",
        details={"filename": filename},
    )


def _pdf_pages(filename: str, data: bytes, limits: Limits) -> tuple[str, ...]:
    import pypdf  # deferred: only PDF uploads pay for the import

    pages: list[str] = []
    chars = 0
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        count = len(reader.pages)
        if count > limits.max_pages:
            raise too_large(filename, f"{count} pages, more than {limits.max_pages}", pages=count)
        for page in reader.pages:
            text = page.extract_text() or ""
            chars += len(text)
            if chars > limits.max_chars:
                raise too_large(filename, f"more than {limits.max_chars} characters of text")
            pages.append(text)
    except EngineError:
        raise
    except MemoryError:
        raise too_large(filename, "decoding it needs more memory than allowed") from None
    except Exception as exc:  # pypdf raises many unrelated types on malformed input
        raise _unreadable(filename, f"{type(exc).__name__}: {exc}") from None
    if not pages:
        raise _unreadable(filename, "the PDF has no pages")
    return tuple(pages)


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data.replace("\n", " "))


def _html_text(raw: str) -> str:  # limited by the text limit checked before it
    collector = _TextCollector()
    collector.feed(raw)
    collector.close()
    return _collapse("".join(collector.parts))


def _xml_text(raw: str) -> str:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        return _collapse(_TAG.sub(" ", raw))
    return "\n".join(piece.strip() for piece in root.itertext() if piece.strip())


def _collapse(text: str) -> str:
    """Collapse runs of spaces and blank lines but keep line breaks and form feeds (page breaks)."""
    pages = []
    for page in text.split("\f"):
        lines = (_HSPACE.sub(" ", line).strip() for line in page.split("\n"))
        pages.append("\n".join(line for line in lines if line))
    return "\f".join(pages)
