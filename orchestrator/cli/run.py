"""`run eval|test|experiment`, `watch`, `runs` and `workflows`: create or find runs and follow them."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.client import Client, ClientError
from orchestrator.cli.common import (
    EXIT_OK,
    CliError,
    find_workflow,
    list_all,
    print_json,
    run_command,
)
from orchestrator.cli.follow import ProgressView, follow, format_parts, run_kind, snapshot, status_of
from orchestrator.cli.report import exit_code, print_report, report_for

RUN_LISTS = ("/v1/workflows/evals/runs", "/v1/workflows/tests/runs", "/v1/workflows/experiments/runs")


def stdout_console() -> Console:
    # soft_wrap: never break a failing eval's name or an id across lines in CI logs.
    console = Console(soft_wrap=True, highlight=False)
    if not console.is_terminal:
        console.width = 400  # tables in logs and pipes: no truncated ids
    return console


# -- shared: follow, then report
async def follow_and_report(client: Client, args: argparse.Namespace, run: dict[str, Any]) -> int:
    with ProgressView(run["id"], enabled=not args.json and not args.no_progress) as view:
        final = await follow(client, run["id"], view, args.timeout)
    report = await report_for(client, final, getattr(args, "min_score", None))
    if args.json:
        print_json(report)
    else:
        print_report(report, stdout_console())
    return exit_code(report)


def _pick(items: list[dict[str, Any]], ref: str, noun: str, *keys: str) -> dict[str, Any]:
    found = [i for i in items if i.get("id") == ref] or [i for i in items if any(i.get(k) == ref for k in keys)]
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(repr(i.get(keys[0]) or i["id"]) for i in items[:10]) or "none"
        raise CliError(f"no {noun} {ref!r} in this workflow (known: {known})")
    raise CliError(f"several {noun}s match {ref!r}; pass the id")


# -- run eval / run test
async def _run_checks(client: Client, args: argparse.Namespace) -> int:
    wf = await find_workflow(client, args.workflow)
    dialect = args.dialect
    body: dict[str, Any] = {"workflow_id": wf["id"]}
    if args.check:
        checks = await list_all(client, f"/v1/workflows/{dialect}s", {"workflow_id": wf["id"]})
        check = _pick(checks, args.check, dialect, "name")
        body["scope"] = {"type": "single", f"{dialect}_id": check["id"]}
    elif args.block:
        blocks = await list_all(client, "/v1/workflows/blocks", {"workflow_id": wf["id"]})
        block = _pick(blocks, args.block, "block", "label")
        body["scope"] = {"type": "block", "block_id": block["id"]}
    if args.n_consensus:
        body["n_consensus"] = args.n_consensus
    if not args.cache:
        body["cache"] = False
    run = await client.request("POST", f"/v1/workflows/{dialect}s/runs", json=body)
    return await follow_and_report(client, args, run)


def cmd_run_checks(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _run_checks(client, args))


# -- run experiment
async def find_experiment(client: Client, ref: str | None, workflow: str | None) -> dict[str, Any]:
    if ref:
        try:
            exp: dict[str, Any] = await client.request("GET", f"/v1/workflows/experiments/{ref}")
            return exp
        except ClientError as exc:
            if exc.status != 404 or not workflow:
                raise
    if not workflow:
        raise CliError("pass --experiment ID, or --workflow to pick the experiment of a workflow")
    wf = await find_workflow(client, workflow)
    exps = await list_all(client, "/v1/workflows/experiments", {"workflow_id": wf["id"]})
    if ref:
        return _pick(exps, ref, "experiment", "name")
    if len(exps) != 1:
        names = ", ".join(f"{e['name']!r} ({e['id']})" for e in exps) or "none"
        raise CliError(f"workflow {wf['name']!r} has {len(exps)} experiments ({names}); pass --experiment")
    return exps[0]


async def _run_experiment(client: Client, args: argparse.Namespace) -> int:
    exp = await find_experiment(client, args.experiment, args.workflow)
    body: dict[str, Any] = {"experiment_id": exp["id"], **({} if args.cache else {"cache": False})}
    run = await client.request("POST", "/v1/workflows/experiments/runs", json=body)
    return await follow_and_report(client, args, run)


def cmd_run_experiment(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _run_experiment(client, args))


# -- watch
async def _watch(client: Client, args: argparse.Namespace) -> int:
    try:
        client.run_path(args.run_id)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    return await follow_and_report(client, args, {"id": args.run_id})


def cmd_watch(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _watch(client, args))


# -- runs
def _created(run: dict[str, Any]) -> str:
    return str((run.get("timing") or {}).get("created_at") or run.get("created_at") or "")


async def recent_runs(client: Client, *, workflow_id: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit, **({"workflow_id": workflow_id} if workflow_id else {})}
    seen: dict[str, dict[str, Any]] = {}
    for path in RUN_LISTS:
        # The test-run list also holds eval runs (one table, two dialects): keep each run once.
        page = await client.request("GET", path, params=params)
        for run in page.get("data") or []:
            seen.setdefault(run["id"], run)
    runs = [r for r in seen.values() if kind is None or run_kind(r) == kind]
    return sorted(runs, key=_created, reverse=True)[:limit]


def _result_cell(run: dict[str, Any]) -> str:
    snap = snapshot(run)
    if run_kind(run) == "experiment":
        score = run.get("score")
        return f"score {score:.3f}" if isinstance(score, int | float) else "-"
    return format_parts({k: v for k, v in snap.parts.items() if k in ("passed", "failed", "blocked", "error")})


async def _runs(client: Client, args: argparse.Namespace) -> int:
    wf_id = (await find_workflow(client, args.workflow))["id"] if args.workflow else None
    runs = await recent_runs(client, workflow_id=wf_id, kind=args.kind, limit=max(1, args.limit))
    if args.json:
        print_json({"data": runs})
        return EXIT_OK
    console = stdout_console()
    if not runs:
        console.print("No runs yet.")
        return EXIT_OK
    table = Table(box=None, pad_edge=False)
    for col in ("RUN", "KIND", "WORKFLOW", "STATUS", "DONE", "RESULT", "CREATED"):
        table.add_column(col, no_wrap=True)
    for run in runs:
        snap = snapshot(run)
        table.add_row(
            run["id"],
            run_kind(run),
            escape(str((run.get("workflow") or {}).get("name_at_run_time") or run.get("workflow_id") or "")),
            status_of(run),
            f"{snap.done}/{snap.total}",
            _result_cell(run),
            _created(run)[:19].replace("T", " "),
        )
    console.print(table)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _runs(client, args))


# -- workflows
async def _workflows(client: Client, args: argparse.Namespace) -> int:
    out = []
    for wf in await list_all(client, "/v1/workflows"):
        evals = await list_all(client, "/v1/workflows/evals", {"workflow_id": wf["id"]})
        exps = await list_all(client, "/v1/workflows/experiments", {"workflow_id": wf["id"]})
        out.append(
            {
                "id": wf["id"],
                "name": wf.get("name"),
                "updated_at": wf.get("updated_at"),
                "eval_count": len(evals),
                "experiments": [{"id": e["id"], "name": e.get("name")} for e in exps],
            }
        )
    if args.json:
        print_json({"data": out})
        return EXIT_OK
    console = stdout_console()
    table = Table(box=None, pad_edge=False)
    for col in ("WORKFLOW", "NAME", "EVALS", "EXPERIMENTS"):
        table.add_column(col, no_wrap=True)
    for wf in out:
        names = ", ".join(f"{e['id']} ({e['name']})" for e in wf["experiments"]) or "-"
        table.add_row(wf["id"], escape(str(wf["name"])), str(wf["eval_count"]), escape(names))
    console.print(table if out else "No workflows yet.")
    return EXIT_OK


def cmd_workflows(args: argparse.Namespace) -> int:
    return run_command(args, lambda client: _workflows(client, args))


# -- signin
async def _signin(client: Client) -> int:
    link = await client.request("POST", "/v1/session/link", json={})
    minutes = float(link.get("expires_in_s") or 0) / 60
    print(link["url"])
    print(f"  (works once, within {minutes:g} min; keep it private)")
    return 0


def cmd_signin(args: argparse.Namespace) -> int:
    return run_command(args, _signin)
