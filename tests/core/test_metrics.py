from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.core.consensus import reduce_passes
from orchestrator.core.metrics import (
    DocRecord,
    by_document_view,
    by_target_view,
    digest,
    run_score,
    summary_view,
    votes_view,
)

THIRD = 1 / 3
ITEMS = [{"sku": "A", "unit_price": 1.0}, {"sku": "B", "unit_price": 2.0}]


def extract_doc(doc_id: str, passes: list[Any], prior: list[Any] | None = None) -> DocRecord:
    return DocRecord(
        document_id=doc_id,
        filename=f"{doc_id}.pdf",
        record=reduce_passes("extract", passes),
        prior=reduce_passes("extract", prior) if prior is not None else None,
    )


def classifier_doc(doc_id: str, categories: list[str | None]) -> DocRecord:
    passes = [None if c is None else {"category": c, "reasoning": "r"} for c in categories]
    return DocRecord(doc_id, f"{doc_id}.pdf", reduce_passes("classifier", passes))


DOC1 = extract_doc(
    "expdoc_1",
    [
        {"total": 10, "line_items": ITEMS},
        {"total": 10, "line_items": ITEMS},
        {"total": 12, "line_items": ITEMS},
    ],
    prior=[{"total": 10, "line_items": ITEMS}] * 3,
)
DOC2 = extract_doc("expdoc_2", [{"total": 5, "line_items": ITEMS[:1]}] * 3)
MISSING = DocRecord("expdoc_3", "c.pdf", None)


@pytest.mark.parametrize(("scores", "expected"), [([], None), ([1.0, 0.5], 0.75), (iter([0.2]), 0.2)])
def test_run_score(scores: Any, expected: float | None) -> None:
    assert run_score(scores) == expected


def test_summary_extract_from_a_one_shot_iterator() -> None:
    def docs() -> Iterator[DocRecord]:
        yield from (DOC1, MISSING, DOC2)

    view = summary_view(
        experiment_id="exp_1",
        run_id="exprun_1",
        block_type="extract",
        block_execution_fingerprint="abcd",
        docs=docs(),
        total_document_count=3,
        prior_run_id="exprun_0",
        include_prior=True,
    )
    json.dumps(view)
    assert (view["kind"], view["view"], view["block_type"]) == ("summary", "summary", "extract")
    assert view["scored_document_count"] == 2 and view["total_document_count"] == 3
    doc1_score = (2 / 3 + 4) / 5
    assert view["documents"] == [
        {
            "id": "expdoc_1",
            "filename": "expdoc_1.pdf",
            "score": pytest.approx(doc1_score),
            "prior_score": 1.0,
        },
        {"id": "expdoc_2", "filename": "expdoc_2.pdf", "score": 1.0, "prior_score": None},
    ]
    assert view["score"] == pytest.approx((doc1_score + 1) / 2)
    assert view["prior_score"] == 1.0 and view["prior_run_id"] == "exprun_0"
    assert view["aggregate"] == {
        "likelihoods": {
            "total": pytest.approx((2 / 3 + 1) / 2),
            "line_items.*.sku": 1.0,
            "line_items.*.unit_price": 1.0,
        }
    }


def test_summary_without_prior_and_without_results() -> None:
    view = summary_view(
        experiment_id="exp_1",
        run_id="exprun_1",
        block_type="extract",
        block_execution_fingerprint=None,
        docs=iter([DOC1, MISSING]),
        total_document_count=2,
        prior_run_id="exprun_0",
        include_prior=False,
    )
    assert view["prior_score"] is None and view["prior_run_id"] is None
    assert view["documents"][0]["prior_score"] is None
    empty = summary_view(
        experiment_id="e",
        run_id="r",
        block_type="extract",
        block_execution_fingerprint=None,
        docs=iter([MISSING]),
        total_document_count=1,
        prior_run_id=None,
        include_prior=True,
    )
    assert empty["score"] is None and empty["scored_document_count"] == 0 and empty["documents"] == []


def test_summary_classifier_confusion() -> None:
    docs = [
        classifier_doc("d1", ["invoice", "invoice", "receipt"]),
        classifier_doc("d2", ["invoice", "invoice", "invoice"]),
        classifier_doc("d3", ["receipt", "receipt", None]),
    ]
    view = summary_view(
        experiment_id="e",
        run_id="r",
        block_type="classifier",
        block_execution_fingerprint=None,
        docs=iter(docs),
        total_document_count=3,
        prior_run_id=None,
        include_prior=True,
    )
    assert view["aggregate"]["diag"] == {"invoice": pytest.approx(5 / 6), "receipt": pytest.approx(2 / 3)}
    assert view["aggregate"]["flows"] == [{"source": "invoice", "target": "receipt", "score": pytest.approx(1 / 6)}]
    assert view["score"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_summary_split_confusion_is_per_page() -> None:
    record = reduce_passes(
        "split",
        [[{"name": "inv", "pages": [1, 2]}], [{"name": "inv", "pages": [1]}, {"name": "rec", "pages": [2]}]],
    )
    view = summary_view(
        experiment_id="e",
        run_id="r",
        block_type="split",
        block_execution_fingerprint=None,
        docs=iter([DocRecord("d", "d.pdf", record)]),
        total_document_count=1,
        prior_run_id=None,
        include_prior=False,
    )
    assert view["aggregate"] == {
        "diag": {"inv": 0.75},
        "flows": [{"source": "inv", "target": "rec", "score": 0.25}],
    }


def test_by_document_extract_sorted_with_prior() -> None:
    view = by_document_view(run_id="exprun_1", doc=DOC1, include_prior=True)
    assert (view["kind"], view["view"]) == ("by_document", "by_document")
    assert view["document"] == {"id": "expdoc_1", "filename": "expdoc_1.pdf"}
    assert view["prior_score"] == 1.0
    assert view["confusion"] is None
    assert view["targets"] == [
        {"path": "total", "score": pytest.approx(2 / 3), "prior_score": 1.0, "value": 10},
        {"path": "line_items.*.sku", "score": 1.0, "prior_score": 1.0, "value": ["A", "B"]},
        {"path": "line_items.*.unit_price", "score": 1.0, "prior_score": 1.0, "value": [1.0, 2.0]},
    ]
    no_prior = by_document_view(run_id="exprun_1", doc=DOC1, include_prior=False)
    assert no_prior["prior_score"] is None
    assert all(t["prior_score"] is None for t in no_prior["targets"])
    missing = by_document_view(run_id="exprun_1", doc=MISSING, include_prior=True)
    assert missing["score"] is None and missing["targets"] == []


def test_by_document_classifier_has_confusion() -> None:
    view = by_document_view(run_id="r", doc=classifier_doc("d1", ["a", "a", "b"]), include_prior=True)
    assert view["confusion"] == {
        "diag": {"a": pytest.approx(2 / 3)},
        "flows": [{"source": "a", "target": "b", "score": pytest.approx(THIRD)}],
    }
    assert view["targets"] == [{"path": "category", "score": pytest.approx(2 / 3), "prior_score": None, "value": "a"}]


def test_by_target_extract_with_prior_over_iterator() -> None:
    view = by_target_view(run_id="r", target="total", docs=iter([DOC1, MISSING, DOC2]), include_prior=True)
    assert (view["kind"], view["view"], view["target"]) == ("by_target", "by_target", "total")
    assert view["documents"] == [
        {
            "id": "expdoc_1",
            "filename": "expdoc_1.pdf",
            "score": pytest.approx(2 / 3),
            "prior_score": 1.0,
            "value": 10,
        },
        {"id": "expdoc_2", "filename": "expdoc_2.pdf", "score": 1.0, "prior_score": None, "value": 5},
    ]
    assert view["score"] == pytest.approx(5 / 6)
    assert view["prior_score"] == 1.0
    assert view["confusion"] is None
    concrete = by_target_view(run_id="r", target="line_items.1.sku", docs=[DOC1, DOC2], include_prior=False)
    assert [d["id"] for d in concrete["documents"]] == ["expdoc_1"]
    assert concrete["prior_score"] is None


def test_by_target_classifier_category_label() -> None:
    docs = [classifier_doc("d1", ["a", "a", "b"]), classifier_doc("d2", ["b", "b", "b"])]
    view = by_target_view(run_id="r", target="a", docs=docs, include_prior=True)
    assert [d["id"] for d in view["documents"]] == ["d1"]
    assert view["score"] == pytest.approx(2 / 3)
    assert view["confusion"] == {
        "self": pytest.approx(2 / 3),
        "flow_from": {},
        "flow_to": {"b": pytest.approx(THIRD)},
    }
    seen_from_b = by_target_view(run_id="r", target="b", docs=docs, include_prior=True)["confusion"]
    assert seen_from_b == {"self": 1.0, "flow_from": {"a": pytest.approx(THIRD)}, "flow_to": {}}


def test_by_target_split_subdocument() -> None:
    record = reduce_passes("split", [[{"name": "inv", "pages": [1, 2]}]] * 2 + [[{"name": "inv", "pages": [1]}]])
    view = by_target_view(run_id="r", target="inv", docs=[DocRecord("d", "d.pdf", record)], include_prior=True)
    assert view["documents"][0]["value"] == [1, 2]
    assert view["score"] == pytest.approx((1 + 2 / 3) / 2)
    assert view["confusion"]["self"] == pytest.approx((1 + 2 / 3) / 2)


def test_votes_view_wildcard_scalar_and_prior() -> None:
    view = votes_view(run_id="r", doc=DOC1, target="line_items.*.unit_price", include_prior=True)
    assert (view["kind"], view["view"]) == ("votes", "votes")
    assert view["document"] == {"id": "expdoc_1", "filename": "expdoc_1.pdf"}
    assert view["rows"] == [
        {
            "consensus": price,
            "votes": [price] * 3,
            "score": 1.0,
            "row_presence_score": 1.0,
            "present_voter_count": 3,
            "total_voter_count": 3,
        }
        for price in (1.0, 2.0)
    ]
    assert view["score"] == 1.0 and view["prior_score"] == 1.0
    total = votes_view(run_id="r", doc=DOC1, target="total", include_prior=False)
    assert [r["votes"] for r in total["rows"]] == [[10, 10, 12]]
    assert total["score"] == pytest.approx(2 / 3) and total["prior_score"] is None
    concrete = votes_view(run_id="r", doc=DOC1, target="line_items.0.sku", include_prior=True)
    assert [r["consensus"] for r in concrete["rows"]] == ["A"]
    unknown = votes_view(run_id="r", doc=DOC1, target="nope", include_prior=True)
    assert unknown["rows"] == [] and unknown["score"] is None


def test_votes_view_dissent_rows_are_listed() -> None:
    extra = {"sku": "Z", "unit_price": 9.0}
    doc = extract_doc("d", [{"line_items": ITEMS}, {"line_items": [*ITEMS, extra]}, {"line_items": ITEMS}])
    view = votes_view(run_id="r", doc=doc, target="line_items.*.sku", include_prior=False)
    assert [r["consensus"] for r in view["rows"]] == ["A", "B", None]
    assert view["rows"][2]["row_presence_score"] == pytest.approx(THIRD)
    assert view["score"] == 1.0  # the score covers the rows in the consensus


def test_votes_view_classifier_by_category() -> None:
    view = votes_view(run_id="r", doc=classifier_doc("d", ["a", "b", "a"]), target="a", include_prior=True)
    assert [r["votes"] for r in view["rows"]] == [["a", "b", "a"]]
    assert view["score"] == pytest.approx(2 / 3)


def test_a_digest_holds_what_the_summary_needs_of_a_record() -> None:
    """Extract: each target's score, as by_document computes it (mean of its consensus rows; dissent rows
    left out); classifier and split: their label units. Split pages in page order, not text order."""
    items3 = [*ITEMS, {"sku": "C", "unit_price": 3.0}]
    record = reduce_passes(
        "extract",
        [
            {"total": 10, "vendor": "Acme", "line_items": items3},
            {"total": 12, "vendor": "Acme", "line_items": ITEMS},
            {"total": 10, "vendor": "Acme Ltd", "line_items": [{"sku": "B", "unit_price": 2.5}]},
        ],
    )
    expected = {
        t["path"]: t["score"]
        for t in by_document_view(run_id="r", doc=DocRecord("d", "d", record), include_prior=False)["targets"]
    }
    assert digest(record) == {"targets": expected} and len(expected) >= 4
    assert digest(classifier_doc("c", ["inv", "inv", "po"]).record) == {"units": [["inv", ["inv", "inv", "po"]]]}  # type: ignore[arg-type]
    pages = {
        "10": {"consensus": "a", "votes": ["a", "b"]},
        "2": {"consensus": "b", "votes": ["b"]},
        "1": {"consensus": "c"},
    }
    split = {"block_type": "split", "rows": [], "labels": {"pages": pages}, "score": 1.0, "value": None}
    assert digest(split) == {"units": [["c", []], ["b", ["b"]], ["a", ["a", "b"]]]}  # type: ignore[arg-type]
