"""Arguments of the client commands. Only argparse here: each command's module (rich, the HTTP client,
pydantic models) is imported once that command is chosen, so `orchestrator run …` starts fast in CI."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--url",
        default=None,
        help=f"server base URL (env ORCHESTRATOR_URL, then RETAB_API_BASE_URL; default {DEFAULT_URL})",
    )
    group.add_argument(
        "--api-key",
        default=None,
        help="API key (env ORCHESTRATOR_API_KEY, then RETAB_API_KEY, then the key file ./orchestrator.db.key)",
    )


def _cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="call every pass: neither reuse cached passes nor store new ones (for this run)",
    )


def _follow_args(p: argparse.ArgumentParser, handler: str) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the summary")
    p.add_argument("--timeout", type=float, default=None, help="give up following after this many seconds (exit 3)")
    p.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    add_connection_args(p)
    p.set_defaults(handler=handler)


def _run_parsers(sub: Any) -> None:
    run_p = sub.add_parser("run", help="start a run and follow it to the end", description="Start a run, follow it.")
    kinds = run_p.add_subparsers(dest="run_kind", required=True)
    for dialect in ("eval", "test"):
        p = kinds.add_parser(
            dialect,
            help=f"run the saved {dialect}s of a workflow (all, one, or one block's)",
            description=f"Run saved {dialect}s; exit 0 when all pass, 1 when any fails, is blocked or errs.",
        )
        p.add_argument("--workflow", required=True, help="workflow id or exact name")
        scope = p.add_mutually_exclusive_group()
        scope.add_argument(f"--{dialect}", dest="check", help=f"only this saved {dialect} (id or name)")
        scope.add_argument("--block", help=f"only the {dialect}s of this block (id or label)")
        p.add_argument("--n-consensus", type=int, choices=(3, 5, 7), default=None, help="passes per eval")
        _cache_arg(p)
        _follow_args(p, "orchestrator.cli.run:cmd_run_checks")
        p.set_defaults(dialect=dialect)
    p = kinds.add_parser(
        "experiment",
        help="run an experiment (consensus over its documents)",
        description="Run an experiment; exit 0 when every document completed (and the score ≥ --min-score).",
    )
    p.add_argument("--experiment", help="experiment id (or name, with --workflow)")
    p.add_argument("--workflow", help="workflow id or name: find the experiment by name, or its only experiment")
    p.add_argument("--min-score", type=float, default=None, help="exit 1 when the score is below this")
    _cache_arg(p)
    _follow_args(p, "orchestrator.cli.run:cmd_run_experiment")


def add_client_parsers(sub: Any) -> None:
    _run_parsers(sub)
    watch_p = sub.add_parser("watch", help="follow any run to its end", description="Follow a run by id.")
    watch_p.add_argument("run_id", help="wfevalrun_…, wftestrun_… or exprun_…")
    watch_p.add_argument("--min-score", type=float, default=None, help="experiments: exit 1 below this score")
    _follow_args(watch_p, "orchestrator.cli.run:cmd_watch")

    runs_p = sub.add_parser("runs", help="list recent runs", description="List recent eval, test and experiment runs.")
    runs_p.add_argument("--workflow", help="only runs of this workflow (id or name)")
    runs_p.add_argument("--kind", choices=("eval", "test", "experiment"), help="only this kind of run")
    runs_p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    runs_p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(runs_p)
    runs_p.set_defaults(handler="orchestrator.cli.run:cmd_runs")

    wf_p = sub.add_parser("workflows", help="list workflows with their evals and experiments")
    wf_p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(wf_p)
    wf_p.set_defaults(handler="orchestrator.cli.run:cmd_workflows")

    signin_p = sub.add_parser(
        "signin", help="print a fresh sign-in link for a browser (works once, expires; needs the API key)"
    )
    add_connection_args(signin_p)
    signin_p.set_defaults(handler="orchestrator.cli.run:cmd_signin")

    con = sub.add_parser(
        "consensus",
        help="reconcile JSON objects into one (POST /v1/consensus)",
        description="Reconcile several JSON objects (e.g. the outputs of repeated extractions) with the server's"
        " consensus engine; print the reconciled object and the fields the inputs agreed on least.",
    )
    con.add_argument("files", nargs="+", metavar="FILE.json", help="one JSON object per file (at least 2)")
    con.add_argument("--schema", help="a JSON schema file: its property order and types guide the vote")
    con.add_argument("--least", type=int, default=5, help="how many least-agreed fields to list (default 5)")
    con.add_argument("--json", action="store_true", help="print the server's ReconciliationResult as JSON")
    add_connection_args(con)
    con.set_defaults(handler="orchestrator.cli.consensus:cmd_consensus")

    cache = sub.add_parser(
        "cache",
        help="the pass cache: stats, or clear entries",
        description="The pass cache keeps every successful pass, keyed by its full request and pass index.",
    )
    what = cache.add_subparsers(dest="cache_command", required=True)
    stats = what.add_parser("stats", help="entries, size against the bound, hit rate, per model")
    stats.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(stats)
    stats.set_defaults(handler="orchestrator.cli.cache:cmd_cache_stats")
    clear = what.add_parser(
        "clear", help="delete entries: all, one model's, or older ones", description="Delete pass cache entries."
    )
    clear.add_argument("--model", help="only this model's entries (`*` and `?` wildcards: 'gpt-4o*')")
    clear.add_argument("--older-than", help="only entries created longer ago than this: 30d, 12h, 90m, 2w")
    clear.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(clear)
    clear.set_defaults(handler="orchestrator.cli.cache:cmd_cache_clear")

    imp = sub.add_parser(
        "import",
        help="create or update a workflow, its evals and experiments from a YAML file",
        description="Declarative import: re-importing an unchanged file changes nothing.",
    )
    imp.add_argument("file", help="the YAML file (document paths are relative to it)")
    imp.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    imp.add_argument("--prune", action="store_true", help="also delete evals, experiments and blocks not in the file")
    imp.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(imp)
    imp.set_defaults(handler="orchestrator.cli.importer:cmd_import")


def dispatch(args: argparse.Namespace) -> int:
    module, name = str(args.handler).split(":")
    code: int = getattr(importlib.import_module(module), name)(args)
    return code
