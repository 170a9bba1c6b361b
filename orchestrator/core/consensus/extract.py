"""Consensus of extract passes: recurse objects, align and vote lists, vote leaves by type.

Voters and presence:
* ``present[i]`` says voter i produced the object / list item that contains the value being voted.
  Absent voters (failed pass, missing parent, item not in their list) abstain: they neither support a
  value nor form part of the ``None`` group, but the likelihood denominator is always ``n_voters``.
* A list item (aligned row) enters the consensus when at least half of the voters that produced the
  list have it (ties keep the item, as the spec prefers a value over None). Items below that become
  *dissent rows*: vote rows with ``path`` None and consensus None, visible in the votes view only, so
  the likelihood tree and score cover exactly the rows that have a ``path``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from orchestrator.core.consensus.align import align_lists
from orchestrator.core.consensus.vote import canonical_json, kind_of, vote_leaf


class VoteRow(TypedDict):
    target: str
    path: str | None
    consensus: Any
    votes: list[Any]
    score: float
    row_presence_score: float
    present_voter_count: int
    total_voter_count: int


def join_path(base: str, part: str) -> str:
    return f"{base}.{part}" if base else part


Sources = list[str | None] | None  # per voter, the path its value came from (None: not tracked)


@dataclass
class _Ctx:
    n: int
    rows: list[VoteRow] = field(default_factory=list)
    # Tracked for POST /v1/consensus's alignment only: per consensus row, where each voter's value was.
    sources: list[list[str | None]] | None = None

    def add_row(
        self,
        target: str,
        path: str | None,
        consensus: Any,
        votes: list[Any],
        present: Sequence[bool],
        score: float,
        src: Sources = None,
    ) -> None:
        if self.sources is not None and path is not None:
            self.sources.append([s if p else None for s, p in zip(src or [None] * self.n, present, strict=True)])
        count = sum(present)
        self.rows.append(
            VoteRow(
                target=target,
                path=path,
                consensus=consensus,
                votes=votes,
                score=score,
                row_presence_score=count / self.n,
                present_voter_count=count,
                total_voter_count=self.n,
            )
        )


def _sub_schema(schema: Mapping[str, Any] | None, key: str | None) -> Mapping[str, Any] | None:
    if not isinstance(schema, Mapping):
        return None
    if key is None:
        items = schema.get("items")
        return items if isinstance(items, Mapping) else None
    props = schema.get("properties")
    sub = props.get(key) if isinstance(props, Mapping) else None
    return sub if isinstance(sub, Mapping) else None


def _ordered_keys(dicts: Sequence[Mapping[str, Any]], schema: Mapping[str, Any] | None) -> list[str]:
    """Schema property order first, then first appearance over voters in canonical order."""
    keys: dict[str, None] = {}
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    seen = {k for d in dicts for k in d}
    if isinstance(props, Mapping):
        keys.update((k, None) for k in props if k in seen)
    for d in sorted(dicts, key=canonical_json):
        keys.update((k, None) for k in d)
    return list(keys)


def _vote(
    ctx: _Ctx,
    values: Sequence[Any],
    present: Sequence[bool],
    target: str,
    path: str,
    schema: Mapping[str, Any] | None,
    src: Sources = None,
    *,
    root: bool = False,
) -> tuple[Any, Any]:
    """Return (consensus value, likelihood tree) and append the vote rows of this subtree."""
    here = [v for v, p in zip(values, present, strict=True) if p]
    non_null = [v for v in here if v is not None]
    none_count = len(here) - len(non_null)
    first_type = type(non_null[0]) if non_null else None
    if all(type(v) is first_type for v in non_null):  # one Python type (the common case): one look-up
        kinds = {kind_of(non_null[0])} if non_null else set()
    else:
        kinds = {kind_of(v) for v in non_null}
    structured = root or len(non_null) >= none_count
    if kinds == {"object"} and structured:
        return _vote_object(ctx, values, present, target, path, schema, src)
    if kinds == {"array"} and structured:
        return _vote_list(ctx, values, present, target, path, schema, src)
    consensus, support = vote_leaf(here)
    likelihood = support / ctx.n
    votes = [v if p else None for v, p in zip(values, present, strict=True)]
    ctx.add_row(target, path, consensus, votes, present, likelihood, src)
    return consensus, likelihood


def _vote_object(
    ctx: _Ctx,
    values: Sequence[Any],
    present: Sequence[bool],
    target: str,
    path: str,
    schema: Mapping[str, Any] | None,
    src: Sources,
) -> tuple[dict[str, Any], dict[str, Any]]:
    has_obj = [p and isinstance(v, dict) for v, p in zip(values, present, strict=True)]
    dicts = [v for v, h in zip(values, has_obj, strict=True) if h]
    value: dict[str, Any] = {}
    likelihoods: dict[str, Any] = {}
    for key in _ordered_keys(dicts, schema):
        child = [v.get(key) if h else None for v, h in zip(values, has_obj, strict=True)]
        child_src = None if src is None else [join_path(s, key) if s is not None else None for s in src]
        value[key], likelihoods[key] = _vote(
            ctx, child, has_obj, join_path(target, key), join_path(path, key), _sub_schema(schema, key), child_src
        )
    return value, likelihoods


def _vote_list(
    ctx: _Ctx,
    values: Sequence[Any],
    present: Sequence[bool],
    target: str,
    path: str,
    schema: Mapping[str, Any] | None,
    src: Sources,
) -> tuple[list[Any], list[Any]]:
    lists = [v if p and isinstance(v, list) else None for v, p in zip(values, present, strict=True)]
    participants = sum(present)
    item_schema = _sub_schema(schema, None)
    item_target = join_path(target, "*")
    value: list[Any] = []
    likelihoods: list[Any] = []
    kept: list[list[int | None]] = []
    left_out: list[list[int | None]] = []
    for row in align_lists(lists):
        (kept if 2 * sum(idx is not None for idx in row) >= participants else left_out).append(row)
    # Items are output in the voters' typical order (median then mean position), not the reference's.
    kept.sort(key=_position_key)
    for row in kept:
        item_path = join_path(path, str(len(value)))
        item_present = [idx is not None for idx in row]
        item_src = None if src is None else [_item_path(s, i) for s, i in zip(src, row, strict=True)]
        item_value, item_likelihood = _vote(
            ctx, _row_items(lists, row), item_present, item_target, item_path, item_schema, item_src
        )
        value.append(item_value)
        likelihoods.append(item_likelihood)
    for row in left_out:
        _dissent(ctx, _row_items(lists, row), [idx is not None for idx in row], item_target)
    return value, likelihoods


def _item_path(base: str | None, index: int | None) -> str | None:
    return join_path(base, str(index)) if base is not None and index is not None else None


def _row_items(lists: Sequence[Sequence[Any] | None], row: Sequence[int | None]) -> list[Any]:
    return [lst[idx] if lst is not None and idx is not None else None for lst, idx in zip(lists, row, strict=True)]


def _position_key(row: Sequence[int | None]) -> tuple[float, float]:
    positions = [idx for idx in row if idx is not None]
    return statistics.median(positions), statistics.fmean(positions)


def _dissent(ctx: _Ctx, values: Sequence[Any], present: Sequence[bool], target: str) -> None:
    """Rows for an item the consensus left out: consensus None, score = share of voters without it."""
    non_null = [v for v, p in zip(values, present, strict=True) if p and v is not None]
    kinds = {kind_of(v) for v in non_null}
    if kinds == {"object"}:
        has_obj = [p and isinstance(v, dict) for v, p in zip(values, present, strict=True)]
        for key in _ordered_keys(non_null, None):
            child = [v.get(key) if h else None for v, h in zip(values, has_obj, strict=True)]
            _dissent(ctx, child, has_obj, join_path(target, key))
        return
    if kinds == {"array"}:
        lists = [v if p and isinstance(v, list) else None for v, p in zip(values, present, strict=True)]
        for row in align_lists(lists):
            items = [lst[i] if lst is not None and i is not None else None for lst, i in zip(lists, row, strict=True)]
            _dissent(ctx, items, [i is not None for i in row], join_path(target, "*"))
        return
    votes = [v if p else None for v, p in zip(values, present, strict=True)]
    ctx.add_row(target, None, None, votes, present, (ctx.n - len(non_null)) / ctx.n)


def reduce_extract(passes: Sequence[Any], schema: Mapping[str, Any] | None) -> tuple[Any, Any, list[VoteRow], float]:
    """Return (value, likelihoods, rows, score) for at least one non-failed pass."""
    value, likelihoods, rows, score, _ = reduce_extract_traced(passes, schema, trace=False)
    return value, likelihoods, rows, score


def reduce_extract_traced(
    passes: Sequence[Any], schema: Mapping[str, Any] | None, *, trace: bool = True
) -> tuple[Any, Any, list[VoteRow], float, list[list[str | None]]]:
    """`reduce_extract`, plus (with `trace`) for each row that has a path, in row order, the path each
    voter's value had in its own output (None where it had none): the alignment of POST /v1/consensus."""
    ctx = _Ctx(n=len(passes), sources=[] if trace else None)
    present = [p is not None for p in passes]
    src: Sources = [""] * len(passes) if trace else None
    value, likelihoods = _vote(ctx, passes, present, "", "", schema, src, root=True)
    scored = [row["score"] for row in ctx.rows if row["path"] is not None]
    score = math.fsum(scored) / len(scored) if scored else 1.0
    return value, likelihoods, ctx.rows, score, ctx.sources or []
