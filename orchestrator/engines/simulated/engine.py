"""The offline, deterministic engine used for demos, CI and benchmarks (`"model": "simulated"`).

A pass is a pure function of (inputs, block config, pass index, run seed): every random draw comes
from a `random.Random` seeded with sha256 of their canonical JSON. Options live under the block
config key `simulation`:

* `latency_ms`, `jitter_ms`: awaited through the injected `sleep` (never called when the total is 0).
* `transient_error_rate`: the *first* attempt of a pass fails with a transient `simulated_transient_error`
  with that probability; the engine remembers the failure, so the retry of that same pass succeeds
  (and a later, third call is again a "first attempt"). This keeps outputs deterministic while still
  exercising the runner's retry path.
* `error_rate`: the pass fails permanently (`simulated_error`) on every attempt, with that probability.
* `disagreement`: per leaf field / classifier decision / split page, the probability that this pass
  perturbs the value. All passes, including pass 0, are treated alike.

The timing options are left out of the seed: the same block is as deterministic at any speed.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import orjson

from orchestrator.engines.base import (
    Document,
    EngineError,
    HandleValue,
    JsonInput,
    JudgeAnswer,
    JudgeRequest,
    PassOutput,
    PassRequest,
    Usage,
)
from orchestrator.engines.simulated.rules import (
    best_label,
    content_words,
    extract_from_json,
    extract_from_text,
    judge_keywords,
    properties,
    resolve,
    schema_type,
)
from orchestrator.ids import canonical_encode, canonical_json

Sleep = Callable[[float], Awaitable[None]]

_PREFERRED_HANDLES = ("input-file-document", "document", "input-file-0")
_RATE_KEYS = ("transient_error_rate", "error_rate", "disagreement")
_TIMING_KEYS = ("latency_ms", "jitter_ms")
_FILLER_STRINGS = ("N/A", "unknown", "see attached", "TBD", "pending")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_NO_RATES = dict.fromkeys(_RATE_KEYS, 0.0)
_NEVER_DRAWN = random.Random(0)  # passed where every draw is guarded by a rate above 0
# Part of every pass's cache identity: change it when the rules change what a pass answers, so that
# cached answers of the old rules are not served for the new ones.
RULES_VERSION = 1


class _LRU:
    """A small bounded cache so n passes over one document parse it once."""

    def __init__(self, maxsize: int) -> None:
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._maxsize = maxsize

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        try:
            self._data.move_to_end(key)
            return self._data[key]
        except KeyError:
            value = compute()
            self._data[key] = value
            if len(self._data) > self._maxsize:
                self._data.popitem(last=False)
            return value


class SimulatedEngine:
    name = "simulated"

    def __init__(self, *, sleep: Sleep | None = None, cache_size: int = 512) -> None:
        self._sleep: Sleep = sleep if sleep is not None else anyio.sleep
        self._cache = _LRU(cache_size)
        # Keys of passes whose last attempt failed transiently; bounded so abandoned passes cannot leak.
        self._failed_once: OrderedDict[bytes, None] = OrderedDict()
        self._failed_once_max = 65_536

    def immediate(self, config: Mapping[str, Any]) -> bool:
        latency, jitter, _rates = _options(config)
        return latency <= 0 and jitter <= 0

    def cache_identity(self, request: PassRequest) -> Any:
        """What a pass answers depends on: the seed of `run_pass` (inputs, config without its timing
        options, run seed; the pass index is the runner's to add) and the block type. A faster or
        slower demo block reuses the same cached passes."""
        return {
            "rules": RULES_VERSION,
            "block_type": request.block_type,
            "inputs": {h: _identity(v) for h, v in request.inputs.items()},
            "config": _outcome_config(request.config),
            "seed": request.seed,
        }

    async def run_pass(self, request: PassRequest) -> PassOutput:
        config = request.config
        latency, jitter, rates = _options(config)
        source = _pick_input(request.inputs)
        digest, rng = b"", _NEVER_DRAWN
        u_transient = u_error = u_jitter = 1.0
        if jitter > 0 or any(rates.values()):
            # Only then is anything drawn: seeding a Mersenne Twister per pass costs more than the rest of
            # a zero-latency, agreeing pass, and leaving it out changes no output (nothing would be drawn).
            digest = hashlib.sha256(
                canonical_json(
                    {
                        "inputs": {h: _identity(v) for h, v in request.inputs.items()},
                        "config": _outcome_config(config),
                        "pass": request.pass_index,
                        "seed": request.seed,
                    }
                )
            ).digest()
            rng = random.Random(int.from_bytes(digest, "big"))
            u_transient, u_error, u_jitter = rng.random(), rng.random(), rng.random()

        delay_ms = latency + (jitter * u_jitter if jitter > 0 else 0.0)
        if delay_ms > 0:
            await self._sleep(delay_ms / 1000.0)
        if u_transient < rates["transient_error_rate"]:
            self._maybe_fail_transiently(digest)
        if u_error < rates["error_rate"]:
            raise EngineError(
                kind="simulated",
                code="simulated_error",
                message=f"simulated permanent error (error_rate={rates['error_rate']})",
            )

        p = rates["disagreement"]
        if request.block_type == "extract":
            output = self._extract(source, config, rng, p)
        elif request.block_type == "classifier":
            output = self._classify(source, config, rng, p)
        elif request.block_type == "split":
            output = self._split(source, config, rng, p)
        else:
            raise EngineError(
                kind="config",
                code="unsupported_block_type",
                message=f"the simulated engine cannot run {request.block_type!r} blocks",
            )
        blob, fast = canonical_encode(output)
        if p <= 0:  # a private copy: the cached base must never be shared (perturbation copies otherwise)
            output = orjson.loads(blob) if fast else json.loads(blob)
        prompt = len(_text_of(source)) // 4
        completion = len(blob) // 4
        return PassOutput(
            output=output,
            engine=self.name,
            model=str(config.get("model", "simulated")),
            usage=Usage(prompt, completion, prompt + completion),
        )

    async def judge(self, request: JudgeRequest) -> JudgeAnswer:
        canonical = canonical_json(request.value).decode()
        verdict = judge_keywords(request.rubric, request.value, canonical)
        expected = request.expected_label
        if not verdict.decided:
            label = "undecided"
        elif expected is None:
            label = "pass" if verdict.passed else "fail"
        else:
            label = expected if verdict.passed else f"not_{expected}"
        # Every answer says what made it: a keyword rule, never a language model.
        reasoning = f"simulated: keyword judge, not a language model; {verdict.reason}"
        return JudgeAnswer(
            label=label, passed=verdict.passed, reasoning=reasoning, engine=self.name, decided=verdict.decided
        )

    async def aclose(self) -> None:
        return None

    # -- internals ------------------------------------------------------------------------------

    def _maybe_fail_transiently(self, digest: bytes) -> None:
        if digest in self._failed_once:
            del self._failed_once[digest]
            return
        self._failed_once[digest] = None
        if len(self._failed_once) > self._failed_once_max:
            self._failed_once.popitem(last=False)
        raise EngineError(
            kind="simulated",
            code="simulated_transient_error",
            message="simulated transient error (first attempt of this pass)",
            transient=True,
        )

    def _extract(self, source: HandleValue, config: Mapping[str, Any], rng: random.Random, p: float) -> Any:
        raw_schema = config.get("json_schema")
        schema: Mapping[str, Any] = raw_schema if isinstance(raw_schema, Mapping) else {}
        if isinstance(source, JsonInput):
            base = _extract_json(source.data, schema)
        else:
            key = ("extract", source.content_id, canonical_json(schema))
            base = self._cache.get(key, lambda: _extract_document(source, schema))
        return _perturb(base, resolve(schema, schema), schema, rng, p) if p > 0 else base

    def _classify(self, source: HandleValue, config: Mapping[str, Any], rng: random.Random, p: float) -> dict[str, Any]:
        labels = _labels(config, "categories")
        first_n = config.get("first_n_pages")
        limit = first_n if isinstance(first_n, int) and first_n > 0 else None
        if isinstance(source, Document):
            key = ("classify", source.content_id, limit, tuple(labels))
            index, shared = self._cache.get(key, lambda: _decide(source, labels, limit))
        else:
            index, shared = _decide(source, labels, limit)
        name = labels[index][0]
        if p > 0 and len(labels) > 1 and rng.random() < p:
            other = rng.choice([n for i, (n, _) in enumerate(labels) if i != index])
            return {
                "category": other,
                "reasoning": f"simulated: disagreement pass picked {other} over {name}",
            }
        matched = ", ".join(shared[:12]) if shared else "none (first category)"
        return {"category": name, "reasoning": f"simulated: matched words {matched}"}

    def _split(
        self, source: HandleValue, config: Mapping[str, Any], rng: random.Random, p: float
    ) -> list[dict[str, Any]]:
        labels = _labels(config, "subdocuments")
        if isinstance(source, Document):
            key = ("split", source.content_id, tuple(labels))
            base: tuple[int, ...] = self._cache.get(key, lambda: _assign_pages(source.pages, labels))
        else:
            base = _assign_pages((_text_of(source),), labels)
        assigned = list(base)
        if p > 0 and len(labels) > 1:
            for page, index in enumerate(assigned):
                if rng.random() < p:
                    assigned[page] = rng.choice([i for i in range(len(labels)) if i != index])
        pages_of: dict[int, list[int]] = {}
        for page, index in enumerate(assigned, start=1):
            pages_of.setdefault(index, []).append(page)
        return [{"name": labels[i][0], "pages": pages_of[i]} for i in range(len(labels)) if i in pages_of]


# -- helpers ------------------------------------------------------------------------------------


def _outcome_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The config as far as outputs depend on it: timing options only change when a pass ends, so a
    block (the demo's) can be made slower or faster without changing a single output or verdict."""
    sim = config.get("simulation")
    if isinstance(sim, Mapping) and any(k in sim for k in _TIMING_KEYS):
        return {**config, "simulation": {k: v for k, v in sim.items() if k not in _TIMING_KEYS}}
    return config


def _options(config: Mapping[str, Any]) -> tuple[float, float, dict[str, float]]:
    sim = config.get("simulation")
    if not sim:
        return 0.0, 0.0, _NO_RATES
    if not isinstance(sim, Mapping):
        raise EngineError(kind="config", code="invalid_simulation", message="`simulation` must be an object")
    values: dict[str, float] = {}
    for key in ("latency_ms", "jitter_ms", *_RATE_KEYS):
        raw = sim.get(key)
        raw = 0 if raw is None else raw
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise EngineError(kind="config", code="invalid_simulation", message=f"simulation.{key} must be a number")
        values[key] = max(0.0, float(raw))
    rates = {key: min(1.0, values[key]) for key in _RATE_KEYS}
    return values["latency_ms"], values["jitter_ms"], rates


def _pick_input(inputs: Mapping[str, HandleValue]) -> HandleValue:
    for handle in _PREFERRED_HANDLES:
        if handle in inputs:
            return inputs[handle]
    for value in inputs.values():
        if isinstance(value, Document):
            return value
    for value in inputs.values():
        return value
    raise EngineError(kind="input", code="missing_input", message="the block received no input document")


def _identity(value: HandleValue) -> Any:
    return {"document": value.content_id} if isinstance(value, Document) else {"json": value.data}


def _text_of(source: HandleValue) -> str:
    return source.text if isinstance(source, Document) else canonical_json(source.data).decode()


def _labels(config: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    entries = config.get(key)
    labels: list[tuple[str, str]] = []
    if isinstance(entries, Sequence) and not isinstance(entries, str):
        for entry in entries:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                labels.append((entry["name"], str(entry.get("description") or "")))
    if not labels:
        raise EngineError(kind="config", code=f"missing_{key}", message=f"the block config has no {key}")
    return labels


def _extract_json(data: Any, schema: Mapping[str, Any]) -> Any:
    if properties(schema):
        return extract_from_json(data, schema)
    return dict(data) if isinstance(data, Mapping) else {}


def _extract_document(doc: Document, schema: Mapping[str, Any]) -> Any:
    stripped = doc.text.strip()
    if "json" in doc.mime_type or stripped.startswith("{"):
        try:
            data = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            return _extract_json(data, schema)
    return extract_from_text(doc.text, schema)


def _decide(source: HandleValue, labels: list[tuple[str, str]], limit: int | None) -> tuple[int, list[str]]:
    if isinstance(source, Document):
        text = " ".join(source.pages[:limit]) if limit else source.text
    else:
        text = _text_of(source)
    return best_label(content_words(text), labels)


def _assign_pages(pages: Sequence[str], labels: list[tuple[str, str]]) -> tuple[int, ...]:
    return tuple(best_label(content_words(page), labels)[0] for page in pages)


def _perturb(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random, p: float) -> Any:
    """A fresh copy of `value` where each leaf changes with probability `p`."""
    if isinstance(value, dict):
        props = properties(schema)
        return {k: _perturb(v, resolve(props.get(k, {}), root), root, rng, p) for k, v in value.items()}
    if isinstance(value, list):
        item_schema = resolve(schema.get("items", {}), root)
        return [_perturb(v, item_schema, root, rng, p) for v in value]
    if p <= 0 or rng.random() >= p:
        return value
    return _mutate(value, schema, root, rng)


def _mutate(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random) -> Any:
    if value is None:
        return _plausible(schema, root, rng)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        sign = rng.choice((-1, 1))
        if value == 0:
            return round(sign * rng.uniform(0.01, 1.0), 2)
        changed: int | float = round(value * (1 + sign * rng.uniform(0.01, 0.10)), 2)
        if isinstance(value, int) and schema_type(schema) == "integer":
            changed = round(changed)
        return changed if changed != value else value + sign
    if isinstance(value, str):
        enum = schema.get("enum")
        others = [e for e in enum if e != value] if isinstance(enum, list) else []
        return rng.choice(others) if others else _typo(value, rng)
    return value


def _typo(text: str, rng: random.Random) -> str:
    words = text.split()
    if len(words) >= 2 and rng.random() < 0.5:
        del words[rng.randrange(len(words))]
        return " ".join(words)
    if len(text) >= 2:
        i = rng.randrange(len(text) - 1)
        if text[i] != text[i + 1]:
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    i = rng.randrange(len(text)) if text else 0
    letter = rng.choice([c for c in _ALPHABET if c != text[i : i + 1].lower()])
    return text[:i] + letter + text[i + 1 :]


def _plausible(schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random) -> Any:
    kind = schema_type(schema)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    if kind == "number":
        return round(rng.uniform(1, 1000), 2)
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        item = resolve(schema.get("items", {}), root)
        return None if schema_type(item) in ("object", "array") else [_plausible(item, root, rng)]
    if kind == "object":
        return None
    if schema.get("format") == "date":
        return f"20{rng.randint(20, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return rng.choice(_FILLER_STRINGS)
