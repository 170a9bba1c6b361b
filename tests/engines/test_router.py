from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engines.base import EngineError, JudgeAnswer, JudgeRequest, PassOutput, PassRequest
from orchestrator.engines.openai import OpenAIEngine
from orchestrator.engines.python import PythonEngine
from orchestrator.engines.router import EngineRouter, Route

MODELS = """
[[routes]]
match = "gpt-4o-mini"
engine = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "TEST_OPENAI_KEY"
max_concurrency = 16
requests_per_minute = 500
tokens_per_minute = 200000
timeout_s = 60

[[routes]]
match = "gpt-4o*"
engine = "openai"
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "TEST_MISSING_KEY"
model = "llama3.1"
structured_outputs = "json_object"

[[routes]]
match = "retab-large"
engine = "openai"
base_url = "http://127.0.0.1:8001/v1"

[[routes]]
match = "rules-*"
engine = "python"
model = "python:my_rules:extract"
"""
ENV = {"TEST_OPENAI_KEY": "sk-very-secret"}


class FakeEngine:
    def __init__(self, route: Route) -> None:
        self.name = route.engine
        self.route = route
        self.closed = False

    async def run_pass(self, request: PassRequest) -> PassOutput:
        return PassOutput(output={}, engine=self.name, model=str(request.config["model"]))

    async def judge(self, request: JudgeRequest) -> JudgeAnswer:
        return JudgeAnswer(label="pass", passed=True)

    async def aclose(self) -> None:
        self.closed = True


def fake(route: Route, environ: Mapping[str, str]) -> FakeEngine:
    return FakeEngine(route)


FAKES = {"openai": fake, "python": fake, "simulated": fake}


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(MODELS)
    return path


def test_parses_the_models_file(models_file: Path) -> None:
    router = EngineRouter.from_file(str(models_file), environ=ENV, factories=FAKES)
    first, second = router.routes[0], router.routes[1]
    assert first == Route(
        match="gpt-4o-mini",
        engine="openai",
        base_url="https://api.openai.com/v1",
        api_key_env="TEST_OPENAI_KEY",
        max_concurrency=16,
        requests_per_minute=500.0,
        tokens_per_minute=200000.0,
        timeout_s=60.0,
    )
    assert (second.model, second.structured_outputs, second.max_concurrency) == ("llama3.1", "json_object", 8)
    assert [r.match for r in router.routes[-3:]] == ["simulated*", "retab-*", "python:*"]
    assert all(r.builtin for r in router.routes[-3:])


@pytest.mark.parametrize(
    ("model", "match", "engine"),
    [
        ("gpt-4o-mini", "gpt-4o-mini", "openai"),  # the first matching route wins
        ("gpt-4o", "gpt-4o*", "openai"),
        ("gpt-4o-2024-08-06", "gpt-4o*", "openai"),
        ("retab-large", "retab-large", "openai"),  # a file route shadows a built-in
        ("retab-small", "retab-*", "simulated"),
        ("simulated", "simulated*", "simulated"),
        ("simulated-slow", "simulated*", "simulated"),
        ("rules-invoice", "rules-*", "python"),
        ("python:pkg.mod:fn", "python:*", "python"),
    ],
)
def test_route_order_and_builtins(models_file: Path, model: str, match: str, engine: str) -> None:
    router = EngineRouter.from_file(models_file, environ=ENV, factories=FAKES)
    resolved = router.resolve(model)
    assert isinstance(resolved, FakeEngine)
    assert (resolved.route.match, resolved.name) == (match, engine)


def test_one_engine_per_route(models_file: Path) -> None:
    router = EngineRouter.from_file(models_file, environ=ENV, factories=FAKES)
    assert router.resolve("gpt-4o") is router.resolve("gpt-4o-2024-08-06")
    assert router.resolve("gpt-4o") is not router.resolve("gpt-4o-mini")


def test_unrouted_model_is_a_config_error() -> None:
    router = EngineRouter.from_file(None, factories=FAKES)
    assert [r.match for r in router.routes] == ["simulated*", "retab-*", "python:*"]
    with pytest.raises(EngineError) as info:
        router.resolve("claude-3")
    err = info.value
    assert (err.kind, err.code, err.transient) == ("config", "model_not_configured", False)
    assert "'claude-3'" in err.message and "--models FILE / ORCHESTRATOR_MODELS" in err.message


def test_real_factories(models_file: Path) -> None:
    router = EngineRouter.from_file(models_file, environ=ENV)
    with_key, without_key = router.resolve("gpt-4o-mini"), router.resolve("gpt-4o")
    assert isinstance(with_key, OpenAIEngine) and isinstance(without_key, OpenAIEngine)
    assert with_key._headers["Authorization"] == "Bearer sk-very-secret"
    assert "Authorization" not in without_key._headers  # missing env var: no header, still usable
    assert (without_key.model_override, without_key.response_format_mode) == ("llama3.1", "json_object")
    assert with_key.limiter.requests is not None and with_key.limiter.requests.per_minute == 500
    python = router.resolve("rules-x")
    assert isinstance(python, PythonEngine) and python.function == "python:my_rules:extract"
    assert isinstance(router.resolve("python:a:b"), PythonEngine)


def test_builtin_simulated_engine() -> None:
    simulated = pytest.importorskip("orchestrator.engines.simulated")
    engine = EngineRouter.from_file(None).resolve("retab-small")
    assert isinstance(engine, simulated.SimulatedEngine) and engine.name == "simulated"


def test_describe_never_shows_keys(models_file: Path) -> None:
    described = EngineRouter.from_file(models_file, environ=ENV, factories=FAKES).describe()
    assert "sk-very-secret" not in json.dumps(described)
    first, second = described[0], described[1]
    assert first["api_key_env"] == "TEST_OPENAI_KEY" and first["api_key_set"] is True
    assert second["api_key_set"] is False and second["model"] == "llama3.1"
    assert (first["requests_per_minute"], first["tokens_per_minute"], first["max_concurrency"]) == (
        500,
        200000,
        16,
    )
    retab = next(d for d in described if d["match"] == "retab-*")
    assert retab["engine"] == "simulated" and retab["builtin"] and "Retab-hosted" in retab["note"]


async def test_aclose_closes_every_engine(models_file: Path) -> None:
    router = EngineRouter.from_file(models_file, environ=ENV, factories=FAKES)
    engines = [router.resolve(m) for m in ("gpt-4o", "gpt-4o-mini", "retab-small")]
    await router.aclose()
    assert all(isinstance(e, FakeEngine) and e.closed for e in engines)
    assert router.resolve("gpt-4o") is not engines[0]  # a fresh engine after close


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[routes]\nmatch = 1", "invalid TOML"),
        ('[[routes]]\nmatch = "x"\nengine = "anthropic"', "unknown engine 'anthropic'"),
        ('[[routes]]\nengine = "simulated"', "`match`"),
        ('[[routes]]\nmatch = "x"\nengine = "openai"', "needs base_url"),
        ('[[routes]]\nmatch = "x"\nengine = "simulated"\napi_key = "sk-1"', "unknown key(s) api_key"),
        ('[[routes]]\nmatch = "x"\nengine = "simulated"\nrequests_per_minute = -5', "positive number"),
        ('[[routes]]\nmatch = "x"\nengine = "simulated"\nmax_concurrency = 2.5', "positive integer"),
        ('[[routes]]\nmatch = "x"\nengine = "simulated"\nmax_concurrency = true', "positive number"),
        (
            '[[routes]]\nmatch = "x"\nengine = "openai"\nbase_url = "u"\nstructured_outputs = "xml"',
            "structured_outputs",
        ),
        ('[[route]]\nmatch = "x"\nengine = "simulated"', "unknown top-level key(s) route"),
        ('routes = "x"', "array of tables"),
    ],
)
def test_invalid_models_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        EngineRouter.from_file(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_missing_models_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read models file"):
        EngineRouter.from_file(tmp_path / "nope.toml")


def test_fake_engine_satisfies_the_protocol() -> None:
    from orchestrator.engines.base import Engine

    route: Any = Route("x", "simulated")
    assert isinstance(FakeEngine(route), Engine)


@pytest.mark.parametrize(
    ("routes", "simulated"),
    [
        ((), ["simulated*", "retab-*"]),
        # A models-file route taking one retab-* name first: said, so nobody thinks it is simulated.
        ((Route("retab-large", "openai", base_url="http://x/v1"),), ["simulated*", "retab-* (except retab-large)"]),
        ((Route("demo-*", "simulated"),), ["demo-*", "simulated*", "retab-*"]),
    ],
)
def test_simulated_models_are_named(routes: tuple[Route, ...], simulated: list[str]) -> None:
    router = EngineRouter(routes)
    assert router.simulated_models() == simulated
    assert [r["match"] for r in router.describe() if r["simulated"]] == [s.split(" ")[0] for s in simulated]
