"""Issue 15: no input freezes or exhausts the server. A catastrophic regex and a PDF bomb run while
`/v1/health` keeps answering within a second; nesting, lengths and sizes past the limits are 422s; a
`python:` model outside the operator's allowlist is a 422 naming the setting, and nothing is imported."""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from orchestrator.wire.limits import MAX_DEPTH
from tests.api.test_support import assert_envelope, raw
from tests.conftest import Api, AppFactory

CODE_SCHEMA = {"type": "object", "properties": {"code": {"type": "string"}}}


async def while_healthy(api: Api, work: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """Run `work` while polling /v1/health; the slowest health answer seen, which must stay under 1 s."""
    worst = 0.0
    result: Any = None
    done = anyio.Event()

    async def poll() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.monotonic()
            resp = await api.client.get("/v1/health")
            assert resp.status == 200
            worst = max(worst, time.monotonic() - started)
            await anyio.sleep(0.02)

    async def run() -> None:
        nonlocal result
        try:
            result = await work()
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll)
        tg.start_soon(run)
    return result, worst


def pdf(pages: int, content: bytes) -> bytes:
    """A minimal PDF whose `pages` pages share one compressed content stream."""
    stream = zlib.compress(content, 9)
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
    objs += [page + b" /Contents 4 0 R >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


BOMB = pdf(1, (b"BT /F1 12 Tf 72 700 Td (" + b"A" * 1000 + b") Tj ET\n") * 20_000)  # 65 KB → 20 M characters
MANY_PAGES = pdf(20_000, b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET\n")  # 3.2 MB


@pytest.mark.stores("sqlite")
async def test_a_catastrophic_regex_neither_freezes_the_server_nor_blocks_the_run(api: Api) -> None:
    wf, block = await api.workflow_with_extract({"json_schema": CODE_SCHEMA})
    doc = await api.upload(("Code: " + "a" * 40 + "!\n").encode(), "code.txt")
    await api.post(
        "/v1/workflows/evals",
        {
            "workflow_id": wf,
            "target": {"type": "block", "block_id": block},
            "source": {"type": "manual", "handle_inputs": {"input-file-document": {"type": "file", "document": doc}}},
            # Python's backtracking `re` takes 2^40 steps on this (15.6 s at 28 characters).
            "assertion": {
                "target": {"output_handle_id": "output-json-0", "path": "code"},
                "condition": {"kind": "matches_regex", "pattern": "(a+)+$"},
            },
        },
        expect=201,
    )

    async def run() -> dict[str, Any]:
        created = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
        return await api.wait_run(created["id"], within_s=30)

    finished, worst = await while_healthy(api, run)
    assert finished["lifecycle"]["status"] == "completed"
    assert finished["counts"]["outcome"] == {"passed": 0, "failed": 1, "blocked": 0}  # it ends with "!"
    assert worst < 1.0, worst


async def test_a_regex_the_linear_engine_cannot_run_is_refused_when_saved(api: Api) -> None:
    wf, block = await api.workflow_with_extract({"json_schema": CODE_SCHEMA})
    body: dict[str, Any] = {
        "workflow_id": wf,
        "target": {"type": "block", "block_id": block},
        "source": {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {}}}},
        "assertion": {
            "target": {"output_handle_id": "output-json-0", "path": "code"},
            "condition": {"kind": "matches_regex", "pattern": r"(a+)\1"},  # a backreference
        },
    }
    detail = assert_envelope(await raw(api, "POST", "/v1/workflows/evals", json=body), 422, "validation_error")
    assert "unsupported regex" in detail["message"] and "RE2" in detail["message"]
    body["assertion"]["condition"]["pattern"] = "INV-(10[0-9"  # no engine reads it: blocked at run time (spec)
    await api.post("/v1/workflows/evals", body, expect=201)


@pytest.mark.stores("sqlite")
@pytest.mark.parametrize(
    # The page count is read before any text, but parsing 20,000 pages' tree takes ~1 s: a deadline of its
    # own there, so a loaded machine cannot make the deadline answer first.
    ("data", "why", "deadline_s"),
    [(BOMB, "longer than", 2.0), (MANY_PAGES, "20000 pages", 30.0)],
    ids=["inflating", "20000-pages"],
)
async def test_pdf_bombs_fail_their_child_and_never_stall_the_server(
    make_api: AppFactory, data: bytes, why: str, deadline_s: float
) -> None:
    api = await make_api(document_timeout_s=deadline_s, document_max_pages=1000)
    wf, block = await api.workflow_with_extract({"json_schema": CODE_SCHEMA})
    doc = await api.upload(data, "bomb.pdf", "application/pdf")
    exp = await api.post(
        "/v1/workflows/experiments",
        {
            "workflow_id": wf,
            "block_id": block,
            "n_consensus": 3,
            "documents": [{"handle_inputs": {"input-file-document": {"type": "file", "document": doc}}}],
        },
        expect=201,
    )

    async def run() -> dict[str, Any]:
        created = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
        await api.wait_run(created["id"], within_s=60)
        page = await api.get("/v1/workflows/experiments/results", params={"run_id": created["id"]}, expect=200)
        return dict(page["data"][0])

    result, worst = await while_healthy(api, run)
    assert worst < 1.0, worst
    assert result["lifecycle"]["status"] == "error", result
    text = str(result)
    assert "document_too_large" in text and why in text, text


async def test_json_nesting_past_the_limit_is_a_422_everywhere(api: Api) -> None:
    wf, block = await api.workflow_with_extract({"json_schema": CODE_SCHEMA})

    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):
            value = {"k": value}
        return value

    too_deep = {"config": {"simulation": nested(MAX_DEPTH + 5)}}
    r = await raw(api, "PATCH", f"/v1/workflows/blocks/{block}", json=too_deep)
    assert_envelope(r, 422, "json_too_deep")
    r = await raw(api, "PATCH", f"/v1/workflows/blocks/{block}", data="[" * 300 + "]" * 300)
    assert_envelope(r, 422, "json_too_deep")
    deep_doc = {"handle_inputs": {"input-json-0": {"type": "json", "data": nested(MAX_DEPTH)}}}
    r = await raw(
        api, "POST", "/v1/workflows/experiments", json={"workflow_id": wf, "block_id": block, "documents": [deep_doc]}
    )
    assert_envelope(r, 422, "json_too_deep")
    # Within the limit: stored, and the workflow still publishes and runs (251 levels used to 500 both).
    fine = {"config": {"simulation": {"deep": nested(MAX_DEPTH - 8)}}}
    await api.patch(f"/v1/workflows/blocks/{block}", fine, expect=200)
    await api.post(f"/v1/workflows/{wf}/publish", {}, expect=200)


async def test_sizes_and_lengths_are_bounded(api: Api) -> None:
    r = await raw(api, "POST", "/v1/files/upload", json={"filename": "a.txt", "size_bytes": 2**64})
    assert_envelope(r, 422, "validation_error")
    r = await raw(api, "POST", "/v1/files/upload", json={"filename": "a.txt", "size_bytes": 2**40})
    assert_envelope(r, 413, "payload_too_large")
    r = await raw(api, "POST", "/v1/files/upload", json={"filename": "x" * 100_000 + ".txt", "size_bytes": 3})
    assert_envelope(r, 422, "validation_error")
    r = await raw(api, "POST", "/v1/workflows", json={"name": "n" * 5_000})
    assert_envelope(r, 422, "validation_error")


async def test_python_models_only_from_allowed_modules(make_api: AppFactory) -> None:
    api = await make_api(python_modules="tests.engines")
    wf, block = await api.workflow_with_extract()
    sentinel = "tests.api.never_imported_module"
    for model in ("python:this:x", f"python:{sentinel}:extract", "python:os:system"):
        r = await raw(api, "PATCH", f"/v1/workflows/blocks/{block}", json={"config": {"model": model}})
        detail = assert_envelope(r, 422, "python_module_not_allowed")
        assert detail["details"]["setting"] == "python_modules" and "--python-modules" in detail["message"]
    assert sentinel not in sys.modules
    body = {"workflow_id": wf, "type": "extract", "config": {"model": "python:this:x"}}
    assert_envelope(await raw(api, "POST", "/v1/workflows/blocks", json=body), 422, "python_module_not_allowed")
    # An allowed module (and its submodules) is accepted.
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"model": "python:tests.engines.x:f"}}, expect=200)
