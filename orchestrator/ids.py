"""Prefixed ids and the id-prefix → kind table, canonical JSON and fingerprints, timestamps."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Ids need uniqueness, not secrecy (capabilities such as upload URLs are signed separately); one
# urandom seed instead of a syscall per id keeps the event loop from stalling under load.
_rng = random.Random(os.urandom(16))

RunKind = Literal["eval", "test", "experiment"]
RUN_KINDS: tuple[RunKind, ...] = ("eval", "test", "experiment")
# The one table of prefixes: a run's id says its kind, and so does each of its results.
RUN_PREFIX: Mapping[RunKind, str] = {"eval": "wfevalrun", "test": "wftestrun", "experiment": "exprun"}
RESULT_PREFIX: Mapping[RunKind, str] = {"eval": "wfresult", "test": "wftestresult", "experiment": "expresult"}
CHECK_PREFIX: Mapping[str, str] = {"eval": "wfnodeeval", "test": "wfnodetest"}


def new_id(prefix: str) -> str:
    """`prefix_` + a time-ordered, random-suffixed token (sortable within a millisecond's noise)."""
    ms = time.time_ns() // 1_000_000
    head = ""
    while ms:
        ms, r = divmod(ms, 36)
        head = _ALPHABET[r] + head
    return f"{prefix}_{head}{_rng.getrandbits(48):012x}"


def new_run_id(kind: RunKind) -> str:
    return new_id(RUN_PREFIX[kind])


def run_kind_of(run_id: str) -> RunKind | None:
    """`wfevalrun_…` → eval, `wftestrun_…` → test, `exprun_…` → experiment; None for anything else."""
    prefix, sep, _ = run_id.partition("_")
    for kind, known in RUN_PREFIX.items():
        if sep and prefix == known:
            return kind
    return None


_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, bytes):
        return hashlib.sha256(obj).hexdigest()
    return str(obj)


def canonical_encode(value: Any) -> tuple[bytes, bool]:
    """`canonical_json(value)`, and whether orjson wrote it. False when the stdlib did, for what orjson
    refuses (integers beyond 64 bits, lone surrogates): read those bytes back with `json.loads`, since
    `orjson.loads` would turn such integers into floats."""
    try:
        return orjson.dumps(value, default=_default, option=_JSON_OPTIONS), True
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_default, sort_keys=True, separators=(",", ":")).encode(), False


def canonical_json(value: Any) -> bytes:
    """The one canonical form (keys sorted, no spaces, UTF-8) that fingerprints, seeds and comparison
    keys are computed over. Objects JSON lacks are written as `str()` (bytes as their SHA-256)."""
    return canonical_encode(value)[0]


def fingerprint(value: Any) -> str:
    """First 16 hex chars of SHA-256 over canonical JSON: the shape the seeds show."""
    return hashlib.sha256(canonical_json(value)).hexdigest()[:16]


def now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    """UTC with milliseconds and a `Z`: `2026-01-05T10:00:00.123Z` (isoformat: ~3× cheaper than strftime)."""
    if dt is None:
        return None
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def now_iso() -> str:
    s = iso(now())
    assert s is not None
    return s


def parse_iso(value: str) -> datetime:
    """ISO-8601 with `T` or a space, `Z` or an offset, or a bare date (the SDK sends all three).

    An unencoded `+` in a query string arrives as a space: `2026-05-18 10:00:00 00:00`.
    """
    v = value.strip()
    if len(v) > 10 and v[10] == " ":
        v = v[:10] + "T" + v[11:]
    head, sep, tail = v.rpartition(" ")
    if sep and tail[:2].isdigit() and ":" in tail:
        v = f"{head}+{tail}"
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def ms_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    return int((parse_iso(end) - parse_iso(start)).total_seconds() * 1000)
