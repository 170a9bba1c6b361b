"""Saved evals (SDK ≥0.0.156) and saved tests (older SDKs and the seed era): one table, two wire dialects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.ids import RunKind


@dataclass(frozen=True)
class Dialect:
    kind: Literal["eval", "test"]
    noun: str  # in messages: "Eval 123 not found"
    check_key: str  # the query parameter that filters runs by saved check
    run_kinds: tuple[RunKind, ...]  # the runs its routes read: the test routes read eval runs too


EVAL = Dialect("eval", "Eval", "eval_id", ("eval",))
TEST = Dialect("test", "Test", "test_id", ("test", "eval"))
