from __future__ import annotations

import asyncio
import base64
import copy
import json
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from orchestrator.demo import MINIMAL_INVOICE_SCHEMA
from orchestrator.engines.base import Document, EngineError, JsonInput, JudgeRequest, PassRequest, Usage
from orchestrator.engines.openai import OpenAIEngine
from orchestrator.engines.openai.schema import drop_optional_nulls, strict_schema
from orchestrator.engines.ratelimit import ProviderLimiter, TokenBucket, backoff_delay, parse_retry_after
from tests.engines.chat_server import ChatServer, Reply, answer, error

INVOICE_SCHEMA: dict[str, Any] = {
    **MINIMAL_INVOICE_SCHEMA,
    "properties": {
        "invoice_number": {"type": "string"},
        "total": {"type": "number"},
        "notes": {"type": "string"},
    },
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def doc(*pages: str, filename: str = "invoice.txt") -> Document:
    pages = pages or ("Invoice 42\nTotal: 10.50",)
    return Document(
        filename=filename,
        mime_type="text/plain",
        content_id="0" * 16,
        text="\n".join(pages),
        pages=tuple(pages),
        page_count=len(pages),
    )


def request(
    block_type: str = "extract", *, n_passes: int = 1, pass_index: int = 0, inputs: Any = None, **config: Any
) -> PassRequest:
    config.setdefault("model", "gpt-test")
    if block_type == "extract":
        config.setdefault("json_schema", INVOICE_SCHEMA)
    return PassRequest(
        block_id="blk_1",
        block_type=block_type,  # type: ignore[arg-type]
        config=config,
        inputs=inputs if inputs is not None else {"input-file-document": doc()},
        pass_index=pass_index,
        n_passes=n_passes,
        seed=7,
    )


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    srv = ChatServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def engine(server: ChatServer) -> AsyncIterator[OpenAIEngine]:
    eng = OpenAIEngine(base_url=server.base_url, api_key="sk-test", timeout_s=10)
    try:
        yield eng
    finally:
        await eng.aclose()


def user_text(body: dict[str, Any]) -> str:
    content = body["messages"][1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


async def test_extract_uses_strict_json_schema(server: ChatServer, engine: OpenAIEngine) -> None:
    server.script(answer({"invoice_number": "42", "total": 10.5, "notes": None}))
    req = request(instructions="Amounts in EUR.")
    before = copy.deepcopy(dict(req.config))
    out = await engine.run_pass(req)
    assert out.output == {"invoice_number": "42", "total": 10.5}  # the forced null is dropped again
    assert (out.engine, out.model) == ("openai", "gpt-test")
    assert dict(req.config) == before  # the block config is not mutated
    seen = server.seen[0]
    assert seen.headers["Authorization"] == "Bearer sk-test"
    fmt = seen.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "extraction"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["invoice_number", "total", "notes"]
    assert schema["properties"]["notes"]["type"] == ["string", "null"]
    assert "Amounts in EUR." in seen.body["messages"][0]["content"]
    assert "Invoice 42" in user_text(seen.body)


async def test_json_schema_rejected_falls_back_to_json_object(server: ChatServer, engine: OpenAIEngine) -> None:
    def picky(body: dict[str, Any]) -> Reply:
        if body["response_format"]["type"] == "json_schema":
            return error(400, "response_format type 'json_schema' is not supported by this model")
        return answer({"invoice_number": "42", "total": 3})

    server.script(picky, picky, picky, answer({"invoice_number": "42", "total": "three"}))
    assert (await engine.run_pass(request())).output == {"invoice_number": "42", "total": 3}
    assert [s.body["response_format"]["type"] for s in server.seen] == ["json_schema", "json_object"]
    assert engine.response_format_mode == "json_object"
    assert '"invoice_number"' in server.seen[1].body["messages"][0]["content"]  # schema moved to the prompt

    await engine.run_pass(request())  # remembered: no second json_schema attempt
    assert server.seen[2].body["response_format"] == {"type": "json_object"}

    with pytest.raises(EngineError) as info:  # validated locally
        await engine.run_pass(request())
    assert (info.value.kind, info.value.code, info.value.transient) == (
        "unparseable",
        "unparseable_output",
        False,
    )
    assert "total" in info.value.message


async def test_explicit_json_schema_mode_does_not_fall_back(server: ChatServer) -> None:
    eng = OpenAIEngine(base_url=server.base_url, api_key=None, structured_outputs="json_schema")
    server.script(error(400, "unknown field response_format.json_schema"))
    with pytest.raises(EngineError) as info:
        await eng.run_pass(request())
    await eng.aclose()
    assert (info.value.code, info.value.transient, len(server.seen)) == ("provider_rejected", False, 1)
    assert "Authorization" not in server.seen[0].headers  # no key configured -> no header


@pytest.mark.parametrize(
    ("reply", "kind", "code", "transient", "retry_after"),
    [
        (error(429, "slow down", {"Retry-After": "7"}), "rate_limited", "rate_limited", True, 7.0),
        (error(429, "slow down"), "rate_limited", "rate_limited", True, None),
        (error(500, "boom"), "provider", "provider_unavailable", True, None),
        (error(503, "overloaded"), "provider", "provider_unavailable", True, None),
        (error(401, "Incorrect API key"), "provider", "provider_rejected", False, None),
        (error(404, "model gpt-test does not exist"), "provider", "provider_rejected", False, None),
        (Reply(body="<html>proxy error</html>"), "unparseable", "provider_bad_response", True, None),
        (answer("{not json"), "unparseable", "unparseable_output", False, None),
        (
            answer('{"invoice_number": "4', finish_reason="length"),
            "unparseable",
            "unparseable_output",
            False,
            None,
        ),
        (answer({"invoice_number": 42, "total": 1}), "unparseable", "unparseable_output", False, None),
        (answer([1, 2]), "unparseable", "unparseable_output", False, None),
    ],
)
async def test_failures_are_classified(
    server: ChatServer,
    engine: OpenAIEngine,
    reply: Reply,
    kind: str,
    code: str,
    transient: bool,
    retry_after: float | None,
) -> None:
    server.script(reply)
    with pytest.raises(EngineError) as info:
        await engine.run_pass(request())
    err = info.value
    assert (err.kind, err.code, err.transient, err.retry_after) == (kind, code, transient, retry_after)
    if reply.status in (401, 404):
        assert reply.body["error"]["message"] in err.message


async def test_slow_answer_times_out(server: ChatServer) -> None:
    eng = OpenAIEngine(base_url=server.base_url, api_key=None, timeout_s=0.2)
    server.script(Reply(hang=True))
    with pytest.raises(EngineError) as info:
        await eng.run_pass(request())
    await eng.aclose()
    assert (info.value.kind, info.value.code, info.value.transient) == ("timeout", "pass_timeout", True)


async def test_unreachable_server_is_transient() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    eng = OpenAIEngine(base_url=f"http://127.0.0.1:{port}/v1", api_key=None)
    with pytest.raises(EngineError) as info:
        await eng.run_pass(request())
    await eng.aclose()
    assert (info.value.kind, info.value.code, info.value.transient) == (
        "provider",
        "provider_unavailable",
        True,
    )


async def test_classifier(server: ChatServer, engine: OpenAIEngine) -> None:
    categories = [{"name": "invoice", "description": "a bill"}, {"name": "receipt"}]
    server.script(
        answer({"reasoning": "has a total due", "category": "invoice"}),
        answer({"reasoning": "?", "category": "letter"}),
    )
    req = request("classifier", categories=categories, first_n_pages=1, inputs={"d": doc("first", "second")})
    out = await engine.run_pass(req)
    assert out.output == {"category": "invoice", "reasoning": "has a total due"}
    body = server.seen[0].body
    assert body["response_format"]["json_schema"]["schema"]["properties"]["category"]["enum"] == [
        "invoice",
        "receipt",
    ]
    assert "invoice: a bill" in body["messages"][0]["content"]
    assert "first" in user_text(body) and "second" not in user_text(body)
    with pytest.raises(EngineError) as info:
        await engine.run_pass(req)
    assert info.value.code == "unparseable_output"


async def test_split(server: ChatServer, engine: OpenAIEngine) -> None:
    subdocs = [{"name": "invoice"}, {"name": "receipt", "allow_multiple_instances": True}]
    splits = [
        {"name": "invoice", "pages": [2, 1]},
        {"name": "receipt", "pages": [3]},
        {"name": "receipt", "pages": [4, 9]},  # page 9 does not exist
        {"name": "invoice", "pages": [5]},  # not multiple: merged into the first invoice
    ]
    server.script(answer({"splits": splits}))
    out = await engine.run_pass(request("split", subdocuments=subdocs, inputs={"input-file-0": doc(*"abcde")}))
    assert out.output == [
        {"name": "invoice", "pages": [1, 2, 5]},
        {"name": "receipt", "pages": [3]},
        {"name": "receipt", "pages": [4]},
    ]
    assert "--- Page 3 ---\nc" in user_text(server.seen[0].body)


@pytest.mark.parametrize(
    ("temperature", "n_passes", "expected"),
    [(None, 1, 0.0), (None, 3, 1.0), (0.3, 3, 0.3), (0, 5, 0.0), (0.7, 1, 0.7)],
)
async def test_temperature_rule(
    server: ChatServer, engine: OpenAIEngine, temperature: float | None, n_passes: int, expected: float
) -> None:
    server.script(*[answer({"invoice_number": "1", "total": 1})] * 2)
    config: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    for index in range(2):
        await engine.run_pass(request(n_passes=n_passes, pass_index=index, **config))
    assert [s.body["temperature"] for s in server.seen] == [expected, expected]
    assert server.seen[0].body["seed"] != server.seen[1].body["seed"]  # passes are sampled independently


async def test_usage_model_override_and_json_inputs(server: ChatServer) -> None:
    eng = OpenAIEngine(base_url=server.base_url, api_key=None, model_override="served-model")
    usage = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
    server.script(answer({"invoice_number": "1", "total": 2}, usage=usage))
    out = await eng.run_pass(request(inputs={"input-json-po": JsonInput({"po": "PO-9"})}, reasoning_effort="low"))
    await eng.aclose()
    assert out.usage == Usage(prompt_tokens=120, completion_tokens=30, total_tokens=150)
    assert out.model == "gpt-test"
    body = server.seen[0].body
    assert (body["model"], body["reasoning_effort"]) == ("served-model", "low")
    assert '"po": "PO-9"' in user_text(body)


async def test_image_document_is_sent_as_image_part(server: ChatServer, engine: OpenAIEngine) -> None:
    scan = Document(
        filename="scan.png", mime_type="image/png", content_id="1" * 16, text="", pages=("",), images=(PNG,)
    )
    server.script(answer({"invoice_number": "7", "total": 1}))
    await engine.run_pass(request(inputs={"input-file-document": scan}))
    parts = server.seen[0].body["messages"][1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 1
    prefix, data = images[0]["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/png;base64" and base64.b64decode(data) == PNG


@pytest.mark.parametrize(
    ("expected_label", "reply", "label", "passed"),
    [
        (None, {"reasoning": "fine", "label": "pass", "passed": True}, "pass", True),
        (None, {"reasoning": "no", "label": "fail", "passed": False}, "fail", False),
        ("polite", {"reasoning": "kind words", "label": "Polite", "passed": False}, "Polite", True),
        ("polite", {"reasoning": "insults", "label": "rude", "passed": True}, "rude", False),
    ],
)
async def test_judge(
    server: ChatServer,
    engine: OpenAIEngine,
    expected_label: str | None,
    reply: dict[str, Any],
    label: str,
    passed: bool,
) -> None:
    server.script(answer(reply))
    verdict = await engine.judge(
        JudgeRequest(
            config={"model": "gpt-test"},
            rubric="Is it polite?",
            value="Thanks!",
            expected_label=expected_label,
        )
    )
    assert (verdict.label, verdict.passed, verdict.engine) == (label, passed, "openai")
    body = server.seen[0].body
    assert body["temperature"] == 0.0 and body["response_format"]["json_schema"]["name"] == "judgement"
    assert "Is it polite?" in user_text(body)


async def test_concurrency_limit_is_per_engine(server: ChatServer) -> None:
    eng = OpenAIEngine(base_url=server.base_url, api_key=None, max_concurrency=1)
    gate = asyncio.Event()
    first = answer({"invoice_number": "1", "total": 1})
    first.gate = gate
    server.script(first, answer({"invoice_number": "2", "total": 2}))
    results: list[Any] = []

    async def one() -> None:
        results.append((await eng.run_pass(request())).output["invoice_number"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
        while eng._slots is None or eng._slots.statistics().tasks_waiting < 1:
            await anyio.lowlevel.checkpoint()
        assert len(server.seen) <= 1  # the second pass waits for the slot, not the server
        gate.set()
    await eng.aclose()
    assert sorted(results) == ["1", "2"] and len(server.seen) == 2


async def test_engine_waits_on_its_rate_limiter(server: ChatServer, engine: OpenAIEngine) -> None:
    clock = FakeClock()
    engine.limiter = ProviderLimiter(requests_per_minute=1, clock=clock, sleep=clock.sleep)
    server.script(*[answer({"invoice_number": "1", "total": 1})] * 2)
    await engine.run_pass(request())
    await engine.run_pass(request())
    assert clock.sleeps == [60.0]


# ---------------------------------------------------------------- schema conversion


@pytest.mark.parametrize(
    ("schema", "strict", "check"),
    [
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}},
            },
            True,
            lambda s: (
                s["properties"]["a"]["type"] == ["object", "null"]
                and s["properties"]["a"]["required"] == ["b"]
                and s["properties"]["a"]["properties"]["b"]["type"] == ["integer", "null"]
            ),
        ),
        (
            {
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/line"}}},
                "required": ["items"],
                "$defs": {"line": {"type": "object", "properties": {"sku": {"type": "string"}}}},
            },
            True,
            lambda s: (
                s["$defs"]["line"]["additionalProperties"] is False
                and s["$defs"]["line"]["properties"]["sku"]["type"] == ["string", "null"]
            ),
        ),
        (
            {"type": "object", "properties": {"kind": {"type": "string", "enum": ["a", "b"]}}},
            True,
            lambda s: s["properties"]["kind"]["enum"] == ["a", "b", None],
        ),
        (
            {"type": "object", "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "number"}]}}},
            True,
            lambda s: "oneOf" not in s["properties"]["v"] and len(s["properties"]["v"]["anyOf"]) == 3,
        ),
        (
            {"type": "object", "properties": {"meta": {"type": "object"}}},
            False,
            lambda s: "additionalProperties" not in s,  # free-form: the original is sent, not strict
        ),
    ],
)
def test_strict_schema(schema: dict[str, Any], strict: bool, check: Any) -> None:
    original = copy.deepcopy(schema)
    converted, ok = strict_schema(schema)
    assert ok is strict and check(converted)
    assert schema == original


def test_drop_optional_nulls_keeps_nullable_and_required() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": ["string", "null"]},
            "c": {"type": "string"},
            "lines": {"type": "array", "items": {"$ref": "#/$defs/l"}},
        },
        "required": ["c"],
        "$defs": {"l": {"type": "object", "properties": {"x": {"type": "number"}}}},
    }
    value = {"a": None, "b": None, "c": None, "lines": [{"x": None}, {"x": 1}]}
    assert drop_optional_nulls(value, schema, schema) == {"b": None, "c": None, "lines": [{}, {"x": 1}]}


# ---------------------------------------------------------------- rate limits and backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


async def test_token_bucket_waits_when_empty_and_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock, sleep=clock.sleep)
    for _ in range(60):
        await bucket.acquire()
    assert clock.sleeps == []
    await bucket.acquire()
    assert clock.sleeps == [1.0]
    clock.now += 30
    assert bucket.level == pytest.approx(30)
    clock.now += 3600
    assert bucket.level == 60  # never more than one minute's worth


async def test_token_bucket_oversized_request_and_settle() -> None:
    clock = FakeClock()
    limiter = ProviderLimiter(tokens_per_minute=600, clock=clock, sleep=clock.sleep)  # 10 tokens/s
    await limiter.acquire(1000)  # larger than the bucket: goes now, paid back by later callers
    assert clock.sleeps == []
    await limiter.acquire(200)
    assert clock.sleeps == [60.0]  # from -400 back to 200
    limiter.settle(estimated=200, actual=300)  # the call used 100 more than estimated
    await limiter.acquire(50)
    assert clock.sleeps == [60.0, 15.0]


async def test_limiter_without_limits_never_waits() -> None:
    clock = FakeClock()
    limiter = ProviderLimiter(clock=clock, sleep=clock.sleep)
    assert not limiter.enabled
    await limiter.acquire(10**9)
    assert clock.sleeps == []
    with pytest.raises(ValueError):
        TokenBucket(0)


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_full_jitter(attempt: int) -> None:
    rng = random.Random(attempt)
    delays = [backoff_delay(attempt, None, base=0.5, cap=30.0, rng=rng) for _ in range(50)]
    assert all(0 <= d <= min(30.0, 0.5 * 2**attempt) for d in delays)
    assert all(backoff_delay(attempt, 12.0, rng=rng) >= 12.0 for _ in range(50))
    assert backoff_delay(attempt, 90.0, rng=rng) == 90.0  # the provider's wish beats the cap


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}, 30.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"retry-after-ms": "250", "Retry-After": "1"}, 0.25),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=784111777.0 - 30) == expected
