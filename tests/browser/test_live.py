"""The live page in headless Chromium against the real server: counts move while a run works, the final
numbers equal GET, cancel works from the page, the feed resumes after a drop, and a 10,000-child run
keeps the tab responsive with a bounded JS heap."""

from __future__ import annotations

import re
import time

import httpx
import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    Factory,
    Server,
    expected_counts,
    legend_counts,
    pct,
    shot,
)

pytestmark = pytest.mark.browser

# Passes of 0.5 s, 32 in flight at most: a 60-check run takes a few seconds, long enough to watch.
SLOW = {"latency_ms": 500}
RATE = re.compile(r"^\d+(\.\d)?/s$")  # a throughput such as 93.4/s or 412/s
FINISHED_BETWEEN = """([sel, total]) => {
  const el = document.querySelector(sel);
  if (!el) return false;
  const done = Number(el.getAttribute('aria-valuenow'));
  return done > 0 && done < total;
}"""


def test_runs_list_counts_move_live_and_end_equal_to_get(page: Page, make: Factory) -> None:
    page.evaluate("window.__sameDocument = true")
    run_id = make.eval_run("Live list", 60, SLOW)
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_be_visible()
    bar = f'tr[data-run-id="{run_id}"] [role=progressbar]'
    page.wait_for_function(FINISHED_BETWEEN, arg=[bar, 60], polling="raf")
    expect(row.locator(".badge")).to_have_text("completed", timeout=60_000)

    c = expected_counts(make.raw(run_id))
    assert row.locator("[role=progressbar]").get_attribute("aria-valuenow") == "60"
    assert row.locator("td.c-fin").inner_text() == "60 / 60"
    assert row.locator("td").nth(6).inner_text() == pct(c["passed"] / (c["passed"] + c["failed"] + c["blocked"]))
    assert c["failed"] > 0 and c["passed"] > 0
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert page.evaluate("window.__sameDocument") is True, "the list must update without reloading"


def test_run_detail_live_counts_then_final_numbers_equal_get(page: Page, make: Factory, server: Server) -> None:
    run_id = make.eval_run("Detail", 60, SLOW)
    page.goto(f"{server.base_url}/#/runs/{run_id}")
    page.wait_for_function(FINISHED_BETWEEN, arg=[".progress-card [role=progressbar]", 60], polling="raf")
    expect(page.locator('[data-stat="eta"]')).not_to_have_text("—")
    expect(page.locator(".status-slot .badge")).to_have_text("completed", timeout=60_000)

    c = expected_counts(make.raw(run_id))
    assert legend_counts(page) == c
    expect(page.locator('[data-stat="finished"]')).to_have_text("60 / 60")
    expect(page.locator('[data-stat="score"]')).to_have_text(pct(c["passed"] / 60))
    expect(page.locator('[data-stat="throughput"]')).to_have_text(RATE)
    expect(page.locator(".results-table tbody tr")).to_have_count(50)

    failed_row = page.locator(".results-table tbody tr", has=page.locator(".badge", has_text="failed")).first
    failed_row.get_by_role("link").click()
    panel = page.locator(".child-panel")
    expect(panel.get_by_role("heading", name="Assertion")).to_be_visible()
    expect(panel.get_by_role("heading", name="Votes (3 passes)")).to_be_visible()
    expect(panel.get_by_label("Expected value")).to_have_text("-1")
    expect(panel.get_by_role("table", name="Per-pass votes against the consensus")).to_be_visible()
    assert "/results/" in page.url
    shot(page, "run-detail")
    panel.get_by_role("button", name="Close result").click()
    expect(panel).to_be_hidden()


@pytest.mark.parametrize("kind", ["eval", "experiment"])
def test_cancel_from_the_page(page: Page, make: Factory, server: Server, kind: str) -> None:
    if kind == "eval":
        run_id = make.eval_run("To cancel", 60, {"latency_ms": 1500})
    else:
        _, _, exp = make.experiment("To cancel", 600, {"latency_ms": 300})
        run_id = make.experiment_run(exp)
    page.goto(f"{server.base_url}/#/runs/{run_id}")
    expect(page.locator(".status-slot .badge")).to_have_text("running")
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("button", name="Yes, cancel run").click()
    expect(page.locator(".status-slot .badge")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)

    assert make.wait(run_id).lifecycle.status == "cancelled"
    c = expected_counts(make.raw(run_id))
    expect(page.locator(".legend dd[data-count=cancelled]")).to_have_text(f"{c['cancelled']:,}")
    assert legend_counts(page) == c


def test_feed_resumes_after_a_drop_without_a_gap(page: Page, make: Factory, server: Server) -> None:
    run_id = make.eval_run("Resume", 60, SLOW)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if r.url.endswith("/events") or "/events?" in r.url else None)
    page.goto(f"{server.base_url}/#/runs/{run_id}")
    page.wait_for_function(FINISHED_BETWEEN, arg=[".progress-card [role=progressbar]", 60], polling="raf")
    before = page.evaluate("orchestratorDebug.state()")
    page.evaluate("orchestratorDebug.drop()")
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator(".status-slot .badge")).to_have_text("completed", timeout=60_000)

    state = page.evaluate("orchestratorDebug.state()")
    assert state["opens"] >= 2
    resumed = [u for u in urls if "after=" in u]
    assert resumed, urls
    assert int(resumed[0].rsplit("after=", 1)[1]) >= before["cursor"]
    # Every child's event arrived exactly once across the drop.
    assert state["byType"].get("child.finished") == 60, state
    assert legend_counts(page) == expected_counts(make.raw(run_id))
    expect(page.locator("#conn")).to_have_attribute("data-state", "done")


def test_ten_thousand_children_stay_smooth_with_a_bounded_heap(page: Page, make: Factory, server: Server) -> None:
    page.evaluate(
        """() => { window.__longest = 0;
        new PerformanceObserver((l) => { for (const e of l.getEntries()) __longest = Math.max(__longest, e.duration); })
          .observe({ type: 'longtask' }); }"""
    )
    _, _, exp = make.experiment("Ten thousand documents", 10_000, {"latency_ms": 0, "disagreement": 0.1})
    run_id = make.experiment_run(exp)
    page.goto(f"{server.base_url}/#/runs/{run_id}")
    cdp = page.context.new_cdp_session(page)

    def heap() -> int:
        cdp.send("HeapProfiler.collectGarbage")
        used: int = cdp.send("Runtime.getHeapUsage")["usedSize"]
        return used

    bar = ".progress-card [role=progressbar]"

    def done() -> int:
        return int(page.locator(bar).get_attribute("aria-valuenow") or 0)

    page.wait_for_function(f"() => Number(document.querySelector('{bar}')?.getAttribute('aria-valuenow')) >= 1000")
    early = heap()
    shot(page, "run-detail-live")
    # The runs list beside it, mid-run, in a second tab (closed before the heap is measured again).
    other = page.context.new_page()
    other.goto(f"{server.base_url}/#/runs")
    expect(other.locator(f'tr[data-run-id="{run_id}"] .badge')).to_have_text("running")
    shot(other, "runs-list")
    other.close()
    seen = [done()]
    while seen[-1] < 10_000:
        t0 = time.monotonic()
        page.evaluate("1")  # a round trip through the page's main thread
        assert time.monotonic() - t0 < 2.0, "the tab stopped responding"
        page.wait_for_function(
            f"(n) => Number(document.querySelector('{bar}').getAttribute('aria-valuenow')) > n", arg=seen[-1]
        )
        seen.append(done())
    expect(page.locator(".status-slot .badge")).to_have_text("completed", timeout=120_000)
    late = heap()

    assert len(seen) >= 3, f"progress should be seen moving, saw {seen}"
    assert late < early + 16 * 1024 * 1024, f"JS heap grew from {early} to {late} bytes"
    assert page.locator("tr").count() < 200, "never thousands of DOM rows"
    assert page.evaluate("__longest") < 1500, "no long freeze of the main thread"
    assert legend_counts(page) == expected_counts(make.raw(run_id))
    summary = httpx.get(
        f"{server.base_url}/v1/workflows/experiments/metrics",
        params={"run_id": run_id, "view": "summary"},
        headers={"Authorization": f"Bearer {server.api_key}"},
    ).json()
    expect(page.locator('[data-metric="score"]')).to_have_text(pct(summary["score"]))
    expect(page.locator(".exp-score")).to_contain_text(f"{summary['scored_document_count']:,} of 10,000 documents")
    shot(page, "experiment-10k")
