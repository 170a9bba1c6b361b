"""Align list items across passes before voting (spec §4.3 step 1).

The result is a list of *rows*; a row maps each voter to the index of its item in that row (or None).
Order independence: voters are processed in a canonical order (most items first, then by canonical JSON
of the whole list), so the first pass with the most items is the reference only up to that ordering;
voters with identical lists are interchangeable, hence the aligned values never depend on pass order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from itertools import combinations
from typing import Any

from orchestrator.core.consensus.vote import canonical_json, is_number, normalise_text, similarity

ITEM_SIM_THRESHOLD = 0.67
# A key field whose value sets barely overlap across passes would pair nothing and only mislead.
MIN_KEY_OVERLAP = 0.5

KeyFn = Callable[[Any], Hashable | None]


def scalar_key(value: Any) -> Hashable | None:
    """Normalised identity of a scalar: numbers by abs() and 2-decimal rounding, strings normalised."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("b", value)
    if is_number(value):
        return ("n", round(abs(float(value)), 2))
    if isinstance(value, str):
        return ("s", normalise_text(value))
    return ("j", canonical_json(value))


def _field_key(field: str) -> KeyFn:
    def key(item: Any) -> Hashable | None:
        return scalar_key(item.get(field)) if isinstance(item, dict) else None

    return key


def _is_key_scalar(value: Any) -> bool:
    return isinstance(value, str) or is_number(value)


def choose_key_field(lists: Sequence[Sequence[Any]]) -> str | None:
    """The scalar field that is unique within each pass and overlaps most across passes.

    Ranking: present in every item, then mean pairwise Jaccard of the normalised value sets, then
    coverage, then string fields over numbers, then field name (so the choice is order-free).
    """
    items = [item for lst in lists for item in lst]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    fields = sorted({f for item in items for f in item})
    ranked: list[tuple[bool, float, float, bool, str]] = []
    for field in fields:
        values = [item.get(field) for item in items if item.get(field) is not None]
        if not values or not all(_is_key_scalar(v) for v in values):
            continue
        sets: list[set[Hashable]] = []
        unique = True
        for lst in lists:
            keys = [scalar_key(item.get(field)) for item in lst if item.get(field) is not None]
            if len(set(keys)) != len(keys):
                unique = False
                break
            sets.append(set(keys))
        if not unique:
            continue
        pairs = list(combinations(sets, 2))
        overlap = math.fsum(len(a & b) / len(a | b) if a | b else 0.0 for a, b in pairs) / len(pairs) if pairs else 1.0
        if overlap < MIN_KEY_OVERLAP:
            continue
        coverage = len(values) / len(items)
        is_str = all(isinstance(v, str) for v in values)
        ranked.append((coverage == 1.0, overlap, coverage, is_str, field))
    if not ranked:
        return None
    return min(ranked, key=lambda r: (not r[0], -r[1], -r[2], not r[3], r[4]))[4]


def _key_function(lists: Sequence[Sequence[Any]]) -> KeyFn:
    items = [item for lst in lists for item in lst]
    if any(isinstance(item, dict) for item in items):
        field = choose_key_field(lists)
        if field is None:
            return lambda _item: None
        return _field_key(field)
    return scalar_key


def align_lists(lists: Sequence[Sequence[Any] | None]) -> list[list[int | None]]:
    """Pair items across voters: by normalised key, then by whole-item similarity ≥ 0.67; the rest
    become solo rows. Rows follow the reference's item order, solo rows are appended."""
    n = len(lists)
    order = sorted(
        (i for i, lst in enumerate(lists) if lst),
        key=lambda i: (-len(lists[i] or ()), canonical_json(lists[i])),
    )
    if not order:
        return []
    present = [list(lists[i] or ()) for i in order]
    key_fn = _key_function(present)

    rows: list[list[int | None]] = []
    reps: list[Any] = []
    rep_keys: list[Hashable | None] = []
    for voter in order:
        items = list(lists[voter] or ())
        item_keys = [key_fn(item) for item in items]
        matched: dict[int, int] = {}
        taken_rows: set[int] = set()

        by_key: dict[Hashable, list[int]] = {}
        for r, rk in enumerate(rep_keys):
            if rk is not None:
                by_key.setdefault(rk, []).append(r)
        for idx, k in enumerate(item_keys):
            candidates = by_key.get(k) if k is not None else None
            if candidates:
                r = candidates.pop(0)
                matched[idx] = r
                taken_rows.add(r)

        open_rows = [r for r in range(len(rows)) if r not in taken_rows]
        leftovers = [idx for idx in range(len(items)) if idx not in matched]
        scored = [
            (sim, r, idx)
            for r in open_rows
            for idx in leftovers
            if (sim := similarity(reps[r], items[idx])) >= ITEM_SIM_THRESHOLD
        ]
        scored.sort(key=lambda t: (-t[0], t[1], t[2]))
        for _sim, r, idx in scored:
            if r in taken_rows or idx in matched:
                continue
            matched[idx] = r
            taken_rows.add(r)

        for idx, item in enumerate(items):
            if idx in matched:
                rows[matched[idx]][voter] = idx
                continue
            row: list[int | None] = [None] * n
            row[voter] = idx
            rows.append(row)
            reps.append(item)
            rep_keys.append(item_keys[idx])
    return rows
