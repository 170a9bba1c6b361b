"""Command line: `serve`, `worker`, `migrate`, and the client commands `run`, `watch`, `runs`, `workflows`,
`import`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from orchestrator import settings as settings_mod
from orchestrator.cli import args as cli_args
from orchestrator.cli import migrate as cli_migrate
from orchestrator.errors import OrchestratorError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description="Local Retab-compatible workflow run engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="start the server", description="Start the HTTP server.")
    settings_mod.add_arguments(serve_p)
    worker_p = sub.add_parser(
        "worker",
        help="run a worker process over a store",
        description="Run children of any open run of the store given by --db (the server's settings apply:"
        " --models, --max-concurrency …). Stops on SIGTERM/SIGINT after committing what finished.",
    )
    settings_mod.add_arguments(worker_p)
    cli_migrate.add_parser(sub)
    cli_args.add_client_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from orchestrator.cli.serve import ensure_key, serve

        try:
            cfg = ensure_key(settings_mod.from_sources(args))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            asyncio.run(serve(cfg))
        except (ValueError, OrchestratorError, OSError) as exc:
            # Bad models file, a database from a newer version, a port in use: a message, not a traceback.
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "worker":
        from orchestrator.cli.worker import worker

        try:
            return worker(settings_mod.from_sources(args))
        except (ValueError, OrchestratorError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command == "migrate":
        return cli_migrate.migrate(args)
    return cli_args.dispatch(args)
