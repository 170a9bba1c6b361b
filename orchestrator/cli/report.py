"""The summary printed after a run: failures with actual vs expected, or an experiment's score.

`*_report` fetch and build a JSON-able dict (also the `--json` output); `print_*` render it for people.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape

from orchestrator.cli.client import Client, ClientError
from orchestrator.cli.common import EXIT_FAILED, EXIT_OK, list_all
from orchestrator.cli.follow import format_parts, run_kind, snapshot, status_of

LEAST_AGREED = 5


def _duration_ms(run: dict[str, Any]) -> int | None:
    timing = run.get("timing") or {}
    value = timing.get("duration_ms") if isinstance(timing, dict) else None
    return int(value) if isinstance(value, int | float) else None


async def _check_names(client: Client, dialect: str, workflow_id: str | None, ids: set[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    if workflow_id:
        try:
            for c in await list_all(client, f"/v1/workflows/{dialect}s", {"workflow_id": workflow_id}):
                names[c["id"]] = c.get("name") or ""
        except ClientError:
            names = {}
    for missing in ids - names.keys():
        try:
            names[missing] = (await client.request("GET", f"/v1/workflows/{dialect}s/{missing}")).get("name") or ""
        except ClientError:
            names[missing] = ""  # deleted since the run: show the id
    return names


def failure_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """A result row that is not a pass, flattened for display; None for a pass."""
    lifecycle = row.get("lifecycle") or {}
    status = lifecycle.get("status")
    verdict = row.get("verdict")
    if status == "completed" and verdict == "passed":
        return None
    ar = row.get("assertion_result") or {}
    fail = ar.get("failure") or {}
    check_id = row.get("eval_id") or row.get("test_id")
    message = fail.get("message") or lifecycle.get("message") or lifecycle.get("reason") or ""
    return {
        "result_id": row.get("id"),
        "eval_id": check_id,
        "name": "",
        "verdict": verdict if status == "completed" else None,
        "status": status,
        "condition_kind": ar.get("condition_kind"),
        "path": (fail.get("details") or {}).get("path"),
        "expected": ar.get("expected_value"),
        "actual": ar.get("actual_value"),
        "code": fail.get("code") or (row.get("error") or {}).get("error_code"),
        "message": message,
    }


async def check_run_report(client: Client, run: dict[str, Any]) -> dict[str, Any]:
    kind = run_kind(run)
    dialect = "test" if kind == "test" else "eval"
    rows = await list_all(client, f"/v1/workflows/{dialect}s/results", {"run_id": run["id"], "order": "asc"})
    failures = [f for f in (failure_of(r) for r in rows) if f is not None]
    names = await _check_names(client, dialect, run.get("workflow_id"), {f["eval_id"] for f in failures})
    for f in failures:
        f["name"] = names.get(f["eval_id"]) or f["eval_id"]
    snap = snapshot(run)
    status = status_of(run)
    ok = status == "completed" and not failures and snap.parts.get("passed", 0) == snap.total
    return {
        "run_id": run["id"],
        "kind": kind,
        "workflow_id": run.get("workflow_id"),
        "workflow_name": (run.get("workflow") or {}).get("name_at_run_time"),
        "status": status,
        "ok": ok,
        "total": snap.total,
        "counts": snap.parts,
        "duration_ms": _duration_ms(run),
        "usage": run.get("usage"),
        "failures": failures,
        "run": run,
    }


async def experiment_report(client: Client, run: dict[str, Any], min_score: float | None) -> dict[str, Any]:
    snap = snapshot(run)
    status = status_of(run)
    least: list[dict[str, Any]] = []
    note = None
    try:
        metrics = await client.request(
            "GET", "/v1/workflows/experiments/metrics", params={"run_id": run["id"], "view": "summary"}
        )
        likelihoods = ((metrics or {}).get("aggregate") or {}).get("likelihoods")
        if isinstance(likelihoods, dict):
            ranked = sorted((v, k) for k, v in likelihoods.items() if isinstance(v, int | float))
            least = [{"path": k, "likelihood": v} for v, k in ranked[:LEAST_AGREED] if v < 1]
        elif metrics and metrics.get("message"):
            note = str(metrics["message"])
    except ClientError as exc:
        note = f"metrics unavailable: {exc.message}"
    score = run.get("score")
    ok = status == "completed" and snap.parts.get("error", 0) == 0
    if ok and min_score is not None:
        ok = isinstance(score, int | float) and score >= min_score
    return {
        "run_id": run["id"],
        "kind": "experiment",
        "experiment_id": run.get("experiment_id"),
        "workflow_id": run.get("workflow_id"),
        "status": status,
        "ok": ok,
        "score": score,
        "min_score": min_score,
        "total": snap.total,
        "counts": snap.parts,
        "duration_ms": _duration_ms(run),
        "usage": run.get("usage"),
        "least_agreed": least,
        "note": note,
        "run": run,
    }


async def report_for(client: Client, run: dict[str, Any], min_score: float | None = None) -> dict[str, Any]:
    if run_kind(run) == "experiment":
        return await experiment_report(client, run, min_score)
    return await check_run_report(client, run)


def exit_code(report: dict[str, Any]) -> int:
    return EXIT_OK if report["ok"] else EXIT_FAILED


def short(value: Any, width: int = 100) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def _header(console: Console, report: dict[str, Any]) -> None:
    ms = report.get("duration_ms")
    took = f" in {ms / 1000:.1f}s" if isinstance(ms, int) else ""
    style = {"completed": "green", "error": "red", "cancelled": "yellow"}.get(report["status"], "")
    where = f' on "{escape(report["workflow_name"])}"' if report.get("workflow_name") else ""
    console.print(f"{report['kind'].capitalize()} run {report['run_id']}{where}: [{style}]{report['status']}[/]{took}")
    run = report.get("run") or {}
    if report["status"] == "error":
        console.print(f"  [red]{escape(str((run.get('lifecycle') or {}).get('message') or ''))}[/]")


def _cost(usd: Any) -> str:
    if not isinstance(usd, int | float):
        return "cost unknown (no price for the model in the models file)"
    return f"${usd:.4f}" if usd >= 0.0001 or usd == 0 else f"${usd:.7f}"


def usage_line(usage: Any) -> str | None:
    """Tokens and cost of the calls the run made, and what the pass cache saved it; None without usage."""
    if not isinstance(usage, dict) or "input_tokens" not in usage:
        return None
    estimated = " (estimated by the simulated engine)" if usage.get("estimated") else ""
    line = f"Usage: {usage['input_tokens']:,} in + {usage['output_tokens']:,} out tokens{estimated}"
    line += f", {_cost(usage.get('cost_usd'))} · {usage.get('engine_calls', 0):,} engine calls"
    if usage.get("failed_calls"):
        line += f" ({usage['failed_calls']:,} failed: no tokens reported, not priced)"
    hits = int(usage.get("cache_hits") or 0)
    if hits:
        saved = usage.get("saved") or {}
        line += f" · {hits:,} passes from the cache (saved {saved.get('total_tokens', 0):,} tokens"
        line += f", {_cost(saved.get('cost_usd'))})" if saved.get("cost_usd") is not None else ")"
    return line


def _usage(console: Console, report: dict[str, Any]) -> None:
    line = usage_line(report.get("usage"))
    if line:
        console.print(escape(line))


def print_check_report(report: dict[str, Any], console: Console) -> None:
    _header(console, report)
    noun = "tests" if report["kind"] == "test" else "evals"
    console.print(f"{report['total']} {noun}: {format_parts(report['counts'])}")
    _usage(console, report)
    if not report["failures"]:
        return
    console.print()
    console.print("[bold]Not passing:[/]")
    marks = {"failed": "[red]✗ failed[/]", "blocked": "[yellow]⊘ blocked[/]"}
    for f in report["failures"]:
        mark = marks.get(f["verdict"] or "", f"[red]! {f['status']}[/]")
        where = " · ".join(escape(str(p)) for p in (f["condition_kind"], f["path"], f["code"]) if p)
        console.print(f"  {mark}  [bold]{escape(f['name'])}[/]  [dim]{where}[/]")
        if f["verdict"] == "failed":
            console.print(f"      expected: {escape(short(f['expected']))}")
            console.print(f"      actual:   {escape(short(f['actual']))}")
        if f["message"]:
            console.print(f"      [dim]{escape(short(f['message'], 160))}[/]")


def print_experiment_report(report: dict[str, Any], console: Console) -> None:
    _header(console, report)
    console.print(f"{report['total']} documents: {format_parts(report['counts'])}")
    _usage(console, report)
    score = report["score"]
    if isinstance(score, int | float):
        bar = f"  (minimum {report['min_score']:g})" if report.get("min_score") is not None else ""
        console.print(f"Score: [bold]{score:.3f}[/]{bar}")
    else:
        console.print("Score: -")
    if report["least_agreed"]:
        console.print("Least agreed fields:")
        for item in report["least_agreed"]:
            console.print(f"  {item['likelihood']:.3f}  {escape(item['path'])}")
    elif report.get("note"):
        console.print(f"[dim]{escape(report['note'])}[/]")
    elif isinstance(score, int | float):
        console.print("Every field agreed across the passes.")


def print_report(report: dict[str, Any], console: Console) -> None:
    if report["kind"] == "experiment":
        print_experiment_report(report, console)
    else:
        print_check_report(report, console)
