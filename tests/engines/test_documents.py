from __future__ import annotations

import hashlib
import io

import pypdf
import pytest

from orchestrator.engines.base import EngineError
from orchestrator.engines.documents import load_document

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a5f0b9a40000000049454e44ae426082"
)


def make_text_pdf(pages: list[str]) -> bytes:
    """A minimal hand-written PDF with one Helvetica text line per page and a correct xref."""
    n = len(pages)
    font_id = 3 + 2 * n
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(f"{3 + 2 * i} 0 R".encode() for i in range(n))
        + f"] /Count {n} >>".encode(),
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


@pytest.mark.parametrize(
    ("filename", "mime", "data", "expected_mime", "expected_text"),
    [
        ("a.txt", None, b"Invoice: 1\nTotal: 2", "text/plain", "Invoice: 1\nTotal: 2"),
        ("a.md", None, b"# Title\n\n*bold*", "text/markdown", "# Title\n\n*bold*"),
        ("a.csv", "text/csv", b"a,b\n1,2\n", "text/csv", "a,b\n1,2\n"),
        ("a.json", None, b'{"total": 3}', "application/json", '{"total": 3}'),
        ("blob", "application/json; charset=utf-8", b'{"a": 1}', "application/json", '{"a": 1}'),
        ("a.bin", "text/plain", b"caf\xc3\xa9 \xff", "text/plain", "café \ufffd"),
        ("upload", "application/octet-stream", b"x", None, None),  # sniff fails → unsupported
    ],
)
def test_text_documents(
    filename: str, mime: str | None, data: bytes, expected_mime: str | None, expected_text: str | None
) -> None:
    if expected_mime is None:
        with pytest.raises(EngineError) as info:
            load_document(filename=filename, mime_type=mime, data=data)
        assert info.value.code == "unsupported_document"
        return
    doc = load_document(filename=filename, mime_type=mime, data=data)
    assert doc.mime_type == expected_mime
    assert doc.text == expected_text
    assert doc.pages == (expected_text,)
    assert doc.page_count == 1
    assert doc.images == ()
    assert doc.content_id == hashlib.sha256(data).hexdigest()[:16]
    assert doc.filename == filename


def test_form_feed_splits_text_pages() -> None:
    doc = load_document(filename="a.txt", mime_type="text/plain", data=b"page one\fpage two\fthree")
    assert doc.pages == ("page one", "page two", "three")
    assert doc.page_count == 3


def test_html_strips_tags_and_collapses_whitespace() -> None:
    html = (
        b"<html><head><title>T</title><style>p{color:red}</style></head><body>"
        b"<h1>Invoice</h1><p>Total:   <b>$12</b>\n  due</p><script>var x = 1;</script>"
        b"<table><tr><td>a</td><td>b &amp; c</td></tr></table></body></html>"
    )
    doc = load_document(filename="x.html", mime_type=None, data=html)
    assert doc.mime_type == "text/html"
    assert doc.text == "Invoice\nTotal: $12 due\na b & c"
    assert "color" not in doc.text and "var x" not in doc.text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<invoice><number>INV-1</number><total> 12.5 </total></invoice>", "INV-1\n12.5"),
        (b"<invoice><number>INV-1</number><total>12.5</invoice>", "INV-1 12.5"),  # malformed: tag strip
    ],
)
def test_xml_text(data: bytes, expected: str) -> None:
    doc = load_document(filename="x.xml", mime_type="application/xml", data=data)
    assert doc.text == expected


def test_pdf_pages() -> None:
    data = make_text_pdf(["Invoice page one", "Terms page two", "Annex three"])
    doc = load_document(filename="doc.pdf", mime_type="application/pdf", data=data)
    assert doc.page_count == 3
    assert len(doc.pages) == 3
    assert "Invoice page one" in doc.pages[0]
    assert "Terms page two" in doc.pages[1]
    assert "Annex three" in doc.pages[2]
    assert doc.text.split("\f") == list(doc.pages)


def test_blank_pdf_from_pypdf_and_sniffing() -> None:
    writer = pypdf.PdfWriter()
    for _ in range(2):
        writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    doc = load_document(filename="upload", mime_type="application/octet-stream", data=buf.getvalue())
    assert doc.mime_type == "application/pdf"
    assert doc.page_count == 2
    assert doc.pages == ("", "")


def test_unreadable_pdf() -> None:
    with pytest.raises(EngineError) as info:
        load_document(filename="bad.pdf", mime_type=None, data=b"not a pdf at all")
    assert info.value.kind == "input"
    assert info.value.code == "document_unreadable"


@pytest.mark.parametrize(
    ("filename", "mime"),
    [("p.png", None), ("photo", "image/png"), ("x.jpeg", None), ("x.gif", None), ("x.webp", None)],
)
def test_images(filename: str, mime: str | None) -> None:
    doc = load_document(filename=filename, mime_type=mime, data=PNG_1PX)
    assert doc.mime_type.startswith("image/")
    assert doc.images == (PNG_1PX,)
    assert doc.text == ""
    assert doc.pages == ("",)
    assert doc.page_count == 1


def test_mime_type_wins_over_extension() -> None:
    doc = load_document(filename="report.pdf", mime_type="text/plain", data=b"plain after all")
    assert doc.text == "plain after all"


@pytest.mark.parametrize(
    ("filename", "mime", "named"),
    [
        ("a.docx", None, ".docx"),
        ("sheet", "application/vnd.ms-excel", "application/vnd.ms-excel"),
        ("noext", None, "unknown"),
    ],
)
def test_unsupported_types_are_named(filename: str, mime: str | None, named: str) -> None:
    with pytest.raises(EngineError) as info:
        load_document(filename=filename, mime_type=mime, data=b"PK\x03\x04")
    assert info.value.kind == "input"
    assert info.value.code == "unsupported_document"
    assert not info.value.transient
    assert named in info.value.message
