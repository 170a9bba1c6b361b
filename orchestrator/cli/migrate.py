"""`orchestrator migrate --from FILE.db --to postgresql://…`: move a one-machine SQLite store to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from orchestrator.errors import OrchestratorError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="copy a SQLite store into an empty PostgreSQL database",
        description="Copy every table of a SQLite store (workflows, evals, files, runs, results, feed events …)"
        " into an empty PostgreSQL database, keeping every id, then compare the row counts. Stop the servers"
        " using the file first, so that nothing written after the copy is left behind.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="FILE.db", help="the SQLite database file")
    p.add_argument("--to", dest="target", required=True, metavar="postgresql://…", help="an empty PostgreSQL database")


def migrate(args: argparse.Namespace) -> int:
    from orchestrator.store import is_postgres_url
    from orchestrator.store.postgres.copy import copy_sqlite
    from orchestrator.store.postgres.db import redact

    if not is_postgres_url(args.target):
        print("error: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        counts = asyncio.run(copy_sqlite(args.source, args.target, say=lambda line: print(line, flush=True)))
    except (OrchestratorError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(counts.values())
    print(f"copied {total} row(s) from {args.source} to {redact(args.target)} in {time.perf_counter() - t0:.1f} s;")
    print("row counts verified. Start the servers with --db pointing at the new database.")
    return 0
