"""Reduce n pass outputs of one block to a consensus record (spec §4).

``reduce_passes`` is pure and deterministic, and its ``value``, ``likelihoods`` and ``score`` do not
depend on the order of the passes (ties are broken by value, never by pass position); only the
per-voter ``votes`` lists follow pass order. Likelihood = supporting voters / ``n_voters``, where
failed passes (None) count as voters that support nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict

from orchestrator.core.consensus.extract import VoteRow, reduce_extract
from orchestrator.core.consensus.vote import vote_strings

__all__ = ["BlockType", "ConsensusRecord", "VoteRow", "reduce_passes"]

BlockType = Literal["extract", "classifier", "split"]


class ConsensusRecord(TypedDict):
    block_type: str
    n_voters: int
    n_failed: int
    value: Any
    likelihoods: Any
    score: float
    rows: list[VoteRow]
    labels: NotRequired[dict[str, Any]]
    classifier_margin: NotRequired[float]


def reduce_passes(
    block_type: BlockType,
    passes: Sequence[Any | None],
    *,
    page_count: int | None = None,
    schema: Mapping[str, Any] | None = None,
) -> ConsensusRecord:
    passes = list(passes)
    if block_type == "extract":
        return _reduce_extract(passes, schema)
    if block_type == "classifier":
        return _reduce_classifier(passes)
    if block_type == "split":
        return _reduce_split(passes, page_count)
    raise ValueError(f"consensus is not defined for block type {block_type!r}")


def _record(block_type: str, passes: Sequence[Any], value: Any, likelihoods: Any, score: float) -> ConsensusRecord:
    return ConsensusRecord(
        block_type=block_type,
        n_voters=len(passes),
        n_failed=sum(1 for p in passes if p is None),
        value=value,
        likelihoods=likelihoods,
        score=score,
        rows=[],
    )


def _reduce_extract(passes: list[Any], schema: Mapping[str, Any] | None) -> ConsensusRecord:
    if all(p is None for p in passes):
        return _record("extract", passes, None, None, 0.0)
    value, likelihoods, rows, score = reduce_extract(passes, schema)
    record = _record("extract", passes, value, likelihoods, score)
    record["rows"] = rows
    return record


# --- classifier -------------------------------------------------------------------------------------


def _category(decision: Any) -> str | None:
    if isinstance(decision, Mapping) and isinstance(decision.get("category"), str):
        return str(decision["category"])
    return None


def _reduce_classifier(passes: list[Any]) -> ConsensusRecord:
    n = len(passes)
    votes = [_category(p) for p in passes]
    counts = Counter(v for v in votes if v is not None)
    present = [v is not None for v in votes]
    if not counts:
        record = _record("classifier", passes, None, 0.0, 0.0)
        record["labels"] = {"consensus": None, "votes": votes}
        record["classifier_margin"] = 0.0
        return record
    # Ties go to the lexicographically smallest category so the winner is order-free.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    winner, win_count = ranked[0]
    share = win_count / n
    runner_up = ranked[1][1] / n if len(ranked) > 1 else 0.0
    reasons = [str(p.get("reasoning") or "") for p, v in zip(passes, votes, strict=True) if v == winner]
    reasoning = vote_strings(reasons)[0]
    record = _record("classifier", passes, {"category": winner, "reasoning": reasoning}, share, share)
    count = sum(present)
    record["rows"] = [
        VoteRow(
            target="category",
            path="category",
            consensus=winner,
            votes=list(votes),
            score=share,
            row_presence_score=count / n,
            present_voter_count=count,
            total_voter_count=n,
        )
    ]
    record["labels"] = {"consensus": winner, "votes": votes}
    record["classifier_margin"] = share - runner_up
    return record


# --- split ------------------------------------------------------------------------------------------


def _subdocuments(split: Any) -> list[tuple[str, list[int]]] | None:
    if not isinstance(split, Sequence) or isinstance(split, str):
        return None
    out: list[tuple[str, list[int]]] = []
    for sub in split:
        if not isinstance(sub, Mapping) or not isinstance(sub.get("name"), str):
            continue
        pages = sub.get("pages") or []
        ints = [p for p in pages if isinstance(p, int) and not isinstance(p, bool)] if isinstance(pages, list) else []
        out.append((str(sub["name"]), ints))
    return out


def _reduce_split(passes: list[Any], page_count: int | None) -> ConsensusRecord:
    n = len(passes)
    parsed = [_subdocuments(p) for p in passes]
    if all(p is None for p in parsed):
        record = _record("split", passes, None, None, 0.0)
        record["labels"] = {"pages": {}}
        return record
    seen_pages = [pg for subs in parsed if subs for _, pages in subs for pg in pages]
    last_page = page_count if page_count is not None else max(seen_pages, default=0)

    # Per voter: page → label (the first subdocument listing a page wins on overlap), name → pages.
    page_labels: list[dict[int, str]] = []
    name_pages: list[dict[str, list[int]] | None] = []
    for subs in parsed:
        labels: dict[int, str] = {}
        names: dict[str, set[int]] = {}
        for name, pages in subs or ():
            bounded = {p for p in pages if 1 <= p <= last_page}
            names.setdefault(name, set()).update(bounded)
            for p in sorted(bounded):
                labels.setdefault(p, name)
        page_labels.append(labels)
        name_pages.append({k: sorted(v) for k, v in names.items()} if subs is not None else None)

    agreement: dict[int, float] = {}
    winners: dict[int, str | None] = {}
    page_votes: dict[str, Any] = {}
    for page in range(1, last_page + 1):
        votes = [
            labels.get(page) if subs is not None else None for labels, subs in zip(page_labels, parsed, strict=True)
        ]
        counts = Counter(v for v in votes if v is not None)
        if counts:
            winner: str | None
            winner, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            winners[page], agreement[page] = winner, count / n
        else:
            winners[page] = None
            agreement[page] = sum(1 for subs in parsed if subs is not None) / n
        page_votes[str(page)] = {"consensus": winners[page], "votes": votes}

    groups: dict[str, list[int]] = {}
    for page, won in winners.items():
        if won is not None:
            groups.setdefault(won, []).append(page)
    ordered = sorted(groups.items(), key=lambda kv: (kv[1][0], kv[0]))
    value = [{"name": name, "pages": pages} for name, pages in ordered]

    def producers(name: str) -> list[bool]:
        return [np is not None and name in np for np in name_pages]

    likelihoods = [
        {"name": sum(producers(name)) / n, "pages": [agreement[p] for p in pages]} for name, pages in ordered
    ]
    rows: list[VoteRow] = []
    all_names = sorted({name for np in name_pages if np for name in np})
    row_specs: list[tuple[str, list[int] | None]] = [
        *ordered,
        *((nm, None) for nm in all_names if nm not in groups),
    ]
    for name, won_pages in row_specs:
        present = producers(name)
        count = sum(present)
        votes_for = [np.get(name) if np is not None else None for np in name_pages]
        # A name that won no page is a dissent row: its score is the share of voters without it.
        row_score = math.fsum(agreement[p] for p in won_pages) / len(won_pages) if won_pages else (n - count) / n
        rows.append(
            VoteRow(
                target=name,
                path=name if won_pages else None,
                consensus=won_pages,
                votes=votes_for,
                score=row_score,
                row_presence_score=count / n,
                present_voter_count=count,
                total_voter_count=n,
            )
        )
    score = math.fsum(agreement.values()) / last_page if last_page > 0 else 1.0
    record = _record("split", passes, value, likelihoods, score)
    record["rows"] = rows
    record["labels"] = {"pages": page_votes}
    return record
