"""Pure rules of the simulated engine: schema-driven reading of text/JSON, word-overlap decisions.

Everything here is synchronous, deterministic and free of randomness; `simulated.py` adds latency,
injected errors and per-pass disagreement on top.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Schema = Mapping[str, Any]

_WORD = re.compile(r"[a-z0-9]+")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_LABEL_LINE = re.compile(r"^\s*(?:[-*•]\s+)?([A-Za-z][^:=\n]{0,60}?)\s*[:=]\s*(.*?)\s*$")
_NUMBER = re.compile(r"[-+]?\d[\d,.' ]*|[-+]?\.\d+")
_TRUE = frozenset({"yes", "y", "true", "t", "1", "on", "x", "checked"})
_FALSE = frozenset({"no", "n", "false", "f", "0", "off", "unchecked", "none"})
_MAX_DEPTH = 12
_INDIRECT = frozenset({"$ref", "anyOf", "oneOf", "allOf"})

STOP_WORDS = frozenset(
    """a an and are as at be been but by can did do does for from had has have how if in into is it its
    of on or our should so than that the their them then there these they this those to was were what when
    where which while who whom why will with would you your must shall not any all each every other""".split()
)


def tokens(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def content_words(text: str) -> set[str]:
    return {w for w in tokens(text) if w not in STOP_WORDS}


def norm_label(label: str) -> str:
    """`Invoice Number`, `invoice-number`, `INVOICE_NUMBER` → `invoicenumber`."""
    return _NON_ALNUM.sub("", label.lower())


def snake(label: str) -> str:
    return _NON_ALNUM.sub("_", label.lower()).strip("_")


# -- schemas ------------------------------------------------------------------------------------


def resolve(schema: Any, root: Schema) -> Schema:
    """Follow local `$ref`s and unwrap nullable `anyOf`/`oneOf` so callers see one concrete schema."""
    if type(schema) is dict and _INDIRECT.isdisjoint(schema):
        return schema  # hot path: benchmarks resolve every leaf of every pass
    for _ in range(_MAX_DEPTH):
        if not isinstance(schema, Mapping):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            schema = target
            continue
        for key in ("anyOf", "oneOf", "allOf"):
            options = schema.get(key)
            if isinstance(options, list) and "type" not in schema and "properties" not in schema:
                concrete = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
                if concrete:
                    schema = concrete[0]
                    break
        else:
            return schema
    return {}


def schema_type(schema: Schema) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and not isinstance(enum[0], str):
        return "boolean" if isinstance(enum[0], bool) else "number"
    return "string"


def properties(schema: Schema) -> Mapping[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


# -- coercion -----------------------------------------------------------------------------------


def parse_number(raw: str) -> int | float | None:
    """`$1,234.56` → 1234.56, `1.234,5 €` → 1234.5, `(12)` → -12, `15%` → 15."""
    text = raw.strip()
    negative = text.startswith("-") or (text.startswith("(") and text.endswith(")"))
    match = _NUMBER.search(text)
    if match is None:
        return None
    num = match.group(0).strip().replace(" ", "").replace("'", "")
    sign = -1 if negative or num.startswith("-") else 1
    num = num.lstrip("+-").rstrip(".,")
    if "," in num and "." in num:
        decimal = "." if num.rfind(".") > num.rfind(",") else ","
        num = num.replace("," if decimal == "." else ".", "").replace(",", ".")
    elif "," in num:
        thousands = re.fullmatch(r"\d{1,3}(,\d{3})+", num) is not None
        num = num.replace(",", "") if thousands else num.replace(",", ".")
    if num.count(".") > 1:
        num = num.replace(".", "")
    try:
        value: int | float = int(num) if "." not in num else float(num)
    except ValueError:
        return None
    return sign * value


def coerce(raw: Any, schema: Schema) -> Any:
    """Coerce a scalar found in a document (usually a string) to the schema's scalar type, or None."""
    if raw is None:
        return None
    kind = schema_type(schema)
    if kind in ("number", "integer"):
        if isinstance(raw, bool):
            return None
        num = raw if isinstance(raw, int | float) else parse_number(str(raw))
        if num is None:
            return None
        if kind == "integer":
            return round(num)
        return num
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        return True if word in _TRUE else False if word in _FALSE else None
    if kind == "array":
        items = raw if isinstance(raw, list) else [p for p in re.split(r"[,;]", str(raw))]
        item_schema = resolve(schema.get("items", {}), schema)
        out = [coerce(item.strip() if isinstance(item, str) else item, item_schema) for item in items]
        return [v for v in out if v is not None]
    if isinstance(raw, Mapping | list):
        return None
    text = str(raw).strip() if not isinstance(raw, bool) else str(raw).lower()
    if not text:
        return None
    enum = schema.get("enum")
    if isinstance(enum, list):
        wanted = norm_label(text)
        return next((e for e in enum if isinstance(e, str) and norm_label(e) == wanted), text)
    return text


# -- JSON inputs --------------------------------------------------------------------------------


def extract_from_json(data: Any, schema: Schema) -> dict[str, Any]:
    """Read values by schema property name (case/space/hyphen/underscore-insensitive) from JSON."""
    return _json_object(data, schema, schema, 0)


def _json_object(data: Any, schema: Schema, root: Schema, depth: int) -> dict[str, Any]:
    source = data if isinstance(data, Mapping) else {}
    by_norm = {norm_label(str(k)): v for k, v in reversed(list(source.items()))}
    out: dict[str, Any] = {}
    for name, prop in properties(schema).items():
        value = source[name] if name in source else by_norm.get(norm_label(name))
        out[name] = _json_value(value, resolve(prop, root), root, depth + 1)
    return out


def _json_value(value: Any, schema: Schema, root: Schema, depth: int) -> Any:
    if value is None or depth > _MAX_DEPTH:
        return None
    kind = schema_type(schema)
    if kind == "object":
        if not properties(schema):
            return dict(value) if isinstance(value, Mapping) else None
        return _json_object(value, schema, root, depth) if isinstance(value, Mapping) else None
    if kind == "array":
        items = value if isinstance(value, list) else [value]
        item_schema = resolve(schema.get("items", {}), root)
        if schema_type(item_schema) == "object":
            return [_json_value(item, item_schema, root, depth + 1) for item in items]
        return [v for v in (coerce(item, item_schema) for item in items) if v is not None]
    return coerce(value, schema)


# -- text inputs --------------------------------------------------------------------------------


class TextFields:
    """The `Label: value` lines of a text, indexed by normalised label."""

    def __init__(self, text: str) -> None:
        self.lines = [line.strip() for line in text.splitlines()]
        self.labels: list[tuple[int, str, str, str]] = []  # (line index, norm label, label, value)
        for index, line in enumerate(self.lines):
            match = _LABEL_LINE.match(line)
            if match:
                label, value = match.group(1).strip(), match.group(2)
                self.labels.append((index, norm_label(label), label, value))

    def find(self, names: Sequence[str], start: int = 0, stop: int | None = None) -> str | None:
        """The value of the first line in [start, stop) whose label matches one of `names`, in order."""
        for name in names:
            wanted = norm_label(name)
            for index, label, _, value in self.labels:
                if label == wanted and start <= index and (stop is None or index < stop) and value:
                    return value
        return None

    def header(self, name: str) -> int | None:
        """Index of a section header line (`Line items:` or `Line items`) named `name`."""
        wanted = norm_label(name)
        for index, line in enumerate(self.lines):
            head = line.rstrip(":").strip()
            if norm_label(head) == wanted and (line.endswith(":") or head == line):
                return index
        return None

    def section_end(self, start: int) -> int:
        for index in range(start + 1, len(self.lines)):
            if not self.lines[index]:
                return index
        return len(self.lines)

    def pairs(self) -> Iterable[tuple[str, str]]:
        for _, _, label, value in self.labels:
            yield label, value


def extract_from_text(text: str, schema: Schema | None) -> dict[str, Any]:
    fields = TextFields(text)
    if not schema or not properties(schema):
        out: dict[str, Any] = {}
        for label, value in fields.pairs():
            key = snake(label)
            if key and value and key not in out:
                out[key] = value
        return out
    return _text_object(fields, schema, schema, (), None, 0)


def _text_object(
    fields: TextFields,
    schema: Schema,
    root: Schema,
    parents: tuple[str, ...],
    section: tuple[int, int] | None,
    depth: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, prop in properties(schema).items():
        prop_schema = resolve(prop, root)
        kind = schema_type(prop_schema)
        if depth >= _MAX_DEPTH:
            out[name] = None
        elif kind == "object":
            head = fields.header(name)
            sub = (head, fields.section_end(head)) if head is not None else None
            value = _text_object(fields, prop_schema, root, (*parents, name), sub, depth + 1)
            # Like a JSON input without the key: an object with no header and no field is absent.
            out[name] = value if sub is not None or any(v is not None for v in value.values()) else None
        elif kind == "array" and schema_type(resolve(prop_schema.get("items", {}), root)) == "object":
            out[name] = _text_rows(fields, name, resolve(prop_schema.get("items", {}), root), root)
        else:
            out[name] = coerce(_lookup(fields, name, parents, section), prop_schema)
    return out


def _lookup(fields: TextFields, name: str, parents: tuple[str, ...], section: tuple[int, int] | None) -> str | None:
    # A prefixed label (`Vendor name:`) beats a bare one inside the object's section, which beats a
    # bare one anywhere: two objects with the same field names then read their own lines.
    if parents:
        found = fields.find(["".join(parents[i:]) + name for i in range(len(parents))])
        if found is not None:
            return found
        if section is not None:
            found = fields.find([name], section[0], section[1])
            if found is not None:
                return found
    return fields.find([name])


def _text_rows(fields: TextFields, name: str, item_schema: Schema, root: Schema) -> list[Any] | None:
    head = fields.header(name)
    if head is None:
        return None
    columns = list(properties(item_schema).items())
    column_names = {norm_label(c) for c, _ in columns}
    rows: list[Any] = []
    for line in fields.lines[head + 1 : fields.section_end(head)]:
        body = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", line)
        if body == line and "|" not in line and _LABEL_LINE.match(line):
            break  # a plain `Label: value` line right after the rows ends the table
        if body.startswith("|") and body.endswith("|") and len(body) > 1:
            body = body[1:-1]
        if not body.strip(" |-:"):
            continue  # markdown table rule
        cells = [c.strip() for c in body.split("|")]
        if all(norm_label(c) in column_names for c in cells if c):
            continue  # markdown table header
        row = {
            col: coerce(cells[i] if i < len(cells) else None, resolve(col_schema, root))
            for i, (col, col_schema) in enumerate(columns)
        }
        rows.append(row)
    return rows


# -- classifier / split / judge -----------------------------------------------------------------


def best_label(text_words: set[str], labels: Sequence[tuple[str, str]]) -> tuple[int, list[str]]:
    """Index of the (name, description) sharing most content words with the text (ties → first)."""
    best, best_shared = 0, [] if not labels else sorted(content_words(" ".join(labels[0])) & text_words)
    for index, (name, description) in enumerate(labels[1:], start=1):
        shared = sorted(content_words(f"{name} {description}") & text_words)
        if len(shared) > len(best_shared):
            best, best_shared = index, shared
    return best, best_shared


_NEGATION = re.compile(r"\b(?:not|no|never|none|without|neither|nor|cannot)\b|n't\b")
_JUDGE_SKIP = STOP_WORDS | {"isn", "aren", "wasn", "weren", "doesn", "don", "didn", "hasn", "haven", "won", "can"}


@dataclass(frozen=True)
class KeywordVerdict:
    """What the keyword judge concluded: `decided` False when keyword rules cannot say (the runner then
    blocks the assertion instead of passing it)."""

    decided: bool
    passed: bool
    reason: str


def _judge_terms(text: str) -> list[str]:
    return sorted({w for w in _WORD.findall(text) if len(w) >= 2 and w not in _JUDGE_SKIP})


def judge_keywords(rubric: str, value: Any, canonical: str) -> KeywordVerdict:
    """A keyword judge, deterministic and offline. Never a language model, and it says so.

    * No negation: passed when at least half of the rubric's terms occur in the value, failed when
      none does, undecided in between (some evidence, not enough).
    * One negation ("the vendor is NOT Acme"): the terms after it are what the value must not contain;
      failed when one occurs, passed when none does. The words before it name the subject.
    * Undecided: a rubric with no term to look for, more than one negation, or nothing after the negation.
    """
    text = rubric.lower()
    haystack = (value if isinstance(value, str) else canonical).lower()
    words = set(_WORD.findall(haystack))

    def occurs(term: str) -> bool:
        return term in words or (len(term) >= 4 and term in haystack)

    cues = list(_NEGATION.finditer(text))
    if len(cues) > 1:
        return KeywordVerdict(False, False, f"{len(cues)} negations in the rubric; keyword rules cannot weigh them")
    if cues:
        claim = _judge_terms(text[cues[0].end() :])
        if not claim:
            return KeywordVerdict(False, False, "the rubric negates nothing a keyword can find")
        present = [t for t in claim if occurs(t)]
        if present:
            return KeywordVerdict(True, False, f"negated term(s) found in the value: {', '.join(present)}")
        return KeywordVerdict(True, True, f"none of the negated term(s) occur in the value: {', '.join(claim)}")
    terms = _judge_terms(text)
    if not terms:
        return KeywordVerdict(False, False, "the rubric has no term a keyword judge can look for")
    found = [t for t in terms if occurs(t)]
    missing = [t for t in terms if not occurs(t)]
    listed = f"found: {', '.join(found) or '-'}; missing: {', '.join(missing) or '-'}"
    summary = f"{len(found)}/{len(terms)} rubric terms found ({listed})"
    if 2 * len(found) >= len(terms):
        return KeywordVerdict(True, True, summary)
    if not found:
        return KeywordVerdict(True, False, summary)
    return KeywordVerdict(False, False, summary + "; too little evidence either way")
