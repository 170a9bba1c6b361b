"""`orchestrator consensus A.json B.json C.json [--schema S.json] [--json]` against a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from retab.types.consensus import ReconciliationResult

from tests.cli.conftest import Server, cli

pytestmark = pytest.mark.e2e

ITEMS = [{"sku": "A1", "qty": 2, "price": 3.5}, {"sku": "B7", "qty": 1, "price": 10.0}]
PASSES: list[dict[str, Any]] = [
    {"invoice_number": "PO 123", "total": 217.02, "vendor": "ACME Inc", "line_items": ITEMS},
    {"invoice_number": "PO-123", "total": 210.09, "vendor": "Acme Inc.", "line_items": ITEMS[::-1]},
    {"invoice_number": "PO 123", "total": 217.02, "vendor": "Globex", "line_items": [ITEMS[0], {**ITEMS[1], "qty": 3}]},
]


def files(tmp_path: Path, objects: list[Any]) -> list[str]:
    out = []
    for i, obj in enumerate(objects):
        path = tmp_path / f"pass{i}.json"
        path.write_text(json.dumps(obj))
        out.append(str(path))
    return out


def test_consensus_prints_the_object_and_the_least_agreed_fields(bare_server: Server, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"total": {"type": "number"}}}))
    res = cli("consensus", *files(tmp_path, PASSES), "--schema", str(schema), server=bare_server)
    assert res.code == 0, res
    printed = res.out.split("Least agreed")[0]
    reconciled = json.loads(printed)
    assert reconciled["total"] == 217.02 and reconciled["invoice_number"] == "PO 123"
    assert next(iter(reconciled)) == "total", "the schema's order"
    table = res.out.split("Least agreed")[1]
    assert "vendor" in table and "0.67" in table and "2/3" in table and "line_items.1.qty" in table
    assert "invoice_number" not in table, "unanimous fields are not listed"

    as_json = cli("consensus", *files(tmp_path, PASSES), "--json", server=bare_server)
    assert as_json.code == 0, as_json
    parsed = ReconciliationResult.model_validate(as_json.json())
    assert parsed.consensus == reconciled


def test_consensus_unanimous_and_errors(bare_server: Server, tmp_path: Path) -> None:
    same = cli("consensus", *files(tmp_path, [{"a": 1}, {"a": 1}]), server=bare_server)
    assert same.code == 0 and "agree on every field" in same.out, same
    one = cli("consensus", *files(tmp_path, [{"a": 1}]), server=bare_server)
    assert one.code == 2 and "at least 2 inputs" in one.err, one
    arrays = cli("consensus", *files(tmp_path, [{"a": 1}, [1]]), server=bare_server)
    assert arrays.code == 2 and "inputs[1] is array" in arrays.err, arrays
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    broken = cli("consensus", str(bad), str(bad), server=bare_server)
    assert broken.code == 2 and "not valid JSON" in broken.err, broken
    missing = cli("consensus", str(tmp_path / "missing.json"), str(bad), server=bare_server)
    assert missing.code == 2 and "cannot read input" in missing.err, missing
