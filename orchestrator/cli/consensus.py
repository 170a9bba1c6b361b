"""`orchestrator consensus A.json B.json … [--schema S.json] [--json]`: POST /v1/consensus, then print the
reconciled object and the fields the inputs agreed on least (the CLI only speaks HTTP)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from orchestrator.cli.client import Client
from orchestrator.cli.common import EXIT_OK, CliError, print_json, run_command
from orchestrator.cli.run import stdout_console


def _load(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"{what} {path} is not valid JSON: {exc}") from None


def least_agreed(fields: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Fields below unanimity, lowest likelihood first (then by path)."""
    below = [f for f in fields if f["supporting_input_count"] < f["total_input_count"]]
    return sorted(below, key=lambda f: (f["likelihood"], f["path"]))[: max(0, limit)]


async def _consensus(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"inputs": [_load(p, "input") for p in args.files]}
    if args.schema:
        body["json_schema"] = _load(args.schema, "schema")
    result = await client.request("POST", "/v1/consensus", json=body)
    if args.json:
        print_json(result)
        return EXIT_OK
    console = stdout_console()
    console.print(escape(json.dumps(result["consensus"], indent=2, ensure_ascii=False)))
    worst = least_agreed(result.get("fields") or [], args.least)
    if not worst:
        console.print(f"\nAll {len(args.files)} inputs agree on every field.")
        return EXIT_OK
    table = Table(box=None, pad_edge=False, title="Least agreed", title_justify="left")
    for col in ("FIELD", "AGREEMENT", "INPUTS", "CONSENSUS"):
        table.add_column(col, no_wrap=True)
    for f in worst:
        value = json.dumps(f["value"], ensure_ascii=False)
        agree = f"{f['supporting_input_count']}/{f['total_input_count']}"
        table.add_row(escape(f["path"]), f"{f['likelihood']:.2f}", agree, escape(value[:60]))
    console.print()
    console.print(table)
    return EXIT_OK


def cmd_consensus(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _consensus(client, args))
