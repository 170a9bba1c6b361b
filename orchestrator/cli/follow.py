"""Follow a run's live feed to its end, drawing a `rich` progress bar (counts, rate, ETA) on stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn

from orchestrator.cli.client import Client, ClientError
from orchestrator.cli.common import EXIT_UNAVAILABLE, CliError
from orchestrator.core.lifecycle import TERMINAL
from orchestrator.ids import run_kind_of

POLL_S = 0.25  # only when the server has no live feed (e.g. a remote API without /events)


def run_kind(run: dict[str, Any]) -> str:
    kind = run_kind_of(str(run.get("id", "")))
    if kind == "experiment" or run.get("object") == "experiment_run":
        return "experiment"
    if kind == "test" or run.get("object") == "workflow_test_run":
        return "test"
    return "eval"


def status_of(run: dict[str, Any]) -> str:
    lifecycle = run.get("lifecycle")
    return str((lifecycle or {}).get("status") if isinstance(lifecycle, dict) else run.get("status") or "pending")


@dataclass
class Snapshot:
    """How far a run is, in units the progress bar shows (evals/tests or documents)."""

    total: int
    done: int
    status: str
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def snapshot(run: dict[str, Any]) -> Snapshot:
    counts: dict[str, Any] = run["counts"] if isinstance(run.get("counts"), dict) else {}
    lc = counts.get("lifecycle_counts") or {}
    status = status_of(run)
    if run_kind(run) == "experiment":
        total = int(run.get("total_document_count") or run.get("document_count") or 0)
        completed = int(run.get("completed_document_count") or 0)
        errors = int(run.get("error_count") or 0)
        cancelled = int(run.get("cancelled_document_count") or lc.get("cancelled") or 0)
        parts = {"completed": completed, "error": errors, "cancelled": cancelled}
        return Snapshot(total, completed + errors + cancelled, status, parts)
    total = int(run.get("total_evals") or run.get("total_tests") or 0)
    oc = counts.get("outcome") or {}
    parts = {
        "passed": int(oc.get("passed") or 0),
        "failed": int(oc.get("failed") or 0),
        "blocked": int(oc.get("blocked") or 0),
        "error": int(lc.get("error") or 0),
        "cancelled": int(lc.get("cancelled") or 0),
    }
    done = int(lc.get("completed") or 0) + parts["error"] + parts["cancelled"]
    return Snapshot(total, done, status, parts)


def rate_eta(done_at_start: int, done: int, elapsed_s: float, total: int) -> tuple[float | None, float | None]:
    """Items per second since we started watching, and seconds left at that rate (None: unknown)."""
    if elapsed_s <= 0 or done <= done_at_start:
        return None, None
    rate = (done - done_at_start) / elapsed_s
    return rate, max(0.0, (total - done) / rate)


def format_parts(parts: dict[str, int], *, color: bool = True) -> str:
    styles = {"passed": "green", "completed": "green", "failed": "red", "blocked": "yellow", "error": "red"}
    shown = [(k, v) for k, v in parts.items() if v or k in ("passed", "failed", "completed")]
    if not color:
        return ", ".join(f"{v} {k}" for k, v in shown)
    return ", ".join(f"[{styles.get(k, 'dim')}]{v} {k}[/]" for k, v in shown)


def format_rate(rate: float | None, eta: float | None) -> str:
    if rate is None:
        return ""
    left = "" if not eta else f"  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
    return f"{rate:.1f}/s{left}"


class ProgressView:
    """A live bar on a terminal; on a pipe (CI logs) a plain line at most every `every_s` seconds."""

    def __init__(self, run_id: str, *, enabled: bool = True, every_s: float = 5.0) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.live = enabled and self.console.is_terminal
        self.enabled = enabled
        self.run_id = run_id
        self.label = f"{run_kind({'id': run_id})} {run_id}"
        self.every_s = every_s
        self.started = time.monotonic()
        self.last_line = self.started
        self.first_done: int | None = None
        self.printed_final = False
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressView:
        if self.live:
            self.console.print(f"[dim]Following {self.label}[/]")
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("{task.fields[parts]}"),
                TextColumn("[dim]{task.fields[rate]}"),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=None, parts="", rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, run: dict[str, Any]) -> None:
        if not self.enabled:
            return
        snap = snapshot(run)
        if self.first_done is None:
            self.first_done = snap.done
        now = time.monotonic()
        rate, eta = rate_eta(self.first_done, snap.done, now - self.started, snap.total)
        if self.progress is not None and self.task is not None:
            self.progress.update(
                self.task,
                total=snap.total or None,
                completed=snap.done,
                parts=format_parts(snap.parts),
                rate=format_rate(rate, eta),
                description=snap.status,
            )
        elif (snap.finished and not self.printed_final) or (not snap.finished and now - self.last_line >= self.every_s):
            self.last_line = now
            self.printed_final = snap.finished
            extra = format_rate(rate, eta)
            print(
                f"{self.label}: {snap.done}/{snap.total} {snap.status} ({format_parts(snap.parts, color=False)})"
                + (f" {extra}" if extra else ""),
                file=sys.stderr,
                flush=True,
            )


async def follow(client: Client, run_id: str, view: ProgressView, timeout_s: float | None = None) -> dict[str, Any]:
    """Watch a run until it is terminal and return its final JSON (a fresh GET, the authoritative state)."""
    try:
        with anyio.fail_after(timeout_s):
            run = await client.get_run(run_id)
            view.update(run)
            if status_of(run) not in TERMINAL:
                await _stream(client, run_id, view)
    except TimeoutError as exc:
        raise CliError(
            f"run {run_id} is still going after {timeout_s:g}s; follow it with `orchestrator watch {run_id}`",
            EXIT_UNAVAILABLE,
        ) from exc
    final = await client.get_run(run_id)
    view.update(final)
    return final


async def _stream(client: Client, run_id: str, view: ProgressView) -> None:
    try:
        async for event in client.run_events(run_id):
            if isinstance(event.get("run"), dict):
                view.update(event["run"])
            if event.get("type") == "run.finished":
                return
    except ClientError as exc:
        if exc.status not in (404, 405, 501):
            raise
    # No feed here (or it ended early): poll the run itself.
    while True:
        run = await client.get_run(run_id)
        view.update(run)
        if status_of(run) in TERMINAL:
            return
        await anyio.sleep(POLL_S)
