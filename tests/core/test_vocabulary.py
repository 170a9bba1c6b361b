"""The shared vocabulary: the id-prefix → kind table, the lenient enum reading, the one canonical JSON."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.enums import lenient_enum
from orchestrator.ids import (
    CHECK_PREFIX,
    RESULT_PREFIX,
    RUN_KINDS,
    RUN_PREFIX,
    canonical_encode,
    canonical_json,
    fingerprint,
    new_id,
    new_run_id,
    run_kind_of,
)


@pytest.mark.parametrize(
    ("run_id", "kind"),
    [
        ("wfevalrun_1", "eval"),
        ("wftestrun_q1z2", "test"),
        ("exprun_abc", "experiment"),
        ("wfresult_1", None),  # a result, not a run
        ("wfevalrun", None),
        ("wfevalrunx_1", None),
        ("", None),
        ("exprun-1", None),
    ],
)
def test_run_kind_of(run_id: str, kind: str | None) -> None:
    assert run_kind_of(run_id) == kind


def test_prefix_tables() -> None:
    assert set(RUN_PREFIX) == set(RESULT_PREFIX) == set(RUN_KINDS)
    prefixes = [*RUN_PREFIX.values(), *RESULT_PREFIX.values(), *CHECK_PREFIX.values()]
    assert len(set(prefixes)) == len(prefixes) and not any("_" in p for p in prefixes)
    for kind in RUN_KINDS:
        assert run_kind_of(new_run_id(kind)) == kind
        assert run_kind_of(new_id(RESULT_PREFIX[kind])) is None


class Op(enum.Enum):
    GTE = "gte"


class Method(str, enum.Enum):  # noqa: UP042 (the SDK's enums are written so)
    EMBEDDINGS = "embeddings"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ExperimentRunMetricsView.BY_TARGET", "by_target"),
        ("LengthCompareConditionOp.GTE", "gte"),
        ("PaginationOrder.ASC", "asc"),
        ("GTE", "gte"),
        ("gte", "gte"),
        (" desc ", "desc"),
        ("a.b.C", "c"),
        (Op.GTE, "gte"),
        (Method.EMBEDDINGS, "embeddings"),
        ("", ""),
        (None, None),
        (3, 3),
        (["GTE"], ["GTE"]),
    ],
)
def test_lenient_enum(raw: Any, expected: Any) -> None:
    assert lenient_enum(raw) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": [1, 2.5, None, True], "a": "é", 1: "x"}, b'{"1":"x","a":"\xc3\xa9","b":[1,2.5,null,true]}'),
        ({"z": {"y": 1, "x": 2}}, b'{"z":{"x":2,"y":1}}'),
        ((1, "a"), b'[1,"a"]'),
        (1e16, b"1e+16"),
        (0.00001, b"0.00001"),
        (float("nan"), b"null"),
        (2**70, b"1180591620717411303424"),  # beyond 64 bits: the stdlib writes it, exactly
        ({"big": 2**70, "s": "é"}, b'{"big":1180591620717411303424,"s":"\\u00e9"}'),
        (b"raw", json.dumps(hashlib.sha256(b"raw").hexdigest()).encode()),  # bytes: their SHA-256
        (object, b"\"<class 'object'>\""),
    ],
)
def test_canonical_json(value: Any, expected: bytes) -> None:
    assert canonical_json(value) == expected


@pytest.mark.parametrize(("value", "by_orjson"), [({"a": 1}, True), (2**70, False), ("\ud800", False)])
def test_canonical_encode_says_who_wrote_it(value: Any, by_orjson: bool) -> None:
    blob, fast = canonical_encode(value)
    assert fast is by_orjson
    assert json.loads(blob) == value


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


def _old_vote_text(value: Any) -> str:
    """The consensus engine's former private copy (text, Python float formatting)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@given(JSON, JSON)
def test_canonical_json_groups_values_as_the_former_copies_did(a: Any, b: Any) -> None:
    """Consensus groups votes by canonical JSON: two JSON values fall in one group exactly when they did
    with the copy it replaced (the formatting of small floats differs, the equality classes do not)."""
    assert (canonical_json(a) == canonical_json(b)) is (_old_vote_text(a) == _old_vote_text(b))


@given(JSON)
def test_canonical_json_round_trips(value: Any) -> None:
    back = json.loads(canonical_json(value))
    assert _old_vote_text(back) == _old_vote_text(value)


def test_fingerprint_is_16_hex_of_canonical_json() -> None:
    assert fingerprint({"b": 1, "a": [math.pi]}) == fingerprint({"a": [math.pi], "b": 1})
    assert len(fingerprint(None)) == 16 and int(fingerprint(None), 16) >= 0
