"""What every client sub-command shares: where the server is, the key, exit codes, error reporting."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from orchestrator.cli.args import DEFAULT_URL
from orchestrator.cli.client import Client, ClientError

# Exit codes: CI scripts branch on them, so they are part of the interface.
EXIT_OK = 0
EXIT_FAILED = 1  # the run finished with failed/blocked evals, errors, cancellation or a low score
EXIT_USAGE = 2  # bad arguments, an invalid import file, or a 4xx answer from the server
EXIT_UNAVAILABLE = 3  # server unreachable, 5xx, or --timeout reached
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A message for the user (no traceback) and the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _first_key(raw: str) -> str:
    # ORCHESTRATOR_API_KEY may list several keys for the server; any one of them authenticates.
    return next((k.strip() for k in raw.split(",") if k.strip()), "")


def resolve_url(flag: str | None, environ: Mapping[str, str]) -> str:
    url = flag or environ.get("ORCHESTRATOR_URL") or environ.get("RETAB_API_BASE_URL") or DEFAULT_URL
    url = url.strip().rstrip("/")
    # The SDK's base URL has no /v1; tolerate users who paste the API root instead.
    return url.removesuffix("/v1")


def key_file_path(environ: Mapping[str, str], cwd: Path) -> Path:
    """Where `orchestrator serve` keeps the key it generated: beside its database."""
    db = environ.get("ORCHESTRATOR_DB") or "./orchestrator.db"
    if db.startswith(("postgresql://", "postgres://")):
        db = "./orchestrator.db"  # a PostgreSQL store has no key file: its nodes are given the key
    path = Path(db + ".key")
    return path if path.is_absolute() else cwd / path


def resolve_key(flag: str | None, environ: Mapping[str, str], cwd: Path) -> str:
    for candidate in (flag, environ.get("ORCHESTRATOR_API_KEY"), environ.get("RETAB_API_KEY")):
        if candidate and _first_key(candidate):
            return _first_key(candidate)
    path = key_file_path(environ, cwd)
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    raise CliError(
        "no API key: pass --api-key, set ORCHESTRATOR_API_KEY (or RETAB_API_KEY), "
        f"or run from the directory where `orchestrator serve` wrote {path.name}"
    )


def connect(args: argparse.Namespace) -> Client:
    env = os.environ
    return Client(resolve_url(args.url, env), resolve_key(args.api_key, env, Path.cwd()))


def describe_client_error(exc: ClientError, base_url: str) -> CliError:
    if exc.status == 0:
        return CliError(f"lost the connection to {base_url}: {exc.message}", EXIT_UNAVAILABLE)
    if exc.status == 401:
        return CliError(f"the server at {base_url} refused the API key ({exc.message})", EXIT_USAGE)
    if exc.status >= 500:
        return CliError(f"server error {exc.status} ({exc.code}): {exc.message}", EXIT_UNAVAILABLE)
    details = ""
    errors = exc.details.get("errors") if isinstance(exc.details, dict) else None
    if isinstance(errors, list) and len(errors) > 1:
        details = "".join(f"\n  {'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in errors[:10])
    return CliError(f"{exc.message or exc.code} ({exc.status} {exc.code}){details}", EXIT_USAGE)


def run_command(args: argparse.Namespace, body: Callable[[Client], Awaitable[int]]) -> int:
    """Open a client, run `body`, and turn every expected failure into a message and an exit code."""
    try:
        client = connect(args)
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code

    async def main() -> int:
        async with client:
            return await body(client)

    try:
        return asyncio.run(main())
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except ClientError as exc:
        err = describe_client_error(exc, client.base_url)
        print(f"error: {err.message}", file=sys.stderr)
        return err.code
    except TimeoutError:
        print(f"error: the server at {client.base_url} did not answer in time", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not is_transport_error(exc):
            raise
        print(f"error: cannot reach the server at {client.base_url}: {exc or type(exc).__name__}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def is_transport_error(exc: BaseException) -> bool:
    """Refused, reset, unknown host…: OSErrors and aiohttp's client errors (only the client imports aiohttp)."""
    return isinstance(exc, OSError) or any(c.__module__.startswith("aiohttp") for c in type(exc).__mro__)


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


async def list_all(
    client: Client, path: str, params: dict[str, Any] | None = None, *, limit: int = 100, most: int = 100_000
) -> list[dict[str, Any]]:
    """Every item of a cursor-paged list (`data` + `list_metadata.after`)."""
    out: list[dict[str, Any]] = []
    query: dict[str, Any] = {**(params or {}), "limit": limit}
    while len(out) < most:
        page = await client.request("GET", path, params=query)
        items = (page.get("data") or []) if isinstance(page, dict) else []
        out += items
        after = (page.get("list_metadata") or {}).get("after") if isinstance(page, dict) else None
        if not after or not items:
            break
        query["after"] = after
    return out[:most]


async def find_workflow(client: Client, ref: str) -> dict[str, Any]:
    """A workflow by id, or else by exact name (so `--workflow "Invoice demo"` works)."""
    try:
        wf: dict[str, Any] = await client.request("GET", f"/v1/workflows/{ref}")
        return wf
    except ClientError as exc:
        if exc.status != 404:
            raise
    named = [w for w in await list_all(client, "/v1/workflows") if w.get("name") == ref]
    if not named:
        raise CliError(f"no workflow with id or name {ref!r} (list them with `orchestrator workflows`)")
    if len(named) > 1:
        ids = ", ".join(w["id"] for w in named)
        raise CliError(f"several workflows are named {ref!r} ({ids}); pass the id")
    return named[0]
