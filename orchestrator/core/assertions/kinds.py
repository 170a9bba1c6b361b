"""Per-kind condition evaluators (spec §2.6). Each returns a Check or raises Blocked.

A missing value (absent path or null) makes value-typed conditions *fail* rather than block:
the condition could be evaluated, the output simply lacks the value. A present value of
the wrong type blocks with ``type_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from rapidfuzz.distance import Levenshtein

from orchestrator.core.assertions.common import (
    MISSING,
    OP_SYMBOL,
    Blocked,
    Check,
    Evaluator,
    JudgeKey,
    Judgements,
    canonical_json,
    compare,
    deep_equal,
    fmt,
    is_number,
    matches_subset,
    normalise_enum,
    num,
    op_of,
    present,
    req,
    type_error,
)
from orchestrator.core.assertions.regex import RegexError, compile_pattern, search
from orchestrator.core.assertions.special import judge_key, llm_evaluator, split_iou_check


def _exists(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    if present(found, value):
        return Check(True)
    return Check(False, "expected a value, but it is " + ("null" if found else "absent"))


def _not_exists(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    if not present(found, value):
        return Check(True)
    return Check(False, f"expected no value, got {fmt(value)}")


def _equals(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    expected = cond.get("expected")
    if deep_equal(value, expected):
        return Check(True)
    return Check(False, f"expected {fmt(expected)}, got {fmt(value)}")


def _not_equals(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    expected = cond.get("expected")
    if not deep_equal(value, expected):
        return Check(True)
    return Check(False, f"expected a value different from {fmt(expected)}")


def _contains_raw(kind: str, value: Any, expected: Any) -> bool:
    if isinstance(value, str):
        if not isinstance(expected, str):
            raise type_error(kind, "a string 'expected' for a string value", expected)
        return expected in value
    if isinstance(value, list | tuple):
        return any(deep_equal(item, expected) for item in value)
    if isinstance(value, Mapping):
        if not isinstance(expected, str):
            raise type_error(kind, "a string key as 'expected' for an object value", expected)
        return expected in value
    raise type_error(kind, "a string, array or object", value)


def _contains(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    expected = cond.get("expected")
    if not present(found, value):
        return Check(False, f"expected a value containing {fmt(expected)}, but the {MISSING}")
    if _contains_raw("contains", value, expected):
        return Check(True)
    return Check(False, f"expected {fmt(value)} to contain {fmt(expected)}")


def _not_contains(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    expected = cond.get("expected")
    # A missing value contains nothing, so the negation holds vacuously.
    if not present(found, value) or not _contains_raw("not_contains", value, expected):
        return Check(True)
    return Check(False, f"expected {fmt(value)} not to contain {fmt(expected)}")


def _object_contains(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    expected = req(cond, "expected")
    if not isinstance(expected, Mapping):
        raise Blocked("invalid_condition", "object_contains 'expected' must be an object")
    if not present(found, value):
        return Check(False, f"expected an object containing {fmt(expected)}, but the {MISSING}")
    if not isinstance(value, Mapping):
        raise type_error("object_contains", "an object", value)
    missing = [k for k, v in expected.items() if k not in value or not matches_subset(value[k], v)]
    if not missing:
        return Check(True)
    return Check(
        False,
        f"object does not contain {fmt(expected)}; mismatched keys: {', '.join(map(str, missing))}",
        details={"mismatched_keys": missing},
    )


def _array_contains(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    expected = req(cond, "expected")
    if not present(found, value):
        return Check(False, f"expected an array containing {fmt(expected)}, but the {MISSING}")
    if not isinstance(value, list | tuple):
        raise type_error("array_contains", "an array", value)
    if any(deep_equal(item, expected) or matches_subset(item, expected) for item in value):
        return Check(True)
    return Check(False, f"no item of the array ({len(value)} items) matches {fmt(expected)}")


def _regex(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    pattern = req(cond, "pattern")
    if not isinstance(pattern, str):
        raise Blocked("invalid_condition", "matches_regex 'pattern' must be a string")
    try:
        compile_pattern(pattern)
    except RegexError as exc:
        code = "unsupported_regex" if exc.unsupported else "invalid_regex"
        raise Blocked(code, f"invalid regex {pattern!r}: {exc}", {"pattern": pattern}) from exc
    if not present(found, value):
        return Check(False, f"expected a value matching /{pattern}/, but the {MISSING}")
    if isinstance(value, Mapping | list | tuple):
        raise type_error("matches_regex", "a scalar", value)
    # Render booleans the JSON way so patterns written against the wire format match.
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if search(pattern, text):
        return Check(True)
    return Check(False, f"{fmt(text)} does not match /{pattern}/")


def _json_schema(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    schema = cond.get("schema", cond.get("schema_"))
    if schema is None:
        return Check(True)
    if not isinstance(schema, Mapping | bool):
        raise Blocked("schema_invalid", "json_schema_valid 'schema' must be an object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except jsonschema.SchemaError as exc:
        raise Blocked("schema_invalid", f"invalid JSON schema: {exc.message}") from exc
    if not errors:
        return Check(True)
    listed = [{"path": ".".join(str(p) for p in e.absolute_path), "message": e.message} for e in errors[:10]]
    first = listed[0]
    where = f" at {first['path']}" if first["path"] else ""
    return Check(
        False,
        f"schema validation failed{where}: {first['message']} ({len(errors)} error(s))",
        details={"errors": listed},
    )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else canonical_json(value)


SIMILARITY_METHOD = "normalized_levenshtein"
SIMILARITY_DEFINITION = (
    "normalized Levenshtein similarity, 1 - edit distance / length of the longer text,"
    " on case-folded, whitespace-collapsed text"
)


def folded(text: str) -> str:
    """What similarity_gte compares: case and runs of whitespace are not differences between texts."""
    return " ".join(text.casefold().split())


def similarity_score(a: str, b: str) -> float:
    """True normalised Levenshtein (not rapidfuzz's Indel `fuzz.ratio`, which forgives substitutions):
    "Acme Supply Ltd" vs "Acme Supplies Ltd" is 0.824, "ACME SUPPLIES LTD" vs "Acme Supplies Ltd" 1.0."""
    return float(Levenshtein.normalized_similarity(folded(a), folded(b)))


def _similarity(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    reference = req(cond, "reference")
    threshold = num(cond, "threshold")
    method = normalise_enum(cond.get("method") or "levenshtein")
    if method == "embeddings":
        raise Blocked(
            "unsupported_method",
            "similarity method 'embeddings' is not supported by this server; use 'levenshtein'",
            {"method": method},
        )
    if method != "levenshtein":
        raise Blocked("invalid_condition", f"unknown similarity method {fmt(method)}", {"method": method})
    score = similarity_score(_as_text(value), _as_text(reference))
    passed = score >= threshold
    message = (
        ""
        if passed
        else f"{SIMILARITY_METHOD} similarity {score:.3f} < threshold {threshold:g} against {fmt(reference)}"
    )
    details = {"method": SIMILARITY_METHOD, "definition": SIMILARITY_DEFINITION}
    return Check(passed, message, score=score, threshold=threshold, metric_kind=SIMILARITY_METHOD, details=details)


def _length(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    op, expected = op_of(cond), num(cond, "expected")
    if not present(found, value):
        return Check(False, f"expected a length {OP_SYMBOL[op]} {expected:g}, but the {MISSING}")
    if not isinstance(value, str | list | tuple | Mapping):
        raise type_error("length_compare", "a string, array or object", value)
    if compare(op, float(len(value)), expected):
        return Check(True)
    return Check(False, f"expected length {OP_SYMBOL[op]} {expected:g}, got length {len(value)}")


def _number(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    op, expected = op_of(cond), num(cond, "expected")
    raw_expected = cond["expected"]
    if not present(found, value):
        return Check(False, f"expected a number {OP_SYMBOL[op]} {fmt(raw_expected)}, but the {MISSING}")
    if not is_number(value):
        raise type_error("number_compare", "a number", value)
    if compare(op, float(value), expected):
        return Check(True)
    if op == "eq":
        return Check(False, f"expected {fmt(raw_expected)}, got {fmt(value)}")
    return Check(False, f"expected a value {OP_SYMBOL[op]} {fmt(raw_expected)}, got {fmt(value)}")


def _between(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
    lower, upper = num(cond, "lower"), num(cond, "upper")
    inclusive = cond.get("inclusive")
    inclusive = True if inclusive is None else bool(inclusive)
    brackets = ("[", "]") if inclusive else ("(", ")")
    span = f"{brackets[0]}{lower:g}, {upper:g}{brackets[1]}"
    if not present(found, value):
        return Check(False, f"expected a number in {span}, but the {MISSING}")
    if not is_number(value):
        raise type_error("between", "a number", value)
    held = lower <= value <= upper if inclusive else lower < value < upper
    return Check(True) if held else Check(False, f"expected a number in {span}, got {fmt(value)}")


def _affix(kind: str, method: str) -> Evaluator:
    verb = "start with" if kind == "starts_with" else "end with"

    def evaluate(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
        expected = req(cond, "expected")
        if not isinstance(expected, str):
            raise Blocked("invalid_condition", f"{kind} 'expected' must be a string")
        if not present(found, value):
            return Check(
                False,
                f"expected a string to {verb} {fmt(expected)}, but the {MISSING}",
            )
        if not isinstance(value, str):
            raise type_error(kind, "a string", value)
        if getattr(value, method)(expected):
            return Check(True)
        return Check(False, f"expected {fmt(value)} to {verb} {fmt(expected)}")

    return evaluate


def _items(kind: str) -> Evaluator:
    want_all = kind == "all_items_match"

    def evaluate(cond: Mapping[str, Any], found: bool, value: Any, j: Judgements) -> Check:
        inner = req(cond, "condition")
        if not isinstance(inner, Mapping):
            raise Blocked("invalid_condition", f"{kind} 'condition' must be an object")
        if not present(found, value):
            return Check(False, f"{kind} expected an array, but the {MISSING}")
        if not isinstance(value, list | tuple):
            raise type_error(kind, "an array", value)
        failing: list[int] = []
        first_message = ""
        notes: dict[str, None] = {}  # the inner checks' notes (a simulated judge), each once
        for index, item in enumerate(value):
            try:
                result = check_condition(inner, True, item, j)
            except Blocked as exc:
                details = {"item_index": index, **exc.details}
                raise Blocked(exc.code, f"item {index}: {exc.message}", details) from exc
            notes.update(dict.fromkeys(result.notes))
            if not result.passed:
                failing.append(index)
                first_message = first_message or result.message
        if want_all:
            if not failing:
                return Check(True, notes=tuple(notes))
            return Check(
                False,
                f"{len(failing)} of {len(value)} items fail (first: item {failing[0]}: {first_message})",
                details={"failing_item_indexes": failing},
                notes=tuple(notes),
            )
        if len(failing) < len(value):
            return Check(True, notes=tuple(notes))
        suffix = f" (item 0: {first_message})" if value else ""
        return Check(False, f"none of the {len(value)} items matches{suffix}", notes=tuple(notes))

    return evaluate


EVALUATORS: dict[str, Evaluator] = {
    "exists": _exists,
    "not_exists": _not_exists,
    "equals": _equals,
    "not_equals": _not_equals,
    "number_compare": _number,
    "contains": _contains,
    "not_contains": _not_contains,
    "object_contains": _object_contains,
    "array_contains": _array_contains,
    "matches_regex": _regex,
    "json_schema_valid": _json_schema,
    "similarity_gte": _similarity,
    "llm_judged_as": llm_evaluator(negate=False),
    "llm_not_judged_as": llm_evaluator(negate=True),
    "length_compare": _length,
    "between": _between,
    "starts_with": _affix("starts_with", "startswith"),
    "ends_with": _affix("ends_with", "endswith"),
    "all_items_match": _items("all_items_match"),
    "any_item_matches": _items("any_item_matches"),
    "split_iou_gte": split_iou_check,
}


def check_condition(cond: Mapping[str, Any], found: bool, value: Any, judgements: Judgements) -> Check:
    kind = cond.get("kind")
    evaluator = EVALUATORS.get(kind) if isinstance(kind, str) else None
    if evaluator is None:
        raise Blocked("invalid_condition", f"unknown condition kind {fmt(kind)}", {"kind": kind})
    return evaluator(cond, found, value, judgements)


def collect_judge_keys(cond: Mapping[str, Any], found: bool, value: Any, out: list[JudgeKey]) -> None:
    """Mirror of check_condition's judgement lookups; malformed parts contribute nothing."""
    kind = cond.get("kind")
    try:
        if kind in ("llm_judged_as", "llm_not_judged_as"):
            key = judge_key(cond, value)
            if key not in out:
                out.append(key)
        elif kind in ("all_items_match", "any_item_matches"):
            inner = cond.get("condition")
            if isinstance(inner, Mapping) and isinstance(value, list | tuple):
                for item in value:
                    collect_judge_keys(inner, True, item, out)
    except Blocked:
        return
