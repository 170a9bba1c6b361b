"""`orchestrator cache stats` and `orchestrator cache clear [--model M] [--older-than 30d]` (over HTTP)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.client import Client
from orchestrator.cli.common import EXIT_OK, print_json, run_command


def _mb(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MB" if n >= 1 << 20 or n == 0 else f"{n / 1024:,.1f} KB"


def print_stats(cache: dict[str, Any], console: Console) -> None:
    state = "on" if cache.get("enabled") else "off (serve --no-cache)"
    rate = cache.get("hit_rate")
    console.print(f"Pass cache: {state}")
    console.print(f"  entries:  {cache['entries']:,}")
    console.print(f"  size:     {_mb(cache['bytes'])} of {_mb(cache['max_bytes'])}")
    looked = cache["hits"] + cache["misses"]
    shown = f"{rate:.1%} ({cache['hits']:,} of {looked:,} passes)" if rate is not None else "- (nothing looked up yet)"
    console.print(f"  hit rate: {shown}")
    if cache.get("oldest_entry_at"):
        console.print(f"  oldest:   {cache['oldest_entry_at']}")
    if cache.get("models"):
        table = Table(box=None, pad_edge=False)
        for col in ("MODEL", "ENGINE", "ENTRIES", "SIZE"):
            table.add_column(col, no_wrap=True)
        for m in cache["models"]:
            table.add_row(escape(str(m["model"])), str(m["engine"]), f"{m['entries']:,}", _mb(m["bytes"]))
        console.print(table)


async def _stats(client: Client, args: argparse.Namespace) -> int:
    cache = await client.request("GET", "/v1/cache")
    if args.json:
        print_json(cache)
    else:
        print_stats(cache, Console(soft_wrap=True, highlight=False))
    return EXIT_OK


async def _clear(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.model:
        body["model"] = args.model
    if args.older_than:
        body["older_than"] = args.older_than  # the server reads the duration (422 when it cannot)
    out = await client.request("POST", "/v1/cache/clear", json=body)
    if args.json:
        print_json(out)
        return EXIT_OK
    console = Console(soft_wrap=True, highlight=False)
    console.print(f"Removed {out['removed']:,} entries.")
    print_stats(out["cache"], console)
    return EXIT_OK


def cmd_cache_stats(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _stats(client, args))


def cmd_cache_clear(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _clear(client, args))
