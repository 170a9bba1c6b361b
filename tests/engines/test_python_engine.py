from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engines.base import Document, EngineError, JsonInput, JudgeRequest, PassRequest
from orchestrator.engines.python import PythonEngine

USER_MODULE = """
import asyncio
import threading

from orchestrator.engines.base import EngineError, JudgeAnswer

not_callable = 3


def extract(config, inputs, pass_index):
    return {
        "model": config["model"],
        "pass": pass_index,
        "doc": inputs["input-file-document"].filename,
        "po": inputs.get("input-json-po"),
        "in_worker_thread": threading.current_thread() is not threading.main_thread(),
    }


async def aextract(config, inputs, pass_index):
    await asyncio.sleep(0)
    return {"async": True, "pass": pass_index}


def boom(config, inputs, pass_index):
    raise ValueError("bad invoice")


def busy(config, inputs, pass_index):
    raise EngineError(kind="provider", code="upstream_busy", message="busy", transient=True)


def mutate(config, inputs, pass_index):
    config["model"] = "changed"
    return "ok"


class Rules:
    @staticmethod
    def classify(config, inputs, pass_index):
        return {"category": "invoice", "reasoning": "rules"}


def judge(config, rubric, value, expected_label):
    if value == "bool":
        return True
    if value == "answer":
        return JudgeAnswer(label="custom", passed=False)
    if value == "junk":
        return 42
    return {"label": expected_label or "ok", "passed": value == "good", "reasoning": rubric}
"""

_names = itertools.count()


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(source: str) -> str:
        name = f"user_fns_{next(_names)}_{abs(hash(str(tmp_path)))}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    return make


@pytest.fixture
def mod(make_module: Any) -> str:
    name: str = make_module(USER_MODULE)
    return name


DOC = Document(filename="a.pdf", mime_type="application/pdf", content_id="0" * 16, text="x", pages=("x",))


def request(model: str, pass_index: int = 0) -> PassRequest:
    return PassRequest(
        block_id="blk_1",
        block_type="extract",
        config={"model": model, "json_schema": {"type": "object"}},
        inputs={"input-file-document": DOC, "input-json-po": JsonInput({"po": 9})},
        pass_index=pass_index,
        n_passes=3,
    )


async def test_sync_function_runs_in_a_worker_thread(mod: str) -> None:
    engine = PythonEngine()
    out = await engine.run_pass(request(f"python:{mod}:extract", pass_index=2))
    assert out.output == {
        "model": f"python:{mod}:extract",
        "pass": 2,
        "doc": "a.pdf",
        "po": {"po": 9},  # JSON handles arrive as their data
        "in_worker_thread": True,
    }
    assert (out.engine, out.model, out.usage) == ("python", f"python:{mod}:extract", None)
    assert engine.load(f"python:{mod}:extract") is engine.load(f"python:{mod}:extract")


@pytest.mark.parametrize(("attr", "expected"), [("aextract", {"async": True, "pass": 1}), ("Rules.classify", None)])
async def test_async_and_nested_functions(mod: str, attr: str, expected: Any) -> None:
    out = await PythonEngine().run_pass(request(f"python:{mod}:{attr}", pass_index=1))
    assert out.output == (expected or {"category": "invoice", "reasoning": "rules"})


async def test_function_gets_a_copy_of_the_config(mod: str) -> None:
    req = request(f"python:{mod}:mutate")
    await PythonEngine().run_pass(req)
    assert req.config["model"] == f"python:{mod}:mutate"


async def test_route_function_overrides_the_model_name(mod: str) -> None:
    out = await PythonEngine(function=f"python:{mod}:aextract").run_pass(request("invoice-rules"))
    assert (out.output["async"], out.model) == (True, "invoice-rules")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("python:no_such_module_xyz:fn", "ModuleNotFoundError"),
        ("python:{mod}:missing", "has no attribute 'missing'"),
        ("python:{mod}:not_callable", "is not callable"),
        ("python:{mod}", "python:package.module:function"),
        ("python:{broken}:fn", "RuntimeError: broken at import"),
        ("python:{syntax}:fn", "SyntaxError"),
    ],
)
async def test_import_problems_are_config_errors(make_module: Any, mod: str, spec: str, needle: str) -> None:
    broken = make_module("raise RuntimeError('broken at import')\n")
    syntax = make_module("def fn(:\n")
    with pytest.raises(EngineError) as info:
        await PythonEngine().run_pass(request(spec.format(mod=mod, broken=broken, syntax=syntax)))
    err = info.value
    assert (err.kind, err.code, err.transient) == ("config", "python_import_error", False)
    assert needle in err.message


async def test_raising_function_is_a_permanent_error(mod: str) -> None:
    with pytest.raises(EngineError) as info:
        await PythonEngine().run_pass(request(f"python:{mod}:boom"))
    err = info.value
    assert (err.kind, err.code, err.transient) == ("provider", "python_function_error", False)
    assert "ValueError: bad invoice" in err.message


async def test_engine_error_from_the_function_passes_through(mod: str) -> None:
    with pytest.raises(EngineError) as info:
        await PythonEngine().run_pass(request(f"python:{mod}:busy"))
    assert (info.value.code, info.value.transient) == ("upstream_busy", True)


@pytest.mark.parametrize(
    ("value", "expected_label", "label", "passed"),
    [
        ("good", None, "ok", True),
        ("bad", "polite", "polite", False),
        ("bool", None, "pass", True),
        ("answer", None, "custom", False),
    ],
)
async def test_judge(mod: str, value: str, expected_label: str | None, label: str, passed: bool) -> None:
    answer = await PythonEngine().judge(
        JudgeRequest(config={"model": f"python:{mod}:extract"}, rubric="R", value=value, expected_label=expected_label)
    )
    assert (answer.label, answer.passed, answer.engine) == (label, passed, "python")


async def test_judge_errors(make_module: Any, mod: str) -> None:
    plain = make_module("def fn(config, inputs, pass_index):\n    return 1\n")
    with pytest.raises(EngineError) as info:
        await PythonEngine().judge(
            JudgeRequest(config={"model": f"python:{plain}:fn"}, rubric="R", value=1, expected_label=None)
        )
    assert (info.value.kind, info.value.code) == ("config", "judge_not_supported")
    with pytest.raises(EngineError) as info:
        await PythonEngine().judge(
            JudgeRequest(config={"model": f"python:{mod}:extract"}, rubric="R", value="junk", expected_label=None)
        )
    assert info.value.code == "python_function_error"
