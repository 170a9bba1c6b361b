"""Prefixed ids, canonical-JSON fingerprints and timestamps."""

from __future__ import annotations

import hashlib
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

import orjson

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Ids need uniqueness, not secrecy (capabilities such as upload URLs are signed separately); one
# urandom seed instead of a syscall per id keeps the event loop from stalling under load.
_rng = random.Random(os.urandom(16))


def new_id(prefix: str) -> str:
    """`prefix_` + a time-ordered, random-suffixed token (sortable within a millisecond's noise)."""
    ms = time.time_ns() // 1_000_000
    head = ""
    while ms:
        ms, r = divmod(ms, 36)
        head = _ALPHABET[r] + head
    return f"{prefix}_{head}{_rng.getrandbits(48):012x}"


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def fingerprint(value: Any) -> str:
    """First 16 hex chars of SHA-256 over canonical JSON: the shape the seeds show."""
    return hashlib.sha256(canonical_json(value)).hexdigest()[:16]


def now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
