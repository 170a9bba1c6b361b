from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.consensus import BlockType, ConsensusRecord, reduce_passes
from orchestrator.core.consensus.align import align_lists, choose_key_field
from orchestrator.core.consensus.vote import strings_agree, vote_leaf, vote_numbers

THIRD = 1 / 3


def leaves(tree: Any) -> list[float]:
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in leaves(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in leaves(v)]
    return [tree]


def rows_by_path(record: ConsensusRecord) -> dict[str | None, dict[str, Any]]:
    return {r["path"]: dict(r) for r in record["rows"] if r["path"] is not None}


# --- scalar voting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("votes", "value", "likelihood"),
    [
        # Exact majority beats the 3 % tolerance (1234.56 vs 1243.56 differ by 0.73 %).
        ([1234.56, 1234.56, 1243.56], 1234.56, 2 / 3),
        # No exact majority: 100 and 102 cluster (2 %), 150 is out. The value is one a pass gave (never
        # their mean, 101): each was voted once, both are medoids of two, so the smaller.
        ([100, 102, 150], 100, 2 / 3),
        # All three within 3 % of each other: one cluster; its medoid 10.1 (was: the mean, also 10.1).
        ([10.0, 10.1, 10.2], 10.1, 1.0),
        # The example: the cluster {210.09, 210.53, 217.02 ×2} wins with 4 of 5 (227.55 is out);
        # its most frequent value 217.02, not the mean 213.67 that no pass produced.
        ([210.09, 210.53, 217.02, 227.55, 217.02], 217.02, 4 / 5),
        ([100, 103.5], 100, 0.5),  # 3.4 % apart: two singletons, the smaller centre wins the tie
        ([True, True, False], True, 2 / 3),
        ([True, None, None], None, 2 / 3),  # None is a voter and wins when strictly larger
        ([True, None, False], False, THIRD),  # bool tie → False (order-free), None does not win a tie
        ([True, True, None], True, 2 / 3),
        ([5, None], 5, 0.5),  # number tied with None → the number
        (["ACME Inc", "Acme Inc.", "ACME INC"], "ACME Inc", 1.0),
        (["Invoice 2024-01", "invoice 2024 01", "Receipt"], "Invoice 2024-01", 2 / 3),
        (["alpha beta", "beta alpha", "gamma"], "alpha beta", 2 / 3),  # token-sorted view
        (["Jonathan Smith", "Jonathon Smith", "Jane Doe"], "Jonathan Smith", 2 / 3),  # Levenshtein ≥ 0.9
        ([1, "1", 1], 1, 2 / 3),  # mixed types: canonical JSON groups
        ([None, None, None], None, 1.0),
    ],
)
def test_leaf_votes(votes: list[Any], value: Any, likelihood: float) -> None:
    record = reduce_passes("extract", [{"f": v} for v in votes])
    assert record["value"] == {"f": value}
    assert type(record["value"]["f"]) is type(value)
    assert record["likelihoods"]["f"] == pytest.approx(likelihood)
    assert record["score"] == pytest.approx(likelihood)


def test_number_exact_value_is_kept_and_int_members_stay_int() -> None:
    assert vote_numbers([3, 3, 3.0]) == (3.0, 3)
    assert vote_numbers([7, 7]) == (7, 2)
    assert vote_numbers([0.1, 0.1, 0.1]) == (0.1, 3)


@pytest.mark.parametrize(
    ("votes", "value", "support"),
    [
        ([210.09, 210.53, 217.02, 227.55, 217.02], 217.02, 4),  # most frequent value of the winning cluster
        ([210.09, 210.53, 217.02, 227.55], 210.53, 3),  # all once: the medoid of {210.09, 210.53, 217.02}
        ([100, 102, 150], 100, 2),  # medoids tie: the smaller
        ([1000, 1010, 1010, 1020, 1020, 5], 1010, 5),  # most frequent tie (1010, 1020): the medoid
        ([99.5, 100, 100.5], 100, 3),
        ([7, 7.0, 7.1], 7.0, 2),  # an exact majority (7 and 7.0 are one value) wins as is, with its own support
        ([1, 2, 3], 1, 1),  # three singletons: smallest centre wins, value voted by a pass
    ],
)
def test_numeric_consensus_is_a_value_some_pass_gave(votes: list[float], value: float, support: int) -> None:
    got, got_support = vote_numbers(votes)
    assert (got, got_support) == (value, support)
    assert any(got == v for v in votes), "a consensus no voter produced"


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        ("ACME Inc", "Acme Inc.", True),  # case-folded / punctuation-free views
        ("PO 123", "PO-123", True),  # digits-only and letters-only views (spec §4.3)
        ("PO 123", "po123", True),
        ("(555) 123-4567", "555.123.4567", True),
        ("A.C.M.E.", "acme", True),
        ("alpha beta", "beta alpha", True),  # tokens sorted
        ("Jonathan Smith", "Jonathon Smith", True),  # Levenshtein ≥ 0.9 on words
        ("PO 123", "SO 123", False),  # the letters differ
        ("PO 123", "PO 124", False),  # the digits differ
        ("Invoice 1001", "Invoice 1002", False),  # Levenshtein-close, but other digits: another invoice
        ("2026-01-05", "2026-01-06", False),
        ("!!", "??", False),  # no letter or digit: only exact equality counts
        ("Globex", "Initech", False),
    ],
)
def test_strings_agree_views(a: str, b: str, agree: bool) -> None:
    assert strings_agree(a, b) is agree
    assert strings_agree(b, a) is agree


def test_string_ties_are_order_free() -> None:
    assert vote_leaf(["b", "a"]) == ("a", 1)  # tie → lexicographic, never pass order
    assert vote_leaf(["PO-123", "PO 123", "SO 123"]) == ("PO 123", 2)


# --- lists and alignment ----------------------------------------------------------------------------

ITEMS = [
    {"description": "Widget", "quantity": 2, "unit_price": 3.5},
    {"description": "Gadget", "quantity": 1, "unit_price": 10.0},
    {"description": "Sprocket", "quantity": 7, "unit_price": 0.25},
]


def test_line_items_in_different_orders_align() -> None:
    passes = [
        {"line_items": ITEMS},
        {"line_items": ITEMS[::-1]},
        {"line_items": [ITEMS[1], ITEMS[0], ITEMS[2]]},
    ]
    record = reduce_passes("extract", passes)
    # Output order = median (then mean) position: Gadget (1, 0.67), Widget (1, 1), Sprocket (2, 1.33).
    assert record["value"] == {"line_items": [ITEMS[1], ITEMS[0], ITEMS[2]]}
    assert set(leaves(record["likelihoods"])) == {1.0}
    assert record["score"] == 1.0
    row = rows_by_path(record)["line_items.2.unit_price"]
    assert row["target"] == "line_items.*.unit_price"
    assert row["votes"] == [0.25, 0.25, 0.25]
    majority_order = reduce_passes("extract", [passes[0], passes[1], passes[0]])
    assert majority_order["value"] == {"line_items": ITEMS}


def test_item_missing_in_one_pass_has_presence_two_thirds() -> None:
    passes = [
        {"line_items": ITEMS},
        {"line_items": ITEMS[:2]},
        {"line_items": [ITEMS[1], ITEMS[0], ITEMS[2]]},
    ]
    record = reduce_passes("extract", passes)
    assert record["value"] == {"line_items": ITEMS}
    row = rows_by_path(record)["line_items.2.description"]
    assert row["votes"] == ["Sprocket", None, "Sprocket"]
    assert row["row_presence_score"] == pytest.approx(2 / 3)
    assert (row["present_voter_count"], row["total_voter_count"]) == (2, 3)
    assert row["score"] == pytest.approx(2 / 3)
    assert record["likelihoods"]["line_items"][0] == {"description": 1.0, "quantity": 1.0, "unit_price": 1.0}


def test_extra_item_in_one_pass_becomes_dissent_rows() -> None:
    extra = {"description": "Bolt", "quantity": 100, "unit_price": 0.01}
    passes = [{"line_items": ITEMS[:2]}, {"line_items": [*ITEMS[:2], extra]}, {"line_items": ITEMS[:2]}]
    record = reduce_passes("extract", passes)
    assert record["value"] == {"line_items": ITEMS[:2]}
    assert record["score"] == 1.0
    dissent = [r for r in record["rows"] if r["path"] is None]
    assert {r["target"] for r in dissent} == {f"line_items.*.{k}" for k in extra}
    for r in dissent:
        assert r["consensus"] is None
        assert r["row_presence_score"] == pytest.approx(THIRD)
        assert r["votes"][0] is None and r["votes"][2] is None
        assert r["score"] == pytest.approx(2 / 3)


def test_fuzzy_key_and_similarity_pairing() -> None:
    a = [
        {"sku": "A-1", "name": "Red chair", "price": 10.0},
        {"sku": "B-2", "name": "Blue desk", "price": 99.0},
    ]
    b = [
        {"sku": "b2", "name": "Blue desk, oak", "price": 99.5},
        {"sku": "a1", "name": "Red chair", "price": 10.0},
    ]
    assert choose_key_field([a, b]) == "sku"
    assert sorted(map(tuple, align_lists([a, b]))) == [(0, 1), (1, 0)]
    # No key overlap at all → whole-item similarity still pairs them.
    c = [{"id": "x", "name": "Blue desk", "price": 99.0}, {"id": "y", "name": "Red chair", "price": 10.0}]
    d = [{"id": "q", "name": "Red chair", "price": 10.0}, {"id": "r", "name": "Blue desk", "price": 99.0}]
    assert sorted(map(tuple, align_lists([c, d]))) == [(0, 1), (1, 0)]


def test_scalar_lists_vote_as_multisets() -> None:
    passes = [{"tags": ["urgent", "paid"]}, {"tags": ["Paid", "urgent"]}, {"tags": ["urgent"]}]
    record = reduce_passes("extract", passes)
    assert record["value"] == {"tags": ["urgent", "Paid"]}  # medoid tie → lexicographic
    assert record["likelihoods"] == {"tags": [1.0, pytest.approx(2 / 3)]}


def test_nested_object_and_schema_key_order() -> None:
    schema = {
        "type": "object",
        "properties": {"b": {}, "a": {"type": "object", "properties": {"z": {}, "y": {}}}},
    }
    passes = [{"a": {"y": 1, "z": 2}, "b": "x"}, {"a": {"y": 1, "z": 2}, "b": "x"}, None]
    record = reduce_passes("extract", passes, schema=schema)
    assert list(record["value"]) == ["b", "a"]
    assert list(record["value"]["a"]) == ["z", "y"]
    assert record["n_failed"] == 1
    assert leaves(record["likelihoods"]) == [pytest.approx(2 / 3)] * 3
    assert rows_by_path(record)["a.y"]["votes"] == [1, 1, None]


def test_object_outvoted_by_null_is_voted_whole() -> None:
    record = reduce_passes("extract", [{"addr": {"city": "Paris"}}, {"addr": None}, {"addr": None}])
    assert record["value"] == {"addr": None}
    assert record["likelihoods"] == {"addr": pytest.approx(2 / 3)}


def test_all_passes_failed() -> None:
    block_types: tuple[BlockType, ...] = ("extract", "classifier", "split")
    for block_type in block_types:
        record = reduce_passes(block_type, [None, None, None])
        assert record["value"] is None
        assert record["score"] == 0.0
        assert (record["n_voters"], record["n_failed"]) == (3, 3)
        json.dumps(record)


def test_one_pass_out_of_three_succeeds() -> None:
    record = reduce_passes("extract", [None, {"a": 1, "b": [1, 2]}, None])
    assert record["value"] == {"a": 1, "b": [1, 2]}
    assert leaves(record["likelihoods"]) == [pytest.approx(THIRD)] * 3


# --- classifier -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("categories", "winner", "share", "margin"),
    [
        (["invoice", "invoice", "receipt"], "invoice", 2 / 3, THIRD),
        (["receipt", "invoice"], "invoice", 0.5, 0.0),  # tie → lexicographically smallest
        (["b", "a", None, "c"], "a", 0.25, 0.0),
        (["x", None, None], "x", THIRD, THIRD),
    ],
)
def test_classifier(categories: list[str | None], winner: str, share: float, margin: float) -> None:
    passes = [None if c is None else {"category": c, "reasoning": f"because {c}"} for c in categories]
    record = reduce_passes("classifier", passes)
    assert record["value"] == {"category": winner, "reasoning": f"because {winner}"}
    assert record["likelihoods"] == pytest.approx(share)
    assert record["score"] == pytest.approx(share)
    assert record["classifier_margin"] == pytest.approx(margin)
    assert record["labels"] == {"consensus": winner, "votes": categories}
    (row,) = record["rows"]
    assert (row["target"], row["consensus"], row["votes"]) == ("category", winner, categories)


# --- split ------------------------------------------------------------------------------------------


def test_split_per_page_majority() -> None:
    passes = [
        [{"name": "invoice", "pages": [1, 2]}, {"name": "receipt", "pages": [3]}],
        [{"name": "invoice", "pages": [1]}, {"name": "receipt", "pages": [2, 3]}],
        [{"name": "invoice", "pages": [1, 2, 3]}],
    ]
    record = reduce_passes("split", passes)
    assert record["value"] == [{"name": "invoice", "pages": [1, 2]}, {"name": "receipt", "pages": [3]}]
    assert record["likelihoods"] == [
        {"name": 1.0, "pages": [1.0, pytest.approx(2 / 3)]},
        {"name": pytest.approx(2 / 3), "pages": [pytest.approx(2 / 3)]},
    ]
    assert record["score"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert record["labels"]["pages"]["2"] == {
        "consensus": "invoice",
        "votes": ["invoice", "receipt", "invoice"],
    }
    rows = {r["target"]: r for r in record["rows"]}
    assert rows["receipt"]["votes"] == [[3], [2, 3], None]
    assert rows["receipt"]["row_presence_score"] == pytest.approx(2 / 3)


def test_split_page_count_bounds_pages_and_tie_breaks_by_name() -> None:
    passes = [[{"name": "b", "pages": [1, 2, 9]}], [{"name": "a", "pages": [1, 2]}], None]
    record = reduce_passes("split", passes, page_count=3)
    assert record["value"] == [{"name": "a", "pages": [1, 2]}]
    assert record["n_failed"] == 1
    assert len(record["labels"]["pages"]) == 3
    assert record["labels"]["pages"]["3"]["consensus"] is None
    dissent = [r for r in record["rows"] if r["path"] is None]
    assert [(r["target"], r["votes"]) for r in dissent] == [("b", [[1, 2], None, None])]


# --- properties -------------------------------------------------------------------------------------

_strings = st.sampled_from(["ACME Inc", "Acme Inc.", "Globex", "Globex Corp", "Initech", "", "x", "b7"])
_numbers = st.one_of(
    st.sampled_from([0, 1, 2, 100, 101, 103, 1234.56, 1243.56, -5, 2.5, 2.55]),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
_leaf = st.one_of(st.none(), st.booleans(), _numbers, _strings)
_item = st.fixed_dictionaries(
    {"sku": st.one_of(st.none(), st.sampled_from(["A1", "A2", "B7", "b7", "C3"])), "price": _numbers},
    optional={"qty": st.one_of(st.none(), st.integers(0, 3)), "note": _leaf},
)
_doc = st.fixed_dictionaries(
    {
        "vendor": _leaf,
        "total": st.one_of(st.none(), _numbers),
        "tags": st.lists(_strings, max_size=3),
        "line_items": st.lists(_item, max_size=4),
    },
    optional={
        "paid": st.one_of(st.none(), st.booleans()),
        "address": st.one_of(st.none(), st.fixed_dictionaries({"city": _strings, "zip": st.integers(0, 5)})),
        "mixed": st.lists(_leaf, max_size=3),
    },
)
_classification = st.one_of(
    st.none(), st.fixed_dictionaries({"category": st.sampled_from("abc"), "reasoning": _strings})
)
_split = st.one_of(
    st.none(),
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["inv", "rec", "memo"]),
                "pages": st.lists(st.integers(1, 5), max_size=4),
            }
        ),
        max_size=3,
    ),
)
_cases = st.one_of(
    st.tuples(st.just("extract"), st.lists(st.one_of(st.none(), _doc), min_size=1, max_size=5)),
    st.tuples(st.just("classifier"), st.lists(_classification, min_size=1, max_size=5)),
    st.tuples(st.just("split"), st.lists(_split, min_size=1, max_size=5)),
)
_fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _core(record: ConsensusRecord) -> tuple[Any, Any, float, str]:
    return (
        record["value"],
        record["likelihoods"],
        record["score"],
        json.dumps(record["value"], sort_keys=True),
    )


@_fast
@given(case=_cases, data=st.data())
def test_permutation_invariance(case: tuple[Any, list[Any]], data: st.DataObject) -> None:
    block_type, passes = case
    order = data.draw(st.permutations(range(len(passes))))
    base = reduce_passes(block_type, passes)
    permuted = reduce_passes(block_type, [passes[i] for i in order])
    assert _core(base) == _core(permuted)
    json.dumps(base)
    assert 0.0 <= base["score"] <= 1.0


@_fast
@given(case=_cases, n=st.integers(1, 5))
def test_unanimous_passes_agree_fully(case: tuple[Any, list[Any]], n: int) -> None:
    block_type, passes = case
    only = next((p for p in passes if p is not None), None)
    if only is None:
        return
    record = reduce_passes(block_type, [only] * n)
    assert record["score"] == 1.0
    assert all(r["score"] == 1.0 for r in record["rows"] if r["path"] is not None)
    if block_type == "extract":
        assert all(x == 1.0 for x in leaves(record["likelihoods"]))
        assert record["value"] == only
    elif block_type == "split":
        assert all(x == 1.0 for x in leaves(record["likelihoods"]))


@_fast
@given(case=_cases)
def test_single_pass_has_full_likelihood(case: tuple[Any, list[Any]]) -> None:
    block_type, passes = case
    record = reduce_passes(block_type, passes[:1])
    if passes[0] is None:
        assert record["score"] == 0.0 and record["value"] is None
        return
    assert record["score"] == 1.0
    assert all(x == 1.0 for x in leaves(record["likelihoods"]))
    if block_type == "extract":
        assert record["value"] == passes[0]


@st.composite
def _perturbed_passes(draw: st.DrawFn) -> list[Any]:
    """Passes that mostly agree: shuffled, dropped or slightly changed line items of one base."""
    items = draw(st.lists(_item, min_size=1, max_size=5))
    passes: list[Any] = []
    for _ in range(draw(st.integers(2, 5))):
        mine: list[Any] = list(draw(st.permutations(items)))
        drop, change = draw(st.booleans()), draw(st.booleans())
        if mine and drop:
            mine.pop(draw(st.integers(0, len(mine) - 1)))
        if mine and change:
            i = draw(st.integers(0, len(mine) - 1))
            mine[i] = {**mine[i], "price": draw(_numbers)}
        passes.append(draw(st.one_of(st.just({"line_items": mine}), st.none())))
    return passes


@_fast
@given(passes=_perturbed_passes(), data=st.data())
def test_permutation_invariance_of_aligned_lists(passes: list[Any], data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(len(passes))))
    assert _core(reduce_passes("extract", passes)) == _core(reduce_passes("extract", [passes[i] for i in order]))


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [1, 0, 2, 3], [3, 2, 1, 0]])
def test_zero_and_negative_zero_elect_the_same_value_in_any_order(order: list[int]) -> None:
    """Found by hypothesis: 0 and -0.0 are one exact value, and the first pass must not pick its sign."""
    passes = [{"price": 0}, {"price": -0.0}, {"price": -0.0}, {"price": -0.0}]
    value = reduce_passes("extract", [passes[i] for i in order])["value"]["price"]
    assert value == 0.0 and math.copysign(1.0, value) == 1.0
