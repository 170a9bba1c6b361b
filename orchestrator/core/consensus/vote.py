"""Scalar voting and value similarity for the consensus engine (spec §4.3/§4.4).

Every function here is a function of the *multiset* of votes: iteration happens over sorted distinct
values and float sums use ``math.fsum`` (exactly rounded), so the result never depends on pass order.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import Levenshtein

# Grouping and ordering keys: bytes compare in the same order as the text they encode.
from orchestrator.ids import canonical_json as canonical_json

NUMBER_REL_TOL = 0.03
STRING_SIM_THRESHOLD = 0.9

_PUNCT = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def kind_of(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "other"


def numbers_close(a: float, b: float) -> bool:
    return abs(a - b) <= NUMBER_REL_TOL * max(abs(a), abs(b))


@lru_cache(maxsize=8192)
def normalise_text(text: str) -> str:
    """Case-folded, punctuation stripped, whitespace collapsed ("Acme Inc." → "acme inc")."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _PUNCT.sub("", folded)).strip()


@lru_cache(maxsize=8192)
def _views(text: str) -> tuple[str, ...]:
    norm = normalise_text(text)
    sorted_tokens = " ".join(sorted(norm.split()))
    # Derived views of punctuation-only strings are empty and would make "!!" equal "??".
    return (text, text.casefold(), norm or "\0" + text, sorted_tokens or "\0" + text)


@lru_cache(maxsize=8192)
def digits_and_letters(text: str) -> tuple[str, str]:
    """The digits-only and the letters-only (case-folded) views of spec §4.3 ("PO-123" → ("123", "po"))."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isdecimal()), "".join(c for c in folded if c.isalpha())


@lru_cache(maxsize=8192)
def strings_agree(a: str, b: str) -> bool:
    """Equal under one of the views of spec §4.3, or Levenshtein-close once normalised.

    The digits-only and letters-only views count together (both must agree): either alone would make
    "Invoice 1001" equal "Invoice 1002", or "PO 123" equal "SO 123". Together they equate spellings that
    differ only in separators, spacing and case ("PO 123", "PO-123", "po123"; "(555) 123-4567" and
    "555.123.4567"). Known cost: "1.5" and "15" agree as strings (numbers are voted as numbers).
    Levenshtein closeness forgives typos in words only: strings whose digits differ are different
    identifiers, dates or amounts however close their spelling ("Invoice 1001" vs "Invoice 1002")."""
    if any(x == y for x, y in zip(_views(a), _views(b), strict=True)):
        return True
    (da, la), (db, lb) = digits_and_letters(a), digits_and_letters(b)
    if da == db and (da or la) and la == lb:
        return True
    na, nb = normalise_text(a), normalise_text(b)
    return da == db and bool(na and nb) and Levenshtein.normalized_similarity(na, nb) >= STRING_SIM_THRESHOLD


def string_similarity(a: str, b: str) -> float:
    if strings_agree(a, b):
        return 1.0
    return float(Levenshtein.normalized_similarity(normalise_text(a), normalise_text(b)))


def similarity(a: Any, b: Any) -> float:
    """Similarity in [0,1] of two JSON values, used to pair list items that share no key."""
    ka, kb = kind_of(a), kind_of(b)
    if ka != kb:
        return 0.0
    if ka == "none":
        return 1.0
    if ka == "number":
        if numbers_close(a, b):
            return 1.0
        fa, fb = float(a), float(b)
        return max(0.0, 1.0 - abs(fa - fb) / max(abs(fa), abs(fb)))
    if ka == "string":
        return string_similarity(a, b)
    if ka == "object":
        keys = sorted(k for k in set(a) | set(b) if a.get(k) is not None or b.get(k) is not None)
        if not keys:
            return 1.0
        return math.fsum(similarity(a.get(k), b.get(k)) for k in keys) / len(keys)
    if ka == "array":
        sa, sb = {canonical_json(x) for x in a}, {canonical_json(x) for x in b}
        union = sa | sb
        return len(sa & sb) / len(union) if union else 1.0
    return 1.0 if canonical_json(a) == canonical_json(b) else 0.0


def _exact_representative(members: Sequence[int | float]) -> int | float:
    """One value standing for several equal numbers (5 and 5.0 → 5.0; only ints → int). Equal floats
    differ only in the sign of zero: `+ 0.0` makes -0.0 0.0, so the order of the passes never shows."""
    if all(isinstance(m, int) for m in members):
        return members[0]
    return float(members[0]) + 0.0


def vote_numbers(values: Sequence[int | float]) -> tuple[int | float, int]:
    """Return (consensus, support) for non-empty numeric votes. The consensus is always a value some
    pass gave: extraction must never report a number nobody read in the document.

    An exact group holding a strict majority of the votes wins as is, so [1234.56, 1234.56, 1243.56]
    gives 1234.56 with support 2 although the outlier is within the 3 % tolerance. Otherwise numbers are
    clustered with the 3 % rule: star clusters around each distinct value, the largest wins (ties:
    smaller spread, then smaller centre), and its value is the cluster's most frequent exact value (ties:
    the medoid, then the smaller value). The support (hence the likelihood) is the whole cluster's size:
    [210.09, 210.53, 217.02, 227.55, 217.02] gives 217.02 with support 4 (never their mean, 213.67).
    """
    groups: dict[float, list[int | float]] = {}
    for v in values:
        groups.setdefault(float(v), []).append(v)
    best_exact = max(sorted(groups), key=lambda k: len(groups[k]))
    if 2 * len(groups[best_exact]) > len(values):
        return _exact_representative(groups[best_exact]), len(groups[best_exact])

    best: tuple[int, float, float] | None = None
    best_members: list[float] = []
    for centre in sorted(groups):
        members = [k for k in sorted(groups) if numbers_close(k, centre)]
        size = sum(len(groups[k]) for k in members)
        keyed = (-size, members[-1] - members[0], centre)
        if best is None or keyed < best:
            best, best_members = keyed, members
    assert best is not None
    chosen = cluster_value({k: len(groups[k]) for k in best_members})
    return _exact_representative(groups[chosen]), -best[0]


def cluster_value(counts: Mapping[float, int]) -> float:
    """The most frequent exact value of a cluster ({value: how many voted it}); ties: the medoid (the
    least total distance to every member), then the smaller value."""
    top = max(counts.values())
    tied = [k for k in sorted(counts) if counts[k] == top]

    def spread(k: float) -> float:
        return math.fsum(c * abs(k - other) for other, c in counts.items())

    return min(tied, key=lambda k: (spread(k), k))


def vote_strings(values: Sequence[str]) -> tuple[str, int]:
    """Largest cluster of agreeing strings (views or Levenshtein ≥ 0.9), then its medoid."""
    counts = sorted(Counter(values).items())
    best: tuple[int, float, str] | None = None
    best_members: list[tuple[str, int]] = []
    for centre, _ in counts:
        members = [(s, c) for s, c in counts if strings_agree(centre, s)]
        cohesion = math.fsum(c * Levenshtein.normalized_similarity(centre, s) for s, c in members)
        keyed = (-sum(c for _, c in members), -cohesion, centre)
        if best is None or keyed < best:
            best, best_members = keyed, members
    assert best is not None

    def medoid_key(candidate: tuple[str, int]) -> tuple[float, int, str]:
        text, count = candidate
        total = math.fsum(c * Levenshtein.normalized_similarity(text, s) for s, c in best_members)
        return (-total, -count, text)

    return min(best_members, key=medoid_key)[0], -best[0]


def vote_bools(values: Sequence[bool]) -> tuple[bool, int]:
    trues = sum(1 for v in values if v)
    falses = len(values) - trues
    # A tie has no pass-order-free winner; False is the conservative reading of an unconfirmed claim.
    return (True, trues) if trues > falses else (False, falses)


def vote_canonical(values: Sequence[Any]) -> tuple[Any, int]:
    """Mixed types (or objects/lists voted as a whole): exact grouping by canonical JSON."""
    groups: dict[bytes, list[Any]] = {}
    for v in values:
        groups.setdefault(canonical_json(v), []).append(v)
    key = min(groups, key=lambda k: (-len(groups[k]), k))
    return groups[key][0], len(groups[key])


def vote_leaf(values: Sequence[Any]) -> tuple[Any, int]:
    """Vote over the values of the voters present at this leaf (``None`` = present but empty).

    Returns (consensus, supporting voter count). The None group wins only when strictly larger than
    the best value cluster (the spec's "prefer the number on a tie", applied to every type).
    """
    present = [v for v in values if v is not None]
    none_count = len(values) - len(present)
    if not present:
        return None, none_count
    first = present[0]
    kind = type(first)
    if all(type(v) is kind and v == first for v in present):
        # Unanimous (the common case): every rule below elects this value with full support; skip
        # clustering. (`type is` keeps 1, 1.0 and True apart; NaN never equals itself, so it goes on.)
        if kind is float:  # the same representative as the number vote (the sign of zero never shows)
            first = _exact_representative(present)
        return (None, none_count) if none_count > len(present) else (first, len(present))
    kinds = {kind_of(v) for v in present}
    value: Any
    if kinds == {"bool"}:
        value, support = vote_bools(present)
    elif kinds == {"number"}:
        value, support = vote_numbers(present)
    elif kinds == {"string"}:
        value, support = vote_strings(present)
    else:
        value, support = vote_canonical(present)
    if none_count > support:
        return None, none_count
    return value, support
