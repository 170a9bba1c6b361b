"""Runs started from the page, in headless Chromium against a real server with the Invoice demo: an eval run
of the whole workflow, one block and one eval, a test run, the experiment with its n_consensus changed, and
"Run again" on a finished run; each lands on the new run's live detail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import legend_counts, shot, unnamed_controls
from tests.serverproc import ServerProcess
from tests.serverproc import server as server_process

pytestmark = pytest.mark.browser
KEY = "start-test-key"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db: Path = tmp_path_factory.mktemp("start") / "orchestrator.db"
    extra = ["--log-level", "warning", "--feed-ping-s", "2"]
    with server_process(db, api_key=KEY, demo=True, extra=extra, start_timeout=60) as proc:
        yield proc


@pytest.fixture
def signed_in(browser: Browser, demo: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="light")
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    login = demo.login_url()
    assert login, demo.stdout
    page.goto(login)
    page.get_by_role("heading", name="Runs").wait_for()
    yield page
    context.close()
    assert errors == [], errors


def api(demo: ServerProcess, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, demo.base_url + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=30, **kw)
    r.raise_for_status()
    return r.json() if r.content else None


def start(page: Page, kind: str, *choices: tuple[str, str]) -> str:
    """Fill the New run form ((label, option) pairs) and start; → the id of the run the page landed on."""
    page.get_by_role("link", name="New run").first.click()
    expect(page.get_by_role("heading", name="Start a run")).to_be_visible()
    page.get_by_role("radio", name={"eval": "Evals", "test": "Tests", "experiment": "Experiment"}[kind]).check()
    for label, value in choices:
        page.get_by_label(label, exact=True).select_option(label=value)
    button = page.get_by_role("button", name="Start run")
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_url("**/#/runs/*")
    return page.url.split("#/runs/")[1].split("/")[0]


def finished(page: Page, run_id: str, timeout: float = 90_000) -> None:
    expect(page.locator(".crumbs .mono")).to_have_text(run_id)
    expect(page.locator(".status-slot .badge")).to_have_text("completed", timeout=timeout)


def test_start_runs_from_the_page_and_watch_them(signed_in: Page, demo: ServerProcess) -> None:
    page = signed_in
    page.evaluate("window.__sameDocument = true")
    (wf,) = [w for w in api(demo, "GET", "/v1/workflows")["data"] if w["name"] == "Invoice demo"]

    # 1. The demo's evals, the whole workflow: the page lands on the live detail while it runs.
    run_id = start(page, "eval", ("Workflow", "Invoice demo"), ("Which checks", "Every eval of the workflow"))
    assert run_id.startswith("wfevalrun_")
    expect(page.locator(".status-slot .badge")).to_have_text("running", timeout=10_000)
    shot(page, "start-eval-running")
    finished(page, run_id)
    assert {k: v for k, v in legend_counts(page).items() if v} == {"passed": 8, "failed": 2, "blocked": 1}
    body = api(demo, "GET", f"/v1/workflows/evals/runs/{run_id}")
    assert body["trigger"] == {"type": "manual"} and body["total_evals"] == 11
    assert body["workflow_id"] == wf["id"] and body["target"] is None
    shot(page, "start-eval-finished")

    # 2. Run it again from its detail: a new run of the same scope.
    again = page.get_by_role("button", name="Run again")
    expect(again).to_be_visible()
    again.click()
    page.wait_for_url(lambda url: run_id not in url and "#/runs/wfevalrun_" in url)
    second = page.url.split("#/runs/")[1]
    finished(page, second)
    assert api(demo, "GET", f"/v1/workflows/evals/runs/{second}")["total_evals"] == 11

    # 3. One block, with 5 passes per eval for this run only.
    by_block = start(
        page,
        "eval",
        ("Which checks", "The evals of one block"),
        ("Block", "Extract invoice (11)"),
        ("Passes per eval (n_consensus)", "5"),
    )
    detail = api(demo, "GET", f"/v1/workflows/evals/runs/{by_block}")
    assert detail["target"]["block_id"] and detail["n_consensus"] == 5 and detail["total_evals"] == 11
    expect(page.get_by_text("Consensus passes")).to_be_visible()
    api(demo, "POST", f"/v1/workflows/evals/runs/{by_block}/cancel")

    # 4. One eval.
    one = start(page, "eval", ("Which checks", "One eval"), ("Eval", "INV-1007 total (wrong expected value)"))
    finished(page, one)
    body = api(demo, "GET", f"/v1/workflows/evals/runs/{one}")
    assert body["total_evals"] == 1 and body["counts"]["outcome"]["failed"] == 1 and body["eval_id"]

    # 5. A test run (the older name of the same checks).
    test_run = start(page, "test", ("Which checks", "One eval"), ("Test", "INV-1001 invoice number"))
    assert test_run.startswith("wftestrun_")
    finished(page, test_run)
    assert api(demo, "GET", f"/v1/workflows/tests/runs/{test_run}")["counts"]["outcome"]["passed"] == 1

    # 6. The experiment, at 3 passes instead of its 5 (saved on the experiment, as the form says).
    page.get_by_role("link", name="New run").first.click()
    page.get_by_role("radio", name="Experiment").check()
    page.get_by_label("Passes (n_consensus)").select_option("3")
    expect(page.locator(".start-summary")).to_contain_text("its n_consensus goes from 5 to 3")
    assert unnamed_controls(page) == []
    shot(page, "start-form-experiment")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/#/runs/exprun_*")
    exp_run = page.url.split("#/runs/")[1]
    finished(page, exp_run)
    xr = api(demo, "GET", f"/v1/workflows/experiments/runs/{exp_run}")
    assert xr["n_consensus"] == 3 and xr["trigger"] == {"type": "manual"} and xr["score"] is not None
    shot(page, "start-experiment-finished")
    assert page.evaluate("window.__sameDocument") is True, "every step ran in the one page"
