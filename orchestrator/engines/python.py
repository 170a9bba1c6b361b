"""Engine that runs a user's Python function: `"model": "python:package.module:function"`.

The function is imported on first use and cached. It is called as
`fn(config=dict, inputs=dict, pass_index=int)` where `inputs` maps handle id to a `Document`
or, for JSON handles, to the JSON data itself; its return value is the pass output. Sync
functions run in a worker thread so they never block the event loop; async ones are awaited.
An optional `judge(config=, rubric=, value=, expected_label=)` in the same module answers
`llm_judged_as` assertions; it may return a `JudgeAnswer`, a `{label, passed, reasoning}` dict or a bool.

A function that wants its token usage counted (and priced, see the models file's `[prices]`) returns
`PassOutput(output=..., engine="python", model=..., usage=Usage(...))` instead of the bare output.

Failures become `EngineError`s, never crashes. A function may raise `EngineError` itself, e.g.
with `transient=True` to ask the runner for a retry.

Only modules the operator allows are imported (`--python-modules`, plus the python routes of the
models file): a block is written by any API caller, and `python:MODULE:ATTR` would otherwise import
any module of the server and call any callable in it (`python:this:x` printed the Zen of Python).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from orchestrator.engines.base import (
    Document,
    EngineError,
    HandleValue,
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


def _input_identity(value: HandleValue) -> Any:
    if isinstance(value, Document):  # the bytes are in the key (sha256); what else the function sees
        return {"filename": value.filename, "mime_type": value.mime_type, "content": value.sha256 or value.content_id}
    return {"json": value.data}


def module_of(spec: str) -> str:
    """`python:pkg.mod:fn` → `pkg.mod`."""
    return (spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec).partition(":")[0]


def module_allowed(module: str, allowed: tuple[str, ...]) -> bool:
    """An allowed entry admits itself and its submodules (`pkg` admits `pkg.rules`, not `pkgx`)."""
    return any(module == a or module.startswith(a + ".") for a in allowed)


def not_allowed(spec: str) -> EngineError:
    module = module_of(spec)
    return EngineError(
        kind="config",
        code="python_module_not_allowed",
        message=f"module {module!r} is not allowed to run as {spec!r}: the operator lists the modules blocks may"
        " call in --python-modules (ORCHESTRATOR_PYTHON_MODULES) or routes them in the models file",
        details={"model": spec, "module": module, "setting": "python_modules"},
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PythonEngine:
    name = "python"

    def __init__(self, *, function: str | None = None, allowed: tuple[str, ...] | None = None) -> None:
        """`function` (a `python:module:attr` spec) replaces the block's model name when set; `allowed`:
        the modules it may import (None: any, for an engine built by hand; the router always passes them)."""
        self.function = function
        self.allowed = allowed
        self._cache: dict[str, Callable[..., Any]] = {}

    def allow_modules(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self._cache.clear()

    def _check(self, spec: str) -> None:
        if self.allowed is not None and spec != self.function and not module_allowed(module_of(spec), self.allowed):
            raise not_allowed(spec)
        self._digests: dict[str, str] = {}  # spec -> sha256 of its module's source (cache identity)

    def _spec(self, config: Mapping[str, Any]) -> str:
        spec = self.function or config.get("model") or ""
        return str(spec)

    def load(self, spec: str) -> Callable[..., Any]:
        """Import the function named by `spec`; errors become `python_import_error`."""
        cached = self._cache.get(spec)
        if cached is not None:
            return cached
        self._check(spec)  # before anything is imported
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

    def cache_identity(self, request: PassRequest) -> Any:
        """What the function is called with (config, inputs as it sees them; the pass index is the
        runner's to add) and the function itself: its name and the sha256 of its module's source, so
        that an edited function (the server restarted to load it) never gets its old answers."""
        spec = self._spec(request.config)
        self.load(spec)
        return {
            "function": spec,
            "code": self._code(spec),
            "config": dict(request.config),
            "inputs": {h: _input_identity(v) for h, v in request.inputs.items()},
        }

    def _code(self, spec: str) -> str:
        digest = self._digests.get(spec)
        if digest is None:
            module = sys.modules.get((spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec).partition(":")[0])
            try:
                source = inspect.getsource(module) if module is not None else ""
            except (OSError, TypeError):  # no source (a C extension, a module built at run time)
                source = ""
            digest = self._digests[spec] = hashlib.sha256(source.encode()).hexdigest()
        return digest

    async def run_pass(self, request: PassRequest) -> PassOutput:
        spec = self._spec(request.config)
        fn = self.load(spec)
        inputs = {k: (v.data if isinstance(v, JsonInput) else v) for k, v in request.inputs.items()}
        output = await self._call(
            spec, fn, config=copy.deepcopy(dict(request.config)), inputs=inputs, pass_index=request.pass_index
        )
        model = str(request.config.get("model") or spec)
        if isinstance(output, PassOutput):  # a function that reports the tokens it used (and so its cost)
            return PassOutput(output=output.output, engine=self.name, model=model, usage=output.usage)
        return PassOutput(output=output, engine=self.name, model=model)

    async def judge(self, request: JudgeRequest) -> JudgeAnswer:
        spec = self._spec(request.config)
        self._check(spec)
        module_name = module_of(spec)
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
