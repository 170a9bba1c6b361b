"""Shared value helpers for the assertion engine: equality, containment, ops, formatting.

Kept separate from the per-kind evaluators so both the evaluator module and the public
facade (``orchestrator.core.assertions``) can use them without an import cycle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.enums import lenient_enum
from orchestrator.ids import canonical_json as canonical_bytes

OPS: frozenset[str] = frozenset({"gt", "gte", "lt", "lte", "eq", "neq"})


@dataclass(frozen=True)
class JudgeKey:
    """One LLM judgement needed by an assertion."""

    rubric: str
    expected_label: str | None
    value_json: str


@dataclass(frozen=True)
class Judgement:
    label: str
    passed: bool
    reasoning: str = ""
    engine: str = ""  # who judged: "simulated" is a keyword rule, and every verdict it made says so
    decided: bool = True  # False: the judge could not decide (the assertion blocks, it never passes)


SIMULATED_JUDGE = "simulated"


class Blocked(Exception):
    """The condition could not be evaluated; carries the AssertionResult failure code."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


@dataclass(frozen=True)
class Check:
    """The result of a condition that ran: whether it held, and why not."""

    passed: bool
    message: str = ""
    score: float | None = None
    threshold: float | None = None
    metric_kind: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what the reader must know whatever the verdict (a simulated judge)


def canonical_json(value: Any) -> str:
    """`ids.canonical_json` as text: judge keys, and what regex and similarity conditions read of a non-string."""
    return canonical_bytes(value).decode()


def fmt(value: Any, limit: int = 200) -> str:
    """Short human rendering for failure messages (JSON, so strings show their quotes)."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_number(value: Any) -> bool:
    # bool is an int subclass in Python but never a number in JSON terms.
    return isinstance(value, int | float) and not isinstance(value, bool)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def deep_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1 and dict/list compare structurally."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if type_name(a) != type_name(b):
        return False
    return bool(a == b)


def matches_subset(actual: Any, expected: Any) -> bool:
    """``actual`` contains ``expected``: objects recurse, arrays need a matching item per expected item."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return False
        return all(k in actual and matches_subset(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list | tuple):
        if not isinstance(actual, list | tuple):
            return False
        return all(any(matches_subset(item, want) for item in actual) for want in expected)
    return deep_equal(actual, expected)


# The one lenient-enum reading (core.enums), under the name the evaluators import.
normalise_enum = lenient_enum


def compare(op: str, actual: float, expected: float) -> bool:
    if op in ("eq", "neq"):
        # Tolerate float representation noise (0.1 + 0.2 == 0.3) for equality only.
        same = actual == expected or math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
        return same if op == "eq" else not same
    if op == "gt":
        return actual > expected
    if op == "gte":
        return actual >= expected
    if op == "lt":
        return actual < expected
    if op == "lte":
        return actual <= expected
    raise Blocked("invalid_condition", f"unknown op {op!r}", {"op": op})


OP_SYMBOL: dict[str, str] = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}


Judgements = Mapping[JudgeKey, Judgement]
Evaluator = Callable[[Mapping[str, Any], bool, Any, Judgements], Check]

MISSING = "value is missing (absent or null)"


def req(cond: Mapping[str, Any], key: str) -> Any:
    if key not in cond:
        raise Blocked("invalid_condition", f"condition {cond.get('kind')!r} lacks {key!r}", {"field": key})
    return cond[key]


def num(cond: Mapping[str, Any], key: str) -> float:
    raw = req(cond, key)
    if not is_number(raw):
        raise Blocked("invalid_condition", f"{key!r} must be a number, got {fmt(raw)}", {"field": key})
    return float(raw)


def op_of(cond: Mapping[str, Any]) -> str:
    op = lenient_enum(req(cond, "op"))
    if op not in OPS:
        raise Blocked("invalid_condition", f"unknown op {fmt(op)}", {"field": "op"})
    return str(op)


def type_error(kind: str, wanted: str, value: Any) -> Blocked:
    return Blocked(
        "type_error",
        f"{kind} needs {wanted}, got {type_name(value)}",
        {"expected_type": wanted, "actual_type": type_name(value)},
    )


def present(found: bool, value: Any) -> bool:
    return found and value is not None
