"""Sign-in, the experiment view, filters and pages, phone width and accessible names, in headless Chromium."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import (
    SCHEMA,
    Factory,
    Server,
    pct,
    shot,
    unnamed_controls,
)

pytestmark = pytest.mark.browser

CLEAR_THEN_CHOOSE_STATUS = """(value) => {
  [...document.querySelectorAll("button")].find((b) => b.textContent === "Clear filters").click();
  const select = document.querySelector("select[name=status]");
  select.value = value;
  select.dispatchEvent(new Event("change", { bubbles: true }));
}"""
ONLY_COMPLETED_ROWS = """() => {
  const badges = [...document.querySelectorAll("tr[data-run-id] .badge")];
  return badges.length > 0 && badges.every((b) => b.textContent === "completed");
}"""


def test_sign_in_trades_the_token_for_an_httponly_cookie(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    scripts: list[str] = []
    page.on("response", lambda r: scripts.append(r.text()) if r.url.endswith(".js") else None)

    page.goto(server.base_url + "/")
    expect(page.get_by_role("heading", name="Sign in to this server")).to_be_visible()
    expect(page.get_by_text("Open in a browser: http://HOST:PORT/?token=…")).to_be_visible()
    assert page.request.get(server.base_url + "/v1/session").status == 401
    shot(page, "sign-in")

    page.goto(server.base_url + "/?token=not-the-token")
    expect(page.get_by_role("heading", name="That sign-in link is not valid")).to_be_visible()
    assert "token" not in page.url

    page.goto(server.login_url)
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    assert "token" not in page.url
    cookie = next(c for c in context.cookies() if c["name"] == "orchestrator_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert "orchestrator_session" not in page.evaluate("document.cookie")
    assert page.request.get(server.base_url + "/v1/session").status == 200
    status = page.evaluate("fetch('/v1/workflows/evals/runs?limit=1').then(r => r.status)")
    assert status == 200, "the cookie authenticates the page's REST calls"
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")  # and its EventSource

    # The API key never reaches the page: not in its HTML, not in any of its scripts.
    assert scripts and all(server.api_key not in s for s in scripts)
    assert server.api_key not in page.content()
    # A cookie from another session is refused by the API.
    assert httpx.get(server.base_url + "/v1/session", cookies={"orchestrator_session": "forged"}).status_code == 401


def test_experiment_view_shows_score_fields_documents_votes_and_prior(
    page: Page, make: Factory, sdk: Any, server: Server
) -> None:
    wf, block, exp = make.experiment("Q1 invoices", 24, {"latency_ms": 5, "disagreement": 0.3})
    make.wait(make.experiment_run(exp))
    # A better config for the second run, so the page has a change against the prior run to show.
    sdk.workflows.blocks.update(
        block,
        workflow_id=wf,
        config={"model": "simulated", "json_schema": SCHEMA, "n_consensus": 3, "simulation": {"disagreement": 0.1}},
    )
    run_id = make.experiment_run(exp)
    make.wait(run_id)
    summary = httpx.get(
        f"{server.base_url}/v1/workflows/experiments/metrics",
        params={"run_id": run_id, "view": "summary", "include_prior": "true"},
        headers={"Authorization": f"Bearer {server.api_key}"},
    ).json()

    page.goto(f"{server.base_url}/#/runs/{run_id}")
    expect(page.locator('[data-metric="score"]')).to_have_text(pct(summary["score"]))
    expect(page.locator(".prior")).to_contain_text(f"prior {pct(summary['prior_score'])}")
    likelihoods: dict[str, float] = summary["aggregate"]["likelihoods"]
    bars = page.locator("li.field-bar")
    expect(bars).to_have_count(len(likelihoods))
    shown = [bars.nth(i).get_attribute("data-field") for i in range(len(likelihoods))]
    assert [likelihoods[f] for f in shown if f] == sorted(likelihoods.values()), "fields worst first"
    for path, value in likelihoods.items():
        expect(page.get_by_role("img", name=f"Agreement on {path}: {pct(value)}").first).to_be_visible()
    expect(page.locator(".field-bar .delta").first).to_contain_text("pts")

    worst = min(summary["documents"], key=lambda d: d["score"])
    first_doc = page.locator(".docs-table tbody tr").first
    assert pct(worst["score"]) in first_doc.inner_text()
    shot(page, "experiment-view")
    page.get_by_role("button", name=f"Inspect {first_doc.locator('td').first.inner_text()}").click()
    first_field = page.locator(".target-btn").first
    expect(first_field).to_have_attribute("aria-pressed", "true")
    votes = page.get_by_role("table", name=re.compile(r"^Votes for "))
    expect(votes.locator("thead th")).to_have_text(["Consensus", "Pass 1", "Pass 2", "Pass 3", "Agreement"])
    shot(page, "experiment-votes", full_page=True)


def test_filters_and_pages(page: Page, make: Factory, sdk: Any) -> None:
    wf, block = make.workflow("Many small runs", {"latency_ms": 1}, n_consensus=1)
    sdk.workflows.evals.create(
        workflow_id=wf,
        target={"type": "block", "block_id": block},
        source={"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"total": 1}}}},
        assertion={"target": {"output_handle_id": "output-json-0", "path": "total"}, "condition": {"kind": "exists"}},
        name="has a total",
    )
    ids = [sdk.workflows.evals.runs.create(workflow_id=wf).id for _ in range(27)]
    page.reload()
    page.get_by_role("combobox", name="Workflow").select_option(wf)
    rows = page.locator("tr[data-run-id]")
    expect(rows).to_have_count(25)
    assert rows.first.get_attribute("data-run-id") == ids[-1], "newest first"
    page.get_by_role("button", name="Older →").click()
    expect(rows).to_have_count(2)
    assert rows.last.get_attribute("data-run-id") == ids[0]
    page.get_by_role("button", name="← Newer").click()
    expect(rows).to_have_count(25)

    kind, status, workflow = (page.get_by_role("combobox", name=n) for n in ("Kind", "Status", "Workflow"))
    kind.select_option("experiment")
    expect(page.get_by_text("No run matches these filters.")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    for control in (kind, status, workflow):
        expect(control).to_have_value("")
    expect(rows).to_have_count(25)

    # A quick user: a filter chosen right after "Clear filters", before the browser has delivered the
    # address change of the clear (one task: the click, then the change). The clear must hold.
    workflow.select_option(wf)
    kind.select_option("experiment")
    expect(page.get_by_text("No run matches these filters.")).to_be_visible()
    page.evaluate(CLEAR_THEN_CHOOSE_STATUS, "completed")
    expect(page).to_have_url(re.compile(r"#/runs\?status=completed$"))
    expect(kind).to_have_value("")
    expect(workflow).to_have_value("")
    expect(status).to_have_value("completed")
    page.wait_for_function(ONLY_COMPLETED_ROWS)
    assert all(b == "completed" for b in page.locator("tr[data-run-id] .badge").all_inner_texts())


def test_phone_width_renders_without_horizontal_scroll(browser: Browser, server: Server, make: Factory) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    try:
        page = ctx.new_page()
        page.goto(server.login_url)
        expect(page.locator("tr[data-run-id]").first).to_be_visible()
        fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
        assert page.evaluate(fits)
        table = page.locator(".runs-table")
        assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth + 1"), "runs table fits"
        shot(page, "runs-list-phone")
        first = page.locator("tr[data-run-id] a").first
        first.click()
        expect(page.locator(".progress-card")).to_be_visible()
        assert page.evaluate(fits)
        shot(page, "run-detail-phone")
    finally:
        ctx.close()


def test_every_control_has_an_accessible_name(page: Page, make: Factory, server: Server) -> None:
    _, _, exp = make.experiment("Names", 4, {"latency_ms": 1})
    run_id = make.experiment_run(exp)
    make.wait(run_id)
    expect(page.get_by_role("combobox", name="Kind")).to_be_visible()
    expect(page.get_by_role("combobox", name="Status")).to_be_visible()
    expect(page.get_by_role("combobox", name="Workflow")).to_be_visible()
    expect(page.get_by_role("table", name="Runs, newest first")).to_be_visible()
    expect(page.get_by_role("navigation", name="Runs pages")).to_be_visible()
    expect(page.get_by_role("status").first).to_be_visible()
    assert unnamed_controls(page) == []

    page.get_by_role("link", name=f"Open experiment run {run_id}").click()
    # Scoped to the run view: right after the click the list (one bar per run) may still be showing.
    progress = page.get_by_role("region", name="Progress").get_by_role("progressbar")
    expect(progress).to_have_attribute("aria-valuetext", "4 of 4 finished: 4 done")
    expect(page.get_by_role("button", name="Copy run id")).to_be_visible()
    page.get_by_role("link", name="Open result 1").click()
    expect(page.get_by_role("button", name="Close result")).to_be_visible()
    # The result came from the simulated engine: the page says so next to the model.
    expect(page.locator(".facts")).to_contain_text("(simulated engine, no language model)")
    page.get_by_role("button", name=re.compile(r"^Inspect ")).first.click()
    expect(page.locator(".votes-slot table")).to_be_visible()
    assert unnamed_controls(page) == []
