"""The models file's `[prices]` table and per-route `cache` switch, and what each engine states as the
identity of its call (the pass cache's key material): the full request, never the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.usage import Price
from orchestrator.engines.base import Document, JsonInput, PassRequest
from orchestrator.engines.openai import OpenAIEngine
from orchestrator.engines.router import EngineRouter, parse_prices, parse_routes
from orchestrator.engines.simulated import SimulatedEngine
from orchestrator.ids import canonical_json

MODELS = """
[[routes]]
match = "cheap"
engine = "openai"
base_url = "https://api.example.com/v1"
model = "gpt-4o-mini"

[[routes]]
match = "fresh-*"
engine = "simulated"
cache = false

[prices]
"gpt-4o*" = { input = 2.5, output = 10 }
"gpt-4o-mini" = { input = 0.15, output = 0.6 }
"local-*" = { input = 0, output = 0 }
"""


@pytest.fixture
def router(tmp_path: Path) -> EngineRouter:
    path = tmp_path / "models.toml"
    path.write_text(MODELS)
    return EngineRouter.from_file(path)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o-mini", Price(0.15, 0.6)),  # an exact key beats an earlier pattern
        ("gpt-4o-2024-08-06", Price(2.5, 10.0)),
        ("cheap", Price(0.15, 0.6)),  # no key of its own: the name its route sends to the provider
        ("local-llama", Price(0.0, 0.0)),
        ("retab-small", None),  # unknown: tokens without a cost
        ("unrouted", None),
    ],
)
def test_price_for_a_model(router: EngineRouter, model: str, price: Price | None) -> None:
    assert router.price_for(model) == price


def test_routes_may_turn_the_cache_off(router: EngineRouter) -> None:
    cache = {r["match"]: r["cache"] for r in router.describe()}
    assert cache["fresh-*"] is False and cache["cheap"] is True and cache["simulated*"] is True
    assert router.route_for("fresh-1") is not None and router.route_for("nothing") is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[prices]\n"m" = { input = 1 }\n', "must be { input = USD, output = USD }"),
        ('[prices]\n"m" = { input = 1, output = -2 }\n', "`output` must be a number"),
        ('[prices]\n"m" = { input = "1", output = 2 }\n', "`input` must be a number"),
        ('[prices]\n"m" = { input = true, output = 2 }\n', "`input` must be a number"),
        ('[prices]\n"m" = 3\n', "must be { input = USD, output = USD }"),
        ("prices = 3\n", "`prices` must be a table"),
        ('[[routes]]\nmatch = "m"\nengine = "simulated"\ncache = "no"\n', "`cache` must be true or false"),
        ('[pricing]\n"m" = { input = 1, output = 2 }\n', "unknown top-level key(s) pricing"),
    ],
)
def test_invalid_prices_and_switches_are_refused_by_name(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=r"models\.toml") as caught:
        parse_routes(text, source="models.toml")
        parse_prices(text, source="models.toml")
    assert needle in str(caught.value)


def _request(config: Mapping[str, Any], inputs: Mapping[str, Any] | None = None, n: int = 3) -> PassRequest:
    doc = Document("inv.txt", "text/plain", "abc123", "Invoice 1", ("Invoice 1",), sha256="f" * 64)
    return PassRequest("blk", "extract", config, inputs or {"document": doc}, 0, n, seed=0)


def test_the_simulated_identity_leaves_timing_out_and_keeps_what_changes_answers() -> None:
    engine = SimulatedEngine()
    base = {"model": "simulated", "json_schema": {"type": "object"}}
    same = engine.cache_identity(_request({**base, "simulation": {"latency_ms": 500, "disagreement": 0.2}}))
    assert same == engine.cache_identity(_request({**base, "simulation": {"latency_ms": 5, "disagreement": 0.2}}))
    assert same != engine.cache_identity(_request({**base, "simulation": {"disagreement": 0.3}}))
    json_in = engine.cache_identity(_request(base, {"input-json-0": JsonInput({"total": 1})}))
    assert json_in != engine.cache_identity(_request(base, {"input-json-0": JsonInput({"total": 2})}))


def test_the_openai_identity_is_the_request_without_its_key() -> None:
    engine = OpenAIEngine(base_url="https://api.example.com/v1", api_key="sk-secret-key")
    config = {"model": "gpt-4o-mini", "json_schema": {"type": "object", "properties": {"total": {"type": "number"}}}}
    identity = engine.cache_identity(_request(config))
    text = canonical_json(identity).decode()
    assert "sk-secret-key" not in text and "Invoice 1" in text and "api.example.com" in text
    body = identity["body"]
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 1.0 and "seed" not in body
    assert engine.cache_identity(_request(config, n=1))["body"]["temperature"] == 0.0  # a different request
    described = {
        **config,
        "json_schema": {"type": "object", "properties": {"total": {"type": "number", "description": "x"}}},
    }
    assert engine.cache_identity(_request(described)) != identity


def test_the_readme_models_file_parses() -> None:
    """README's models file example, prices and a route without the cache included, is valid as printed."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[prices]" in b]
    routes = parse_routes(block, source="README")
    assert any(r.match == "gpt-4o-live" and r.cache is False for r in routes)
    assert dict(parse_prices(block, source="README"))["gpt-4o-mini"] == Price(0.15, 0.6)
