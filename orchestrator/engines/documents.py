"""Bytes of an uploaded file → the `Document` engines read (text, pages, images)."""

from __future__ import annotations

import hashlib
import io
import re
import xml.etree.ElementTree as ET
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


def load_document(*, filename: str, mime_type: str | None, data: bytes) -> Document:
    """Decode a file; raise `EngineError(kind="input")` for unsupported or unreadable content."""
    mime, kind = _detect(filename, mime_type, data)
    content_id = hashlib.sha256(data).hexdigest()[:16]
    if kind == "image":
        return Document(filename, mime, content_id, "", ("",), images=(data,), page_count=1)
    if kind == "pdf":
        pages = _pdf_pages(filename, data)
        return Document(filename, mime, content_id, "\f".join(pages), pages, page_count=len(pages))
    raw = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if kind == "html":
        raw = _html_text(raw)
    elif kind == "xml":
        raw = _xml_text(raw)
    # A form feed is the page break of plain text, so split blocks can work on text documents.
    pages = tuple(raw.split("\f"))
    return Document(filename, mime, content_id, raw, pages, page_count=len(pages))


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


def _pdf_pages(filename: str, data: bytes) -> tuple[str, ...]:
    import pypdf  # deferred: only PDF uploads pay for the import

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = tuple((page.extract_text() or "") for page in reader.pages)
    except Exception as exc:  # pypdf raises many unrelated types on malformed input
        raise EngineError(
            kind="input",
            code="unreadable_document",
            message=f"cannot read PDF {filename!r}: {exc}",
            details={"filename": filename},
        ) from exc
    if not pages:
        raise EngineError(kind="input", code="unreadable_document", message=f"PDF {filename!r} has no pages")
    return pages


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


def _html_text(raw: str) -> str:
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
