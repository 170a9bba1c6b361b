"""Engine that runs a user's Python function: `"model": "python:package.module:function"`.

The function is imported on first use and cached. It is called as
`fn(config=dict, inputs=dict, pass_index=int)` where `inputs` maps handle id to a `Document`
or, for JSON handles, to the JSON data itself; its return value is the pass output. Sync
functions run in a worker thread so they never block the event loop; async ones are awaited.
An optional `judge(config=, rubric=, value=, expected_label=)` in the same module answers
`llm_judged_as` assertions; it may return a `JudgeAnswer`, a `{label, passed, reasoning}` dict or a bool.

Failures become `EngineError`s, never crashes. A function may raise `EngineError` itself, e.g.
with `transient=True` to ask the runner for a retry.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from orchestrator.engines.base import (
    EngineError,
    JsonInput,
    JudgeAnswer,
    JudgeRequest,
    PassOutput,
    PassRequest,
)

PREFIX = "python:"


def _import_error(spec: str, why: str) -> EngineError:
    return EngineError(
        kind="config",
        code="python_import_error",
        message=f"cannot load {spec!r}: {why}",
        details={"model": spec},
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PythonEngine:
    name = "python"

    def __init__(self, *, function: str | None = None) -> None:
        """`function` (a `python:module:attr` spec) replaces the block's model name when set."""
        self.function = function
        self._cache: dict[str, Callable[..., Any]] = {}

    def _spec(self, config: Mapping[str, Any]) -> str:
        spec = self.function or config.get("model") or ""
        return str(spec)

    def load(self, spec: str) -> Callable[..., Any]:
        """Import the function named by `spec`; errors become `python_import_error`."""
        cached = self._cache.get(spec)
        if cached is not None:
            return cached
        target = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
        module_name, sep, attr = target.partition(":")
        if not sep or not module_name or not attr:
            raise _import_error(spec, "expected the form python:package.module:function")
        module = self._module(spec, module_name)
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise _import_error(spec, f"module {module_name!r} has no attribute {attr!r}") from None
        if not callable(obj):
            raise _import_error(spec, f"{attr!r} is not callable")
        self._cache[spec] = obj
        return obj  # type: ignore[no-any-return]

    @staticmethod
    def _module(spec: str, module_name: str) -> Any:
        try:
            return importlib.import_module(module_name)
        except Exception as exc:  # user code: SyntaxError, ImportError, anything its top level raises
            raise _import_error(spec, _describe(exc)) from None

    async def _call(self, spec: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(**kwargs)
            else:
                # Abandon on cancel: a pass timeout must not wait for a thread that cannot be interrupted.
                result = await anyio.to_thread.run_sync(functools.partial(fn, **kwargs), abandon_on_cancel=True)
                if inspect.isawaitable(result):
                    result = await result
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(
                kind="provider",
                code="python_function_error",
                message=f"{spec} raised {_describe(exc)}",
                details={"model": spec, "exception": type(exc).__name__},
            ) from None
        return result

    def immediate(self, config: Mapping[str, Any]) -> bool:
        return False  # a user's function may do anything, and sync ones run in a thread

    async def run_pass(self, request: PassRequest) -> PassOutput:
        spec = self._spec(request.config)
        fn = self.load(spec)
        inputs = {k: (v.data if isinstance(v, JsonInput) else v) for k, v in request.inputs.items()}
        output = await self._call(
            spec, fn, config=copy.deepcopy(dict(request.config)), inputs=inputs, pass_index=request.pass_index
        )
        return PassOutput(output=output, engine=self.name, model=str(request.config.get("model") or spec))

    async def judge(self, request: JudgeRequest) -> JudgeAnswer:
        spec = self._spec(request.config)
        module_name = (spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec).partition(":")[0]
        module = self._module(spec, module_name) if module_name else None
        judge_fn = getattr(module, "judge", None)
        if not callable(judge_fn):
            raise EngineError(
                kind="config",
                code="judge_not_supported",
                message=f"module {module_name or spec!r} defines no judge(config, rubric, value, expected_label)",
            )
        answer = await self._call(
            f"{PREFIX}{module_name}:judge",
            judge_fn,
            config=copy.deepcopy(dict(request.config)),
            rubric=request.rubric,
            value=request.value,
            expected_label=request.expected_label,
        )
        return self._judge_answer(spec, answer)

    async def aclose(self) -> None:
        self._cache.clear()

    def _judge_answer(self, spec: str, answer: Any) -> JudgeAnswer:
        if isinstance(answer, JudgeAnswer):
            answer.engine = answer.engine or self.name
            return answer
        if isinstance(answer, bool):
            return JudgeAnswer(label="pass" if answer else "fail", passed=answer, engine=self.name)
        if isinstance(answer, Mapping) and "passed" in answer:
            passed = bool(answer["passed"])
            label = str(answer.get("label") or ("pass" if passed else "fail"))
            return JudgeAnswer(
                label=label, passed=passed, reasoning=str(answer.get("reasoning") or ""), engine=self.name
            )
        raise EngineError(
            kind="provider",
            code="python_function_error",
            message=f"judge of {spec} returned {type(answer).__name__}; expected a JudgeAnswer, a dict with "
            "`passed`, or a bool",
        )
