"""Tokens and cost on the page, live: the run detail's usage row moves while the run works and ends equal
to GET; the runs list shows tokens · cost; an unchanged re-run shows every pass from the cache and no cost."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Page, expect

from tests.browser.conftest import PRICED, Factory, Server, invoice_input, shot

pytestmark = pytest.mark.browser

OPEN_WITH_TOKENS = """() => {
  const bar = document.querySelector('.progress-card [role=progressbar]');
  const tokens = document.querySelector('[data-stat="tokens"]');
  if (!bar || !tokens) return false;
  const done = Number(bar.getAttribute('aria-valuenow'));
  const total = Number(bar.getAttribute('aria-valuemax'));
  const n = Number(tokens.textContent.replace(/[^0-9]/g, ''));
  return done > 0 && done < total && n > 0;
}"""


def usd(x: float | None) -> str:
    """The page's money format (web/usage.js)."""
    if x is None:
        return "—"
    if x == 0:
        return "$0.00"
    return f"${x:.2f}" if x >= 0.01 else f"${x:.4f}" if x >= 0.0001 else f"${x:.2g}"


def _experiment(make: Factory, name: str) -> str:
    wf, block = make.workflow(name, {"latency_ms": 400, "disagreement": 0.2}, model=PRICED)
    exp = make.sdk.workflows.experiments.create(
        workflow_id=wf,
        block_id=block,
        name=name,
        n_consensus=3,
        documents=[{"handle_inputs": invoice_input(i)} for i in range(60)],
    )
    return str(exp.id)


def _tokens(run: dict[str, Any]) -> str:
    u = run["usage"]
    return f"{u['input_tokens'] + u['output_tokens']:,}"


def test_tokens_and_cost_move_live_and_a_cached_rerun_costs_nothing(page: Page, make: Factory, server: Server) -> None:
    exp = _experiment(make, "Priced invoices")
    run_id = make.experiment_run(exp)
    page.goto(f"{server.base_url}/#/runs/{run_id}")
    # While the run works, tokens are already counted (every feed event carries the run's usage).
    page.wait_for_function(OPEN_WITH_TOKENS, polling="raf")
    expect(page.locator(".status-slot .badge")).to_have_text("completed", timeout=60_000)
    run = make.raw(run_id)
    assert run["usage"]["cost_usd"] > 0 and run["usage"]["engine_calls"] == 180
    expect(page.locator('[data-stat="tokens"]')).to_have_text(_tokens(run))
    expect(page.locator('[data-stat="cost"]')).to_have_text(usd(run["usage"]["cost_usd"]))
    expect(page.locator('[data-stat="engine-calls"]')).to_have_text("180")
    expect(page.locator(".stats.usage")).to_contain_text("estimated by the simulated engine")
    shot(page, "run-usage")

    again = make.experiment_run(exp)
    page.goto(f"{server.base_url}/#/runs/{again}")
    expect(page.locator(".status-slot .badge")).to_have_text("completed", timeout=60_000)
    expect(page.locator('[data-stat="cache"]')).to_have_text("100%")
    expect(page.locator('[data-stat="cost"]')).to_have_text("$0.00")
    expect(page.locator('[data-stat="engine-calls"]')).to_have_text("0")
    saved = usd(run["usage"]["cost_usd"])
    expect(page.locator(".stats.usage")).to_contain_text(f"180 passes, saved {_tokens(run)} tokens ({saved})")
    shot(page, "run-usage-cached")
    results = httpx.get(
        f"{server.base_url}/v1/workflows/experiments/results",
        params={"run_id": again, "limit": 1},
        headers={"Authorization": f"Bearer {server.api_key}"},
    ).json()
    page.goto(f"{server.base_url}/#/runs/{again}/results/{results['data'][0]['id']}")
    expect(page.locator(".child-panel .facts")).to_contain_text("3 (3 from the cache)")

    page.goto(f"{server.base_url}/#/runs")
    row = page.locator(f'tr[data-run-id="{run_id}"] td.c-usage')
    expect(row).to_have_text(f"{_tokens(run)} · {usd(run['usage']['cost_usd'])}")
    assert re.search(r"estimated by the simulated engine", row.get_attribute("title") or "")

    # From the page, a run that calls every pass again: the box is ticked by default.
    page.goto(f"{server.base_url}/#/new?kind=experiment")
    page.get_by_label("Workflow").select_option(label="Priced invoices")
    box = page.get_by_role("checkbox", name=re.compile("Reuse cached passes"))
    expect(box).to_be_checked()
    box.uncheck()
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/#/runs/exprun_*")
    fresh = page.url.split("#/runs/")[1]
    expect(page.locator('[data-stat="cache"]')).to_have_text("off")
    expect(page.locator(".status-slot .badge")).to_have_text("completed", timeout=60_000)
    body = make.raw(fresh)
    assert body["cache"] is False and body["usage"]["engine_calls"] == 180 and body["usage"]["cache_hits"] == 0
    expect(page.locator('[data-stat="engine-calls"]')).to_have_text("180")
