from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.engines.base import (
    BlockType,
    Document,
    Engine,
    EngineError,
    HandleValue,
    JsonInput,
    JudgeRequest,
    PassRequest,
)
from orchestrator.engines.documents import load_document
from orchestrator.engines.simulated import SimulatedEngine
from orchestrator.engines.simulated.rules import parse_number

INVOICE = """ACME Corporation
INVOICE NUMBER: INV-2024-001
invoice-date = 2024-03-01
Total amount: $1,234.56
Paid: Yes
Tags: urgent, paper
Vendor name: Acme Corp
Customer:
Name: Bob Stone

Line items:
- Widget | 2 | $10.00
- Gadget deluxe | 1 | 1,000.50
Notes: thanks
"""

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "invoice_date": {"type": "string"},
        "total_amount": {"type": "number"},
        "paid": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "vendor": {"type": "object", "properties": {"name": {"type": "string"}}},
        "customer": {"$ref": "#/$defs/Party"},
        "line_items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "quantity": {"type": "integer"},
                    "unit_price": {"type": "number"},
                },
            },
        },
        "po_number": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "$defs": {"Party": {"type": "object", "properties": {"name": {"type": "string"}}}},
}

EXPECTED_INVOICE = {
    "invoice_number": "INV-2024-001",
    "invoice_date": "2024-03-01",
    "total_amount": 1234.56,
    "paid": True,
    "tags": ["urgent", "paper"],
    "vendor": {"name": "Acme Corp"},
    "customer": {"name": "Bob Stone"},
    "line_items": [
        {"description": "Widget", "quantity": 2, "unit_price": 10.0},
        {"description": "Gadget deluxe", "quantity": 1, "unit_price": 1000.5},
    ],
    "po_number": None,
}

CATEGORIES = [
    {"name": "invoice", "description": "a bill listing amounts due, totals and line items"},
    {"name": "contract", "description": "an agreement between parties with terms and signatures"},
    {"name": "receipt", "description": "proof of payment at a store"},
]


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def text_doc(text: str, name: str = "doc.txt") -> Document:
    return load_document(filename=name, mime_type="text/plain", data=text.encode())


def request(
    block_type: BlockType = "extract",
    *,
    inputs: dict[str, HandleValue] | None = None,
    pass_index: int = 0,
    seed: int = 0,
    schema: dict[str, Any] | None = SCHEMA,
    simulation: dict[str, Any] | None = None,
    **config: Any,
) -> PassRequest:
    full: dict[str, Any] = {"model": "simulated", **config}
    if block_type == "extract" and schema is not None:
        full["json_schema"] = schema
    if simulation is not None:
        full["simulation"] = simulation
    return PassRequest(
        block_id="blk_1",
        block_type=block_type,
        config=full,
        inputs=inputs if inputs is not None else {"input-file-document": text_doc(INVOICE)},
        pass_index=pass_index,
        n_passes=3,
        seed=seed,
    )


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def engine(sleep: RecordingSleep) -> SimulatedEngine:
    return SimulatedEngine(sleep=sleep)


def test_implements_protocol(engine: SimulatedEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.name == "simulated"


async def test_extract_text_invoice(engine: SimulatedEngine, sleep: RecordingSleep) -> None:
    out = await engine.run_pass(request())
    assert out.output == EXPECTED_INVOICE
    assert out.engine == "simulated"
    assert out.model == "simulated"
    assert out.usage is not None
    assert out.usage.prompt_tokens == len(INVOICE) // 4
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens > 0
    assert sleep.calls == []  # zero latency never sleeps


async def test_extract_without_schema_returns_label_pairs(engine: SimulatedEngine) -> None:
    out = await engine.run_pass(request(schema=None))
    assert out.output["invoice_number"] == "INV-2024-001"
    assert out.output["total_amount"] == "$1,234.56"
    assert out.output["vendor_name"] == "Acme Corp"
    assert "line_items" not in out.output  # headers have no value


async def test_absent_nested_object_is_null(engine: SimulatedEngine) -> None:
    out = await engine.run_pass(request(inputs={"document": text_doc("Invoice number: 1\nName: Bob")}))
    assert out.output["vendor"] == {"name": "Bob"}  # a bare label anywhere still counts
    out = await engine.run_pass(request(inputs={"document": text_doc("Invoice number: 1")}))
    assert out.output["vendor"] is None
    assert out.output["line_items"] is None
    assert out.output["invoice_number"] == "1"


@pytest.mark.parametrize(
    "source",
    [
        JsonInput({"Invoice Number": "J-1", "total_amount": "$5", "line_items": [{"quantity": "3"}]}),
        load_document(
            filename="x.json",
            mime_type=None,
            data=b'{"invoice_number": "J-1", "total_amount": 5, "line_items": [{"quantity": 3}]}',
        ),
    ],
)
async def test_extract_json_input(engine: SimulatedEngine, source: HandleValue) -> None:
    out = await engine.run_pass(request(inputs={"input-json-data": source}))
    assert out.output["invoice_number"] == "J-1"
    assert out.output["total_amount"] == 5
    assert out.output["line_items"] == [{"description": None, "quantity": 3, "unit_price": None}]
    assert out.output["vendor"] is None
    assert set(out.output) == set(SCHEMA["properties"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,234.56", 1234.56),
        ("1.234,5 €", 1234.5),
        ("(12)", -12),
        ("-$5.10", -5.1),
        ("15%", 15),
        ("n/a", None),
    ],
)
def test_parse_number(raw: str, expected: float | None) -> None:
    assert parse_number(raw) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please pay the amount due. Totals and line items below.", "invoice"),
        ("This agreement between the parties sets the terms. Signatures:", "contract"),
        ("Thank you for your payment at our store", "receipt"),
        ("nothing relevant here", "invoice"),  # tie → first category
    ],
)
async def test_classifier(engine: SimulatedEngine, text: str, expected: str) -> None:
    req = request("classifier", inputs={"input-file-document": text_doc(text)}, categories=CATEGORIES)
    out = await engine.run_pass(req)
    assert out.output["category"] == expected
    assert out.output["reasoning"].startswith("simulated: matched words")


async def test_split_over_form_feed_pages(engine: SimulatedEngine) -> None:
    doc = text_doc("Invoice total amount due\fline items continued amounts\fagreement terms signatures\fzzz")
    subdocs = [
        {"name": "invoice", "description": "invoice with amounts and line items"},
        {"name": "contract", "description": "agreement terms and signatures"},
        {"name": "receipt", "description": "payment proof"},
    ]
    out = await engine.run_pass(request("split", inputs={"input-file-0": doc}, subdocuments=subdocs))
    assert out.output == [{"name": "invoice", "pages": [1, 2, 4]}, {"name": "contract", "pages": [3]}]


async def test_missing_categories_is_config_error(engine: SimulatedEngine) -> None:
    with pytest.raises(EngineError) as info:
        await engine.run_pass(request("classifier", categories=[]))
    assert info.value.kind == "config"


async def test_deterministic_for_same_inputs() -> None:
    sim = {"disagreement": 0.5, "jitter_ms": 0}
    a = await SimulatedEngine().run_pass(request(simulation=sim, pass_index=1, seed=7))
    b = await SimulatedEngine().run_pass(request(simulation=sim, pass_index=1, seed=7))
    assert a.output == b.output


async def test_pass_index_and_seed_change_output_under_disagreement(engine: SimulatedEngine) -> None:
    sim = {"disagreement": 0.5}
    base = (await engine.run_pass(request(simulation=sim))).output
    other_passes = [(await engine.run_pass(request(simulation=sim, pass_index=i))).output for i in (1, 2, 3)]
    other_seeds = [(await engine.run_pass(request(simulation=sim, seed=s))).output for s in (1, 2, 3)]
    assert any(o != base for o in other_passes)
    assert any(o != base for o in other_seeds)


async def test_no_disagreement_means_identical_passes(engine: SimulatedEngine) -> None:
    outs = [(await engine.run_pass(request(pass_index=i, seed=9))).output for i in range(5)]
    assert all(o == EXPECTED_INVOICE for o in outs)


@pytest.mark.parametrize("block_type", ["extract", "classifier", "split"])
async def test_full_disagreement_makes_passes_differ(engine: SimulatedEngine, block_type: BlockType) -> None:
    doc = text_doc(INVOICE + "\fagreement terms\fpayment proof")
    extra: dict[str, Any] = {"categories": CATEGORIES, "subdocuments": CATEGORIES}
    outs = [
        (
            await engine.run_pass(
                request(
                    block_type,
                    inputs={"document": doc},
                    pass_index=i,
                    simulation={"disagreement": 1},
                    **extra,
                )
            )
        ).output
        for i in range(4)
    ]
    clean = (await engine.run_pass(request(block_type, inputs={"document": doc}, **extra))).output
    assert all(o != clean for o in outs)
    assert len({repr(o) for o in outs}) > 1
    if block_type == "extract":
        assert all(o["po_number"] is not None for o in outs)  # null becomes a plausible value
        assert all(o["paid"] is False for o in outs)  # booleans flip
        assert all(o["total_amount"] != 1234.56 and 1100 < o["total_amount"] < 1360 for o in outs)


async def test_error_rate_one_is_permanent(engine: SimulatedEngine) -> None:
    for _ in range(2):
        with pytest.raises(EngineError) as info:
            await engine.run_pass(request(simulation={"error_rate": 1}))
        assert info.value.kind == "simulated"
        assert info.value.code == "simulated_error"
        assert info.value.transient is False


async def test_transient_error_then_retry_succeeds(engine: SimulatedEngine) -> None:
    req = request(simulation={"transient_error_rate": 1})
    with pytest.raises(EngineError) as info:
        await engine.run_pass(req)
    assert info.value.kind == "simulated"
    assert info.value.code == "simulated_transient_error"
    assert info.value.transient is True
    # another pass of the same child fails on its own first attempt
    with pytest.raises(EngineError):
        await engine.run_pass(request(simulation={"transient_error_rate": 1}, pass_index=1))
    out = await engine.run_pass(req)
    assert out.output == EXPECTED_INVOICE


async def test_zero_rates_never_fail(engine: SimulatedEngine) -> None:
    sim = {"transient_error_rate": 0, "error_rate": 0, "latency_ms": 0}
    for i in range(20):
        await engine.run_pass(request(simulation=sim, pass_index=i))


@pytest.mark.parametrize(
    ("simulation", "low", "high"),
    [
        ({"latency_ms": 250}, 0.25, 0.25),
        ({"latency_ms": 100, "jitter_ms": 50}, 0.1, 0.15),
        ({"jitter_ms": 40}, 0, 0.04),
    ],
)
async def test_latency_uses_injected_sleep(
    engine: SimulatedEngine, sleep: RecordingSleep, simulation: dict[str, Any], low: float, high: float
) -> None:
    await engine.run_pass(request(simulation=simulation))
    assert len(sleep.calls) == 1
    assert low <= sleep.calls[0] <= high
    await engine.run_pass(request(simulation=simulation))
    assert sleep.calls[1] == sleep.calls[0]  # jitter is deterministic too


async def test_invalid_simulation_options(engine: SimulatedEngine) -> None:
    with pytest.raises(EngineError) as info:
        await engine.run_pass(request(simulation={"latency_ms": "slow"}))
    assert info.value.kind == "config"


async def test_missing_input(engine: SimulatedEngine) -> None:
    with pytest.raises(EngineError) as info:
        await engine.run_pass(request(inputs={}))
    assert info.value.kind == "input"


@pytest.mark.parametrize(
    ("rubric", "value", "expected_label", "label", "passed"),
    [
        ("The total should mention invoice amount", {"invoice": 1, "amount": 2}, None, "pass", True),
        ("The total should mention invoice amount", "nothing here", None, "fail", False),
        ("mentions refund policy clearly", "refund policy: none", "compliant", "compliant", True),
        ("mentions refund policy clearly", "n/a", "compliant", "not_compliant", False),
    ],
)
async def test_judge(
    engine: SimulatedEngine, rubric: str, value: Any, expected_label: str | None, label: str, passed: bool
) -> None:
    answer = await engine.judge(
        JudgeRequest(config={"model": "simulated"}, rubric=rubric, value=value, expected_label=expected_label)
    )
    assert (answer.label, answer.passed, answer.engine) == (label, passed, "simulated")
    assert answer.reasoning.startswith("simulated:")


@pytest.mark.parametrize(
    ("rubric", "value", "decided", "passed"),
    [
        # Negation: the terms after "not" must be absent (the keyword test passed "NOT Acme" for Acme).
        ("the vendor is NOT Acme", "Acme Supplies Ltd", True, False),
        ("the vendor is NOT Acme", "Globex Corporation", True, True),
        ("the vendor isn't Acme", "ACME", True, False),
        ("has no refund policy", "refund policy: 30 days", True, False),
        # Cannot decide: blocked by the runner, never passed.
        ("is ok", "anything", True, False),  # a term to look for, absent: failed
        ("a an the", "x", False, False),  # nothing but stop words (it passed: no long words)
        ("not", "x", False, False),  # a negation of nothing
        ("not Acme and not Globex", "Initech", False, False),  # two negations
        ("mentions refund policy clearly", "refund", False, False),  # 1 of 4 terms: too little evidence
        ("is polite", "ok", True, False),
    ],
)
async def test_judge_handles_negation_and_says_when_it_cannot_decide(
    engine: SimulatedEngine, rubric: str, value: Any, decided: bool, passed: bool
) -> None:
    answer = await engine.judge(JudgeRequest(config={}, rubric=rubric, value=value, expected_label=None))
    assert (answer.decided, answer.passed) == (decided, passed), answer
    assert answer.engine == "simulated" and "not a language model" in answer.reasoning
    if not decided:
        assert answer.label == "undecided"


async def test_aclose(engine: SimulatedEngine) -> None:
    await engine.aclose()


async def test_passes_parse_once_and_never_share_output(engine: SimulatedEngine) -> None:
    """n passes over one document parse it once. Seen from outside: once the first pass has read the
    document, later passes over it never read its text again, so changing the text under them (a frozen
    dataclass, hence object.__setattr__) changes nothing, while a new document with that text is parsed."""
    doc = text_doc(INVOICE)
    first = await engine.run_pass(request(inputs={"input-file-document": doc}))
    assert first.output == EXPECTED_INVOICE
    blank = "nothing to extract here"
    object.__setattr__(doc, "text", blank)  # a parse that ran again would find no field at all
    object.__setattr__(doc, "pages", (blank,))
    again = [(await engine.run_pass(request(inputs={"d": doc}, pass_index=i))).output for i in range(1, 4)]
    assert again == [EXPECTED_INVOICE] * 3
    fresh = await engine.run_pass(request(inputs={"d": text_doc(blank)}))  # the check above can fail
    assert fresh.output["invoice_number"] is None and fresh.output["line_items"] is None

    # Never shared: mutating one pass's output, at any depth, changes no other pass's output.
    first.output["line_items"][0]["quantity"] = 99
    first.output["line_items"].clear()
    first.output["vendor"]["name"] = "mutated"
    first.output["invoice_number"] = "mutated"
    again[0]["customer"]["name"] = "mutated"
    again[0]["tags"].append("mutated")
    assert again[1] == again[2] == EXPECTED_INVOICE
    later = await engine.run_pass(request(inputs={"input-file-document": doc}, pass_index=4))
    assert later.output == EXPECTED_INVOICE


async def test_disagreeing_passes_never_share_output(engine: SimulatedEngine) -> None:
    """With `disagreement`, outputs are perturbed copies of the cached parse: mutating one (deeply)
    changes neither the parse nor a rerun of the same pass (which is deterministic)."""
    req = request(simulation={"disagreement": 0.5}, pass_index=2)
    out = (await engine.run_pass(req)).output
    snapshot = copy.deepcopy(out)
    out["line_items"][0]["description"] = "mutated"
    out["line_items"].append({"description": "extra"})
    out["vendor"]["name"] = "mutated"
    out["tags"].clear()
    assert (await engine.run_pass(req)).output == snapshot
    assert (await engine.run_pass(request())).output == EXPECTED_INVOICE


async def test_huge_integers_survive(engine: SimulatedEngine) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    out = await engine.run_pass(request(inputs={"d": JsonInput({"n": 10**30})}, schema=schema))
    assert out.output == {"n": 10**30}
