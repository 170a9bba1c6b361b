"""Model name → engine, configured by a TOML "models file" (`--models FILE` / `ORCHESTRATOR_MODELS`).

```toml
[[routes]]
match = "gpt-4o*"                 # fnmatch pattern (case-sensitive) on the block's `model`
engine = "openai"                 # openai | python | simulated
base_url = "https://api.openai.com/v1"   # openai only, required: the server's /v1 root
api_key_env = "OPENAI_API_KEY"    # the NAME of the env var; the key itself never goes in the file
max_concurrency = 16              # calls in flight on this route (default 8)
requests_per_minute = 500         # optional provider limits, shared by every run on this route
tokens_per_minute = 200000
model = "gpt-4o-mini"             # optional: model name sent to the provider (default: the block's)
timeout_s = 120                   # one call's timeout (default 120)
structured_outputs = "auto"       # auto | json_schema | json_object (default auto)
cache = true                      # false: never read or write this route's passes in the pass cache

[[routes]]
match = "local-*"                 # e.g. Ollama: no api_key_env, no Authorization header
engine = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "llama3.1"

[[routes]]
match = "invoice-rules"           # a python route: `model` names the function to call
engine = "python"
model = "python:my_pkg.rules:extract"

[prices]                          # US dollars per million tokens, by model-name pattern: turns the
"gpt-4o-mini" = { input = 0.15, output = 0.60 }   # tokens of every pass into a cost (exact names first,
"gpt-4o*" = { input = 2.50, output = 10.00 }      # then patterns in file order); no price, no cost
```

Routes are tried in file order, the first match wins. After them come the built-in routes,
always present: `simulated*` and `retab-*` → simulated (Retab-hosted models cannot be served
locally; the spec's walkthrough uses `retab-small`), and `python:*` → python. A file route can
shadow a built-in one (e.g. send `retab-small` to a real model) because it is tried first.

Each route owns one engine instance, created on first use and reused, so a route's concurrency
and rate limits are shared by every run. A missing api key env var is not an error: the engine
then sends no Authorization header, which is what local servers expect.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.usage import Price
from orchestrator.engines.base import Engine, EngineError
from orchestrator.engines.python import module_allowed, module_of, not_allowed

log = logging.getLogger(__name__)

ENGINES = ("openai", "python", "simulated")
MEMO = 1024  # model names whose route and price are remembered
_KEYS = {
    "match",
    "engine",
    "base_url",
    "api_key_env",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "model",
    "timeout_s",
    "structured_outputs",
    "cache",
}
_PRICE_KEYS = {"input", "output"}


@dataclass(frozen=True)
class Route:
    match: str
    engine: str
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = 8
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    model: str | None = None
    timeout_s: float = 120.0
    structured_outputs: str = "auto"
    cache: bool = True  # false: this route's passes are never read from or written to the pass cache
    builtin: bool = False
    note: str = ""


BUILTIN_ROUTES = (
    Route("simulated*", "simulated", builtin=True, note="offline deterministic engine"),
    Route(
        "retab-*",
        "simulated",
        builtin=True,
        note="Retab-hosted models cannot run locally; simulated unless a models-file route matches first",
    ),
    Route("python:*", "python", builtin=True, note="python:package.module:function"),
)

EngineFactory = Callable[[Route, Mapping[str, str]], Engine]


def _build_openai(route: Route, environ: Mapping[str, str]) -> Engine:
    from orchestrator.engines.openai import OpenAIEngine

    api_key = environ.get(route.api_key_env) if route.api_key_env else None
    return OpenAIEngine(
        base_url=route.base_url or "",
        api_key=api_key or None,
        model_override=route.model,
        max_concurrency=route.max_concurrency,
        requests_per_minute=route.requests_per_minute,
        tokens_per_minute=route.tokens_per_minute,
        timeout_s=route.timeout_s,
        structured_outputs=route.structured_outputs,  # type: ignore[arg-type]  # validated in _route
    )


def _build_python(route: Route, environ: Mapping[str, str]) -> Engine:
    from orchestrator.engines.python import PythonEngine

    return PythonEngine(function=route.model)


def _build_simulated(route: Route, environ: Mapping[str, str]) -> Engine:
    # Imported here so the router works (and fails clearly) without the simulated engine module.
    from orchestrator.engines.simulated import SimulatedEngine

    engine: Engine = SimulatedEngine()
    return engine


DEFAULT_FACTORIES: dict[str, EngineFactory] = {
    "openai": _build_openai,
    "python": _build_python,
    "simulated": _build_simulated,
}


def _number(where: str, key: str, value: Any, *, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{where}: `{key}` must be a positive number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ValueError(f"{where}: `{key}` must be a positive integer, got {value!r}")
    return value


def _route(index: int, raw: Any, source: str) -> Route:
    where = f"{source}: routes[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a table")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
    match, engine = raw.get("match"), raw.get("engine")
    if not isinstance(match, str) or not match:
        raise ValueError(f"{where}: `match` (a model name pattern) is required")
    where = f"{source}: route {match!r}"
    if engine not in ENGINES:
        raise ValueError(f"{where}: unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    for key in ("base_url", "api_key_env", "model", "structured_outputs"):
        if key in raw and not isinstance(raw[key], str):
            raise ValueError(f"{where}: `{key}` must be a string")
    if engine == "openai" and not raw.get("base_url"):
        raise ValueError(f"{where}: engine 'openai' needs base_url (e.g. https://api.openai.com/v1)")
    if raw.get("structured_outputs", "auto") not in ("auto", "json_schema", "json_object"):
        raise ValueError(f"{where}: structured_outputs must be auto, json_schema or json_object")
    if not isinstance(raw.get("cache", True), bool):
        raise ValueError(f"{where}: `cache` must be true or false")
    limits: dict[str, Any] = {}
    for key in ("requests_per_minute", "tokens_per_minute", "timeout_s"):
        if key in raw:
            limits[key] = float(_number(where, key, raw[key]))
    if "max_concurrency" in raw:
        limits["max_concurrency"] = _number(where, "max_concurrency", raw["max_concurrency"], integer=True)
    return Route(
        match=match,
        engine=engine,
        base_url=raw.get("base_url"),
        api_key_env=raw.get("api_key_env"),
        model=raw.get("model"),
        structured_outputs=raw.get("structured_outputs", "auto"),
        cache=raw.get("cache", True),
        **limits,
    )


def parse_routes(text: str, *, source: str = "models file") -> list[Route]:
    """The routes of a models file (without the built-ins). Raises ValueError with a readable message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - {"routes", "prices"})
    if unknown:
        raise ValueError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; expected [[routes]] tables and [prices]"
        )
    routes = data.get("routes", [])
    if not isinstance(routes, list):
        raise ValueError(f"{source}: `routes` must be an array of tables ([[routes]])")
    return [_route(i, raw, source) for i, raw in enumerate(routes)]


def parse_prices(text: str, *, source: str = "models file") -> list[tuple[str, Price]]:
    """The `[prices]` table: model-name pattern → `{input = $, output = $}` per million tokens, in file
    order. Raises ValueError with a readable message."""
    try:
        table = tomllib.loads(text).get("prices", {})
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: invalid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise ValueError(
            f'{source}: `prices` must be a table, e.g. [prices] "gpt-4o*" = {{ input = 2.5, output = 10 }}'
        )
    out = []
    for pattern, raw in table.items():
        where = f"{source}: prices[{pattern!r}]"
        if not isinstance(raw, dict) or set(raw) != _PRICE_KEYS:
            raise ValueError(f"{where} must be {{ input = USD, output = USD }} per million tokens")
        for key in ("input", "output"):
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{where}: `{key}` must be a number of dollars ≥ 0 per million tokens, got {value!r}")
        out.append((pattern, Price(float(raw["input"]), float(raw["output"]))))
    return out


class EngineRouter:
    def __init__(
        self,
        routes: list[Route] | tuple[Route, ...] = (),
        *,
        environ: Mapping[str, str] | None = None,
        factories: Mapping[str, EngineFactory] | None = None,
        prices: list[tuple[str, Price]] | tuple[tuple[str, Price], ...] = (),
        python_modules: tuple[str, ...] = (),
    ) -> None:
        self.routes: tuple[Route, ...] = (*routes, *BUILTIN_ROUTES)
        # The modules `python:` models may import: the operator's list and the models file's python routes.
        self.python_modules = tuple(
            dict.fromkeys([*python_modules, *(module_of(r.model) for r in routes if r.engine == "python" and r.model)])
        )
        self.prices: tuple[tuple[str, Price], ...] = tuple(prices)
        self._environ = environ
        self._factories = {**DEFAULT_FACTORIES, **(factories or {})}
        self._engines: dict[int, Engine] = {}
        self._share = 1.0
        self._found: dict[str, int | None] = {}  # model name -> route index (see _index)
        self._priced: dict[str, Price | None] = {}

    @classmethod
    def from_file(
        cls,
        path: str | Path | None,
        *,
        environ: Mapping[str, str] | None = None,
        factories: Mapping[str, EngineFactory] | None = None,
        python_modules: tuple[str, ...] = (),
    ) -> EngineRouter:
        if not path:
            return cls(environ=environ, factories=factories, python_modules=python_modules)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read models file {str(path)!r}: {exc.strerror or exc}") from None
        return cls(
            parse_routes(text, source=str(path)),
            environ=environ,
            factories=factories,
            prices=parse_prices(text, source=str(path)),
            python_modules=python_modules,
        )

    def check_allowed(self, model: str) -> None:
        """Raise `python_module_not_allowed` for a `python:` model whose module the operator did not allow
        (what a block may be saved with). Imports nothing."""
        route = self.route_for(model)
        if route is not None and route.engine == "python" and route.builtin:
            if not module_allowed(module_of(model), self.python_modules):
                raise not_allowed(model)

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _index(self, model: str) -> int | None:
        # Asked for every pass (and its price for every child): remembered, as the routes never change.
        try:
            return self._found[model]
        except KeyError:
            pass
        found = next((i for i, r in enumerate(self.routes) if fnmatch.fnmatchcase(model, r.match)), None)
        if len(self._found) >= MEMO:
            self._found.clear()  # model names come from block configs: bounded, however many there are
        self._found[model] = found
        return found

    def route_for(self, model: str) -> Route | None:
        index = self._index(model)
        return None if index is None else self.routes[index]

    def price_for(self, model: str) -> Price | None:
        """The price of a model's tokens: an exact `[prices]` key first, else the first pattern (file order)
        that matches the block's model name or the name the route sends to the provider. None: unknown."""
        if model in self._priced:
            return self._priced[model]
        if len(self._priced) >= MEMO:
            self._priced.clear()
        price = self._priced[model] = self._price(model)
        return price

    def _price(self, model: str) -> Price | None:
        route = self.route_for(model)
        names = [model, *([route.model] if route is not None and route.model else [])]
        for name in names:
            for pattern, price in self.prices:
                if pattern == name:
                    return price
        for name in names:
            for pattern, price in self.prices:
                if fnmatch.fnmatchcase(name, pattern):
                    return price
        return None

    def resolve(self, model: str) -> Engine:
        index = self._index(model)
        if index is None:
            raise EngineError(
                kind="config",
                code="model_not_configured",
                message=(
                    f"No engine route for model {model!r}. Add a [[routes]] entry to the models file "
                    f'(--models FILE / ORCHESTRATOR_MODELS), e.g. match = {model!r}, engine = "openai", '
                    'base_url = "http://127.0.0.1:11434/v1"; built-in routes: simulated*, retab-*, python:*.'
                ),
                details={"model": model},
            )
        engine = self._engines.get(index)
        if engine is None:
            route = self.routes[index]
            engine = self._factories[route.engine](route, self.environ)
            allow = getattr(engine, "allow_modules", None)  # the python engine: what it may import
            if allow is not None:
                allow(self.python_modules)
            self._engines[index] = engine
            if self._share != 1.0:
                _set_share(engine, self._share)
        return engine

    def set_share(self, fraction: float) -> None:
        """This process is one of several workers: provider limits (requests and tokens per minute,
        concurrency per route) are split so that they hold for all workers together."""
        self._share = fraction
        for engine in self._engines.values():
            _set_share(engine, fraction)

    def simulated_models(self) -> list[str]:
        """The model-name patterns served by the simulated engine (no model behind them), each with the
        earlier routes that take some of its names first, e.g. `retab-* (except retab-large)`."""
        out = []
        for index, route in enumerate(self.routes):
            if route.engine != "simulated":
                continue
            earlier = [r.match for r in self.routes[:index] if r.engine != "simulated"]
            shadowed = [m for m in earlier if fnmatch.fnmatchcase(m, route.match)]
            out.append(f"{route.match} (except {', '.join(shadowed)})" if shadowed else route.match)
        return out

    def describe(self) -> list[dict[str, Any]]:
        """The routes in force, for `GET /v1/engines`. Says whether a key is set, never the key."""
        out = []
        for route in self.routes:
            out.append(
                {
                    "match": route.match,
                    "engine": route.engine,
                    "base_url": route.base_url,
                    "api_key_env": route.api_key_env,
                    "api_key_set": bool(route.api_key_env and self.environ.get(route.api_key_env)),
                    "model": route.model,
                    "max_concurrency": route.max_concurrency if route.engine == "openai" else None,
                    "requests_per_minute": route.requests_per_minute,
                    "tokens_per_minute": route.tokens_per_minute,
                    "timeout_s": route.timeout_s if route.engine == "openai" else None,
                    "structured_outputs": route.structured_outputs if route.engine == "openai" else None,
                    "cache": route.cache,
                    "builtin": route.builtin,
                    "simulated": route.engine == "simulated",
                    "note": route.note,
                }
            )
        return out

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            try:
                await engine.aclose()
            except Exception:  # one engine failing to close must not leak the others
                log.exception("closing engine %s failed", engine.name)


def _set_share(engine: Engine, fraction: float) -> None:
    setter = getattr(engine, "set_share", None)  # engines without provider limits have none
    if setter is not None:
        setter(fraction)
