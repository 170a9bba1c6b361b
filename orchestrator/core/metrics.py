"""Experiment metrics views (spec §2.14) computed from stored consensus records.

All views are pure functions returning the wire dicts. Per-target scores come from the vote rows that
are part of the consensus (rows with a ``path``); rows of items the consensus left out ("dissent rows",
``path`` None) only show up in the votes view, or when a target has nothing else.

Confusion (classifier and split): one *unit* is a document (classifier) or a page (split) with a
consensus label s. ``diag[s]`` = mean over units of the share of voters that voted s;
``flows[s → t]`` = mean over the units of s of the share of voters that voted t ≠ s. Failed or
unassigned votes flow nowhere, so ``diag[s] + Σ_t flows[s → t] ≤ 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.consensus import ConsensusRecord, VoteRow

__all__ = [
    "Digest",
    "DocDigest",
    "DocRecord",
    "by_document_view",
    "by_target_view",
    "digest",
    "run_score",
    "summary_of_digests",
    "summary_view",
    "target_entry",
    "votes_view",
]

_LABEL_TYPES = ("classifier", "split")
_WIRE_ROW_KEYS = (
    "consensus",
    "votes",
    "score",
    "row_presence_score",
    "present_voter_count",
    "total_voter_count",
)


@dataclass(frozen=True)
class DocRecord:
    document_id: str
    filename: str
    record: ConsensusRecord | None
    prior: ConsensusRecord | None = None


# What the summary's aggregate needs of one document's consensus record: its targets' scores (extract) or
# its label units (classifier: one; split: one per page), as [consensus label, votes]. A few hundred
# bytes, stored beside the record when the child completes, so a summary of a 20,000-document run never
# decodes 20,000 records (issue 15: 12 readers of a summary took the run to 0.8×).
Digest = dict[str, Any]


@dataclass(frozen=True)
class DocDigest:
    """One scored document for the summary: its score, the prior run's score of it, and its digest."""

    score: float
    prior_score: float | None
    digest: Digest


def digest(record: ConsensusRecord) -> Digest:
    if record["block_type"] in _LABEL_TYPES:
        return {"units": _label_units(record)}
    # The scores of `_doc_targets`, without building the values (this runs once per child, in the worker).
    grouped: dict[str, list[float]] = {}
    for row in record["rows"]:
        if row["path"] is not None:
            grouped.setdefault(row["target"], []).append(row["score"])
    return {"targets": {t: s[0] if len(s) == 1 else math.fsum(s) / len(s) for t, s in grouped.items()}}


def _label_units(record: ConsensusRecord) -> list[list[Any]]:
    labels: Mapping[str, Any] = record.get("labels") or {}
    if record["block_type"] == "classifier":
        return [[labels.get("consensus"), list(labels.get("votes") or [])]]
    pages = sorted((labels.get("pages") or {}).items(), key=lambda kv: int(kv[0]))
    return [[page.get("consensus"), list(page.get("votes") or [])] for _, page in pages]


def run_score(scores: Iterable[float]) -> float | None:
    """Mean score of the scored documents, or None when there is none."""
    mean = _Mean()
    for s in scores:
        mean.add(s)
    return mean.value()


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0

    def add(self, value: float | None) -> None:
        if value is not None:
            self.total += value
            self.count += 1

    def value(self) -> float | None:
        return self.total / self.count if self.count else None


def _rows_score(rows: Sequence[VoteRow]) -> float | None:
    """Mean row score, over the consensus rows when there are any (as the per-target scores are)."""
    chosen = [r for r in rows if r["path"] is not None] or list(rows)
    return math.fsum(r["score"] for r in chosen) / len(chosen) if chosen else None


# --- per-document target scores ---------------------------------------------------------------------


def _doc_targets(record: ConsensusRecord) -> dict[str, tuple[float, Any]]:
    """target → (mean score of its consensus rows, consensus value or list of values)."""
    grouped: dict[str, list[VoteRow]] = {}
    for row in record["rows"]:
        if row["path"] is not None:
            grouped.setdefault(row["target"], []).append(row)
    return {target: _score_and_value(rows) for target, rows in grouped.items()}


def _score_and_value(rows: Sequence[VoteRow]) -> tuple[float, Any]:
    score = math.fsum(r["score"] for r in rows) / len(rows)
    value = rows[0]["consensus"] if len(rows) == 1 else [r["consensus"] for r in rows]
    return score, value


def _matching_rows(record: ConsensusRecord, target: str) -> list[VoteRow]:
    rows = [r for r in record["rows"] if r["target"] == target or r["path"] == target]
    if not rows and record["block_type"] == "classifier" and _consensus_label(record) is not None:
        # For classifiers the API's target is a category; the only vote row is "category".
        rows = [r for r in record["rows"] if r["target"] == "category"]
    return rows


def _target_score(record: ConsensusRecord | None, target: str) -> tuple[float, Any] | None:
    if record is None:
        return None
    if record["block_type"] == "classifier" and not any(r["target"] == target for r in record["rows"]):
        label = _consensus_label(record)
        return (record["score"], label) if label == target else None
    rows = _matching_rows(record, target)
    in_consensus = [r for r in rows if r["path"] is not None]
    chosen = in_consensus or rows
    return _score_and_value(chosen) if chosen else None


def _consensus_label(record: ConsensusRecord) -> str | None:
    labels = record.get("labels") or {}
    consensus = labels.get("consensus")
    return consensus if isinstance(consensus, str) else None


# --- confusion --------------------------------------------------------------------------------------


@dataclass
class _Confusion:
    units: dict[str, int] = field(default_factory=dict)
    agree: dict[str, float] = field(default_factory=dict)
    flow: dict[tuple[str, str], float] = field(default_factory=dict)

    def add_unit(self, consensus: Any, votes: Sequence[Any]) -> None:
        if not isinstance(consensus, str) or not votes:
            return
        n = len(votes)
        self.units[consensus] = self.units.get(consensus, 0) + 1
        self.agree[consensus] = self.agree.get(consensus, 0.0) + sum(1 for v in votes if v == consensus) / n
        for label in sorted({v for v in votes if isinstance(v, str) and v != consensus}):
            share = sum(1 for v in votes if v == label) / n
            self.flow[(consensus, label)] = self.flow.get((consensus, label), 0.0) + share

    def add_record(self, record: ConsensusRecord | None) -> None:
        if record is not None and record["block_type"] in _LABEL_TYPES:
            self.add_units(_label_units(record))

    def add_units(self, units: Sequence[Sequence[Any]]) -> None:
        for consensus, votes in units:
            self.add_unit(consensus, votes)

    def diag(self) -> dict[str, float]:
        return {label: self.agree[label] / self.units[label] for label in sorted(self.units)}

    def flow_score(self, source: str, target: str) -> float:
        return self.flow.get((source, target), 0.0) / self.units[source] if source in self.units else 0.0

    def flows(self) -> list[dict[str, Any]]:
        return [
            {"source": s, "target": t, "score": self.flow_score(s, t)}
            for s, t in sorted(self.flow)
            if self.flow[(s, t)] > 0
        ]

    def matrix(self) -> dict[str, Any]:
        return {"diag": self.diag(), "flows": self.flows()}

    def seen_from(self, label: str) -> dict[str, Any]:
        """by_target confusion: flow_to[l] = mass leaving ``label`` for l; flow_from[l] = mass from l
        arriving at ``label``."""
        return {
            "self": self.diag().get(label),
            "flow_from": {s: self.flow_score(s, t) for s, t in sorted(self.flow) if t == label},
            "flow_to": {t: self.flow_score(s, t) for s, t in sorted(self.flow) if s == label},
        }


def _prior_score(doc: DocRecord, include_prior: bool) -> float | None:
    return doc.prior["score"] if include_prior and doc.prior is not None else None


def _document_ref(doc: DocRecord) -> dict[str, str]:
    return {"id": doc.document_id, "filename": doc.filename}


# --- views ------------------------------------------------------------------------------------------


def summary_view(
    *,
    experiment_id: str,
    run_id: str,
    block_type: str,
    block_execution_fingerprint: str | None,
    docs: Iterable[DocRecord],
    total_document_count: int,
    prior_run_id: str | None,
    include_prior: bool,
    list_documents: bool = True,
) -> dict[str, Any]:
    """The summary over whole records, in one pass over ``docs``; besides the returned documents list,
    memory is O(#targets/labels). Without ``list_documents`` the list is left empty. The server computes
    the same aggregate from stored digests (`summary_of_digests`) and pages its documents from the store."""
    documents: list[dict[str, Any]] = []

    def digests() -> Iterator[DocDigest]:
        for doc in docs:
            if doc.record is None:
                continue
            prior_score = _prior_score(doc, include_prior)
            if list_documents:
                documents.append(
                    {
                        "id": doc.document_id,
                        "filename": doc.filename,
                        "score": doc.record["score"],
                        "prior_score": prior_score,
                    }
                )
            yield DocDigest(doc.record["score"], prior_score, digest(doc.record))

    view = summary_of_digests(
        experiment_id=experiment_id,
        run_id=run_id,
        block_type=block_type,
        block_execution_fingerprint=block_execution_fingerprint,
        docs=digests(),
        total_document_count=total_document_count,
        prior_run_id=prior_run_id,
        include_prior=include_prior,
    )
    view["documents"] = documents
    return view


def summary_of_digests(
    *,
    experiment_id: str,
    run_id: str,
    block_type: str,
    block_execution_fingerprint: str | None,
    docs: Iterable[DocDigest],
    total_document_count: int,
    prior_run_id: str | None,
    include_prior: bool,
) -> dict[str, Any]:
    """The summary's aggregate (its documents list left empty) from the scored documents' digests."""
    score, prior = _Mean(), _Mean()
    per_target: dict[str, _Mean] = {}
    confusion = _Confusion()
    labelled = block_type in _LABEL_TYPES
    for doc in docs:
        score.add(doc.score)
        prior.add(doc.prior_score if include_prior else None)
        if labelled:
            confusion.add_units(doc.digest.get("units") or [])
        else:
            for target, target_score in (doc.digest.get("targets") or {}).items():
                per_target.setdefault(target, _Mean()).add(target_score)
    aggregate: dict[str, Any]
    if labelled:
        aggregate = confusion.matrix()
    else:
        aggregate = {"likelihoods": {t: m.value() for t, m in per_target.items()}}
    return {
        "kind": "summary",
        "view": "summary",
        "experiment_id": experiment_id,
        "run_id": run_id,
        "block_execution_fingerprint": block_execution_fingerprint,
        "block_type": block_type,
        "score": score.value(),
        "prior_score": prior.value() if include_prior else None,
        "prior_run_id": prior_run_id if include_prior else None,
        "documents": [],
        "scored_document_count": score.count,
        "total_document_count": total_document_count,
        "aggregate": aggregate,
    }


def by_document_view(*, run_id: str, doc: DocRecord, include_prior: bool) -> dict[str, Any]:
    record = doc.record
    targets: list[dict[str, Any]] = []
    confusion: dict[str, Any] | None = None
    if record is not None:
        prior_targets = _doc_targets(doc.prior) if include_prior and doc.prior is not None else {}
        for path, (score, value) in _doc_targets(record).items():
            prior = prior_targets.get(path)
            targets.append({"path": path, "score": score, "prior_score": prior[0] if prior else None, "value": value})
        targets.sort(key=lambda t: (t["score"], t["path"]))
        if record["block_type"] in _LABEL_TYPES:
            acc = _Confusion()
            acc.add_record(record)
            confusion = acc.matrix()
    return {
        "kind": "by_document",
        "view": "by_document",
        "run_id": run_id,
        "document": _document_ref(doc),
        "score": record["score"] if record is not None else None,
        "prior_score": _prior_score(doc, include_prior),
        "confusion": confusion,
        "targets": targets,
    }


def target_entry(doc: DocRecord, target: str, include_prior: bool) -> dict[str, Any] | None:
    """One document's row of the by_target view, or None when the document has no value for `target`."""
    found = _target_score(doc.record, target) if doc.record is not None else None
    if found is None:
        return None
    prior_found = _target_score(doc.prior, target) if include_prior else None
    return {
        "id": doc.document_id,
        "filename": doc.filename,
        "score": found[0],
        "prior_score": prior_found[0] if prior_found else None,
        "value": found[1],
    }


def by_target_view(
    *, run_id: str, target: str, docs: Iterable[DocRecord], include_prior: bool, list_documents: bool = True
) -> dict[str, Any]:
    documents: list[dict[str, Any]] = []
    score, prior = _Mean(), _Mean()
    confusion = _Confusion()
    labelled = False
    for doc in docs:
        if doc.record is None:
            continue
        labelled = labelled or doc.record["block_type"] in _LABEL_TYPES
        confusion.add_record(doc.record)
        entry = target_entry(doc, target, include_prior)
        if entry is None:
            continue
        if list_documents:
            documents.append(entry)
        score.add(entry["score"])
        prior.add(entry["prior_score"])
    return {
        "kind": "by_target",
        "view": "by_target",
        "run_id": run_id,
        "target": target,
        "score": score.value(),
        "prior_score": prior.value() if include_prior else None,
        "confusion": confusion.seen_from(target) if labelled else None,
        "documents": documents,
    }


def _wire_rows(rows: Sequence[VoteRow]) -> list[dict[str, Any]]:
    return [{k: row[k] for k in _WIRE_ROW_KEYS} for row in rows]  # type: ignore[literal-required]


def votes_view(*, run_id: str, doc: DocRecord, target: str, include_prior: bool) -> dict[str, Any]:
    rows = _matching_rows(doc.record, target) if doc.record is not None else []
    prior_rows = _matching_rows(doc.prior, target) if include_prior and doc.prior is not None else []
    return {
        "kind": "votes",
        "view": "votes",
        "run_id": run_id,
        "document": _document_ref(doc),
        "target": target,
        "score": _rows_score(rows),
        "prior_score": _rows_score(prior_rows) if include_prior else None,
        "rows": _wire_rows(rows),
    }
