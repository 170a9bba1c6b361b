"""Fixtures for the browser tests: the real server process, the retab SDK against it, headless Chromium.

Debian's chromium only (never a browser download). Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.core.lifecycle import TERMINAL
from orchestrator.demo import MINIMAL_INVOICE_SCHEMA
from tests.serverproc import ServerProcess
from tests.serverproc import server as server_process

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover - the dev extra installs it
    HAVE_PLAYWRIGHT = False

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
API_KEY = "browser-test-key"
# A simulated model with a price, so that the page has a cost to show (tests/browser/test_usage.py).
PRICED = "priced-sim"
PRICED_MODELS = f"""
[[routes]]
match = "{PRICED}"
engine = "simulated"

[prices]
"{PRICED}" = {{ input = 3.0, output = 15.0 }}
"""
SCHEMA: dict[str, Any] = {
    **MINIMAL_INVOICE_SCHEMA,
    "properties": {**MINIMAL_INVOICE_SCHEMA["properties"], "currency": {"type": "string"}},
}


@dataclass
class Server:
    process: ServerProcess
    printed_login_url: str  # the token link the server printed at start (it works once)

    @property
    def login_url(self) -> str:
        """A fresh sign-in link (single use) from `POST /v1/session/link`, as `orchestrator signin` gets it."""
        req = urllib.request.Request(
            self.base_url + "/v1/session/link",
            data=b"{}",
            method="POST",
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return str(json.loads(resp.read())["url"])

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def api_key(self) -> str:
        return self.process.api_key


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Short keep-alives: a stream whose browser went away ends quickly, so SIGTERM does not wait.
    folder = tmp_path_factory.mktemp("browser-server")
    models = folder / "models.toml"
    models.write_text(PRICED_MODELS)
    extra = ["--log-level", "warning", "--feed-ping-s", "2", "--models", str(models)]
    with server_process(folder / "browser.db", api_key=API_KEY, extra=extra, start_timeout=30) as proc:
        login_url = proc.login_url()
        assert login_url, f"the server printed no login link: {proc.stdout}"
        yield Server(proc, login_url)


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Browser]:
    """Per module, not per session: Playwright's sync API keeps an event loop running while it is
    open, and the asyncio tests of other modules need theirs. Depends on `server` so it closes
    first: open feeds would otherwise hold the server's shutdown."""
    if not HAVE_PLAYWRIGHT:
        pytest.skip("python playwright is not installed (pip install -e '.[dev]')")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext, server: Server) -> Iterator[Page]:
    """A signed-in page (the login URL traded for the cookie), on the runs list. Fails the test on any
    uncaught error or console error in the page."""
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    pg.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    pg.goto(server.login_url)
    pg.get_by_role("heading", name="Runs").wait_for()
    yield pg
    assert errors == [], errors


def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="session")
def sdk(server: Server) -> Any:
    from retab import Retab

    return Retab(api_key=server.api_key, base_url=server.base_url)


def invoice_input(i: int) -> dict[str, Any]:
    data = {"invoice_number": f"INV-{i:04d}", "vendor": f"Vendor {i % 7}", "total": i * 10 + 0.5, "currency": "EUR"}
    return {"input-json-0": {"type": "json", "data": data}}


class Factory:
    """Workflows, evals and experiments made through the official SDK, as a user would."""

    def __init__(self, sdk: Any, server: Server) -> None:
        self.sdk = sdk
        self.base_url = server.base_url
        self.api_key = server.api_key

    def workflow(
        self, name: str, simulation: dict[str, Any], n_consensus: int = 3, model: str = "simulated"
    ) -> tuple[str, str]:
        wf = self.sdk.workflows.create(project_id="proj_browser", name=name)
        block = self.sdk.workflows.blocks.create(
            workflow_id=wf.id,
            type="extract",
            label="Extract invoice",
            config={
                "model": model,
                "json_schema": SCHEMA,
                "n_consensus": n_consensus,
                "simulation": simulation,
                # Its own instructions per workflow: the pass cache would otherwise serve a test the passes of
                # an earlier test's identical block and inputs, and a run meant to be watched would be instant.
                "instructions": f"Extract the invoice ({name})",
            },
        )
        return wf.id, block.id

    def eval_run(self, name: str, n: int, simulation: dict[str, Any]) -> str:
        wf, block = self.workflow(name, simulation)
        for i in range(n):
            # Every fifth expectation is wrong on purpose, so the run shows failures as well.
            expected = i * 10 + 0.5 if i % 5 else -1.0
            self.sdk.workflows.evals.create(
                workflow_id=wf,
                target={"type": "block", "block_id": block},
                source={"type": "manual", "handle_inputs": invoice_input(i)},
                assertion={
                    "target": {"output_handle_id": "output-json-0", "path": "total"},
                    "condition": {"kind": "equals", "expected": expected},
                },
                name=f"total of invoice {i}",
            )
        return str(self.sdk.workflows.evals.runs.create(workflow_id=wf).id)

    def experiment(self, name: str, n: int, simulation: dict[str, Any]) -> tuple[str, str, str]:
        """→ (workflow id, block id, experiment id)."""
        wf, block = self.workflow(name, simulation)
        exp = self.sdk.workflows.experiments.create(
            workflow_id=wf,
            block_id=block,
            name=name,
            n_consensus=3,
            documents=[{"handle_inputs": invoice_input(i)} for i in range(n)],
        )
        return wf, block, str(exp.id)

    def experiment_run(self, experiment_id: str) -> str:
        return str(self.sdk.workflows.experiments.runs.create(experiment_id=experiment_id).id)

    def raw(self, run_id: str) -> dict[str, Any]:
        """GET …/runs/{id} as JSON (the SDK's experiment model drops `counts`)."""
        kind = "experiments" if run_id.startswith("exprun_") else "evals"
        resp = httpx.get(
            f"{self.base_url}/v1/workflows/{kind}/runs/{run_id}", headers={"Authorization": f"Bearer {self.api_key}"}
        )
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def get(self, run_id: str) -> Any:
        if run_id.startswith("exprun_"):
            return self.sdk.workflows.experiments.runs.get(run_id)
        return self.sdk.workflows.evals.runs.get(run_id)

    def wait(self, run_id: str, timeout: float = 90, until: Callable[[Any], bool] | None = None) -> Any:
        done = until or (lambda r: r.lifecycle.status in TERMINAL)
        deadline = time.monotonic() + timeout
        run = self.get(run_id)
        while not done(run):
            assert time.monotonic() < deadline, f"{run_id} did not reach the expected state"
            time.sleep(0.1)
            run = self.get(run_id)
        return run


@pytest.fixture(scope="session")
def make(sdk: Any, server: Server) -> Factory:
    return Factory(sdk, server)


def pct(x: float | None) -> str:
    """The page's percentage format (one decimal)."""
    return "—" if x is None else f"{x * 100:.1f}%"


def expected_counts(run: dict[str, Any]) -> dict[str, int]:
    """The page's legend buckets, computed from the JSON of GET …/runs/{id}."""
    lc, oc = run["counts"]["lifecycle_counts"], run["counts"]["outcome"]
    verdicts = oc["passed"] + oc["failed"] + oc["blocked"]
    return {
        "passed": oc["passed"],
        "failed": oc["failed"],
        "blocked": oc["blocked"],
        "done": lc["completed"] - verdicts,
        "error": lc["error"],
        "cancelled": lc["cancelled"],
        "running": lc["running"],
        "queued": lc["pending"] + lc["queued"],
    }


def legend_counts(page: Page) -> dict[str, int]:
    counts: dict[str, int] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.legend dd[data-count]')]
            .map(d => [d.dataset.count, Number(d.textContent.replace(/[^0-9]/g, ''))]))"""
    )
    return counts


def unnamed_controls(page: Page) -> list[str]:
    """Interactive elements without an accessible name (a close approximation of the ARIA rules)."""
    found: list[str] = page.evaluate(
        """() => {
          const sel = 'a[href], button, select, input, textarea, [role=progressbar], [role=img], [tabindex]:not(main)';
          const name = (el) => {
            if (el.getAttribute('aria-label')) return el.getAttribute('aria-label');
            const by = el.getAttribute('aria-labelledby');
            if (by) return by.split(' ').map(id => document.getElementById(id)?.textContent ?? '').join(' ');
            if (el.labels && el.labels.length) return [...el.labels].map(l => l.textContent).join(' ');
            return (el.textContent || el.getAttribute('title') || '').trim();
          };
          return [...document.querySelectorAll(sel)]
            .filter(el => el.offsetParent !== null && !name(el).trim())
            .map(el => el.outerHTML.slice(0, 120));
        }"""
    )
    return found
