"""One condition catalogue: the kinds the wire accepts, the kinds the evaluator can judge, the kinds the
README lists and the kinds the official SDK knows are the same set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core import assertions
from orchestrator.core.assertions.kinds import EVALUATORS
from orchestrator.wire.conditions import AssertionSpec
from tests.api.test_conditions_wire import VALID_CONDITIONS

README = Path(__file__).resolve().parents[2] / "README.md"
TARGET = {"output_handle_id": "output-json-0", "path": "a"}


def discriminated_kinds(spec: type[Any]) -> set[str]:
    """The `kind`s of an AssertionSpec's condition union, from its JSON schema's discriminator."""
    condition = spec.model_json_schema()["properties"]["condition"]
    assert condition["discriminator"]["propertyName"] == "kind"
    return set(condition["discriminator"]["mapping"])


def wire_kinds() -> set[str]:
    return discriminated_kinds(AssertionSpec)


def readme_kinds() -> list[str]:
    text = " ".join(README.read_text(encoding="utf-8").split())
    found = re.search(r"The conditions are those of the Retab API: (.*?)\.(?:\s|$)", text)
    assert found, "README.md no longer lists the conditions"
    return re.findall(r"`([a-z_]+)`", found.group(1))


def test_the_wire_accepts_exactly_what_the_evaluator_can_judge() -> None:
    assert wire_kinds() == set(EVALUATORS)


def test_the_readme_lists_every_condition_once() -> None:
    listed = readme_kinds()
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == wire_kinds()


def test_the_sdk_knows_the_same_conditions() -> None:
    evals = pytest.importorskip("retab.types.workflows.evals")
    assert discriminated_kinds(evals.AssertionSpec) == wire_kinds()


def test_the_wire_examples_cover_the_catalogue() -> None:
    assert {c["kind"] for c in VALID_CONDITIONS} == wire_kinds()


@pytest.mark.parametrize("condition", VALID_CONDITIONS, ids=lambda c: str(c["kind"]))
def test_every_accepted_condition_is_evaluated(condition: dict[str, Any]) -> None:
    """Behaviour, not the table: an accepted condition never comes back blocked as an unknown kind."""
    outcome = assertions.evaluate({"target": TARGET, "condition": condition}, {"output-json-0": {"a": "x"}})
    assert (outcome.failure or {}).get("code") != "invalid_condition", outcome.failure


def test_an_unknown_kind_is_refused_by_the_wire_and_blocked_by_the_evaluator() -> None:
    """The two checks above can fail: this is what they would see for a kind outside the catalogue."""
    outcome = assertions.evaluate({"target": TARGET, "condition": {"kind": "nope"}}, {"output-json-0": {"a": "x"}})
    assert outcome.outcome == "blocked" and outcome.failure is not None
    assert outcome.failure["code"] == "invalid_condition"
    assert "nope" not in wire_kinds()
