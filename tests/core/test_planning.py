"""Run plans and fingerprints (spec §3.6), as tables: no store, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core import planning

BLOCKS: dict[str, dict[str, Any]] = {
    "blk_a": {"id": "blk_a", "type": "extract", "config": {"model": "simulated", "n_consensus": 3}},
    "blk_b": {"id": "blk_b", "type": "classifier", "config": {"model": "simulated", "categories": [{"name": "x"}]}},
}


def check(cid: str, block: str = "blk_a", total: float = 1.0, kind: str = "exists") -> dict[str, Any]:
    return {
        "id": cid,
        "block_id": block,
        "source": {"type": "manual", "handle_inputs": {"in": {"type": "json", "data": {"total": total}}}},
        "assertion": {"target": {"output_handle_id": "out", "path": "total"}, "condition": {"kind": kind}},
    }


CHECKS = [check("c1"), check("c2", total=2.0), check("c3", block="blk_b")]


# Pinned: these fingerprints are stored in databases, so the canonical form under them must never move.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            planning.block_execution_fingerprint(
                "extract", {"model": "simulated", "json_schema": {"type": "object"}, "position_x": 3}
            ),
            "e07c81f4b1928772",
        ),
        (
            planning.handle_inputs_fingerprint(
                {"input-json-0": {"type": "json", "data": {"total": 1234.5, "vendor": "Zoë"}}}
            ),
            "26ff1467a3595b7f",
        ),
        (planning.validity_fingerprint("a", "b", {"condition": {"kind": "exists"}}), "853581481754d36f"),
        (planning.metrics_validity_fingerprint("a", "b"), "18948164fa1d1dc2"),
        (
            planning.draft_version_id(
                [{"id": "b1", "type": "extract", "config": {"model": "m"}}],
                [{"source_block": "s", "target_block": "b1"}],
            ),
            "draft_24bc7cf986bb8811",
        ),
    ],
)
def test_fingerprints_are_stable(value: str, expected: str) -> None:
    assert value == expected


@pytest.mark.parametrize(
    ("config_a", "config_b", "same"),
    [
        ({"model": "m"}, {"model": "m", "position_x": 10, "label": "moved"}, True),  # layout is not executable
        ({"model": "m", "n_consensus": 3}, {"n_consensus": 3, "model": "m"}, True),  # key order
        ({"model": "m"}, {"model": "n"}, False),
        ({"model": "m"}, None, False),
    ],
)
def test_block_fingerprint_ignores_layout(config_a: Any, config_b: Any, same: bool) -> None:
    a = planning.block_execution_fingerprint("extract", config_a)
    assert (a == planning.block_execution_fingerprint("extract", config_b)) is same


@pytest.mark.parametrize(
    ("scope", "target"),
    [
        (None, (None, None)),
        ({"type": "workflow"}, (None, None)),
        ({"type": "single", "eval_id": "c1"}, ("c1", None)),
        ({"type": "single", "test_id": "c2"}, ("c2", None)),
        ({"type": "single", "eval_id": "c1", "test_id": "c2"}, ("c1", None)),
        ({"type": "block", "block_id": "blk_a"}, (None, "blk_a")),
        ({"block_id": "blk_a"}, (None, None)),  # no type: the workflow
    ],
)
def test_scope_target(scope: dict[str, Any] | None, target: tuple[str | None, str | None]) -> None:
    assert planning.scope_target(scope) == target


@pytest.mark.parametrize(
    ("scope", "checks", "check_id", "block_id", "keys"),
    [
        (None, CHECKS, None, None, {"input_fingerprint", "blocks_fingerprint", "validity_fingerprint"}),
        (
            {"type": "block", "block_id": "blk_a"},
            CHECKS[:2],
            None,
            "blk_a",
            {"input_fingerprint", "block_execution_fingerprint", "validity_fingerprint"},
        ),
        (
            {"type": "single", "eval_id": "c3"},
            CHECKS[2:],
            "c3",
            "blk_b",  # a single check's run targets its block
            {"input_fingerprint", "block_execution_fingerprint", "validity_fingerprint"},
        ),
        ({"type": "block", "block_id": "blk_gone"}, [], None, "blk_gone", {"input_fingerprint"}),
    ],
)
def test_plan_check_run(
    scope: dict[str, Any] | None,
    checks: list[dict[str, Any]],
    check_id: str | None,
    block_id: str | None,
    keys: set[str],
) -> None:
    plan = planning.plan_check_run(scope, checks, BLOCKS)
    assert (plan.check_id, plan.block_id, set(plan.fingerprints)) == (check_id, block_id, keys)
    assert [(c["check_id"], c["block_id"], c["block_type"]) for c in plan.children] == [
        (c["id"], c["block_id"], BLOCKS[c["block_id"]]["type"]) for c in checks
    ]
    assert [c["handle_inputs"] for c in plan.children] == [c["source"]["handle_inputs"] for c in checks]


def _moved(what: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    checks = [dict(c) for c in CHECKS]
    blocks = dict(BLOCKS)
    if what == "config":
        blocks["blk_b"] = {**BLOCKS["blk_b"], "config": {"model": "other"}}
    elif what == "layout":
        blocks["blk_b"] = {**BLOCKS["blk_b"], "config": {**BLOCKS["blk_b"]["config"], "position_x": 99}}
    elif what == "inputs":
        checks[0] = check("c1", total=5.0)
    elif what == "assertion":
        checks[0] = check("c1", kind="not_exists")
    elif what == "removed":
        checks = checks[:2]
    return checks, blocks


@pytest.mark.parametrize(
    ("what", "inputs_same", "validity_same"),
    [
        ("nothing", True, True),
        ("layout", True, True),
        ("config", True, False),
        ("inputs", False, False),
        ("assertion", True, False),
        ("removed", False, False),
    ],
)
def test_workflow_run_fingerprints_follow_what_moved(what: str, inputs_same: bool, validity_same: bool) -> None:
    before = planning.plan_check_run(None, CHECKS, BLOCKS).fingerprints
    after = planning.plan_check_run(None, *_moved(what)).fingerprints
    assert (before["input_fingerprint"] == after["input_fingerprint"]) is inputs_same
    assert (before["validity_fingerprint"] == after["validity_fingerprint"]) is validity_same


@pytest.mark.parametrize(
    ("draft", "description", "expected_version"),
    [
        ("draft_24bc7cf986bb8811", "first", "ver_24bc7cf986bb8811"),
        ("draft_", "", "ver_"),
        ("custom", "x", "ver_custom"),  # a version id that is not a draft's is kept whole
    ],
)
def test_published_version(draft: str, description: str, expected_version: str) -> None:
    assert planning.published_version(draft, description, "2026-05-18T10:00:00.000Z") == {
        "version_id": expected_version,
        "published_at": "2026-05-18T10:00:00.000Z",
        "description": description,
    }


@pytest.mark.parametrize(
    ("config", "override", "n"),
    [
        (None, None, 1),
        ({"n_consensus": 5}, None, 5),
        ({"n_consensus": 5}, 3, 3),
        ({"n_consensus": "x"}, None, 1),
        ({"n_consensus": 99}, None, 15),
    ],
)
def test_effective_n(config: dict[str, Any] | None, override: int | None, n: int) -> None:
    assert planning.effective_n(config, override) == n
