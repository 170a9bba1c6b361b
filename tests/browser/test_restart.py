"""An open tab survives a server restart: it stays signed in (the cookie is signed with the secret kept
beside the database) and its live feed reconnects by itself, without a reload or a new sign-in link."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, expect

from tests.browser.conftest import shot
from tests.serverproc import start_server

pytestmark = pytest.mark.browser
KEY = "restart-test-key"


def test_an_open_tab_stays_signed_in_and_reconnects_after_a_restart(browser: Browser, tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    extra = ["--log-level", "warning", "--feed-ping-s", "2", "--workers", "0"]
    srv = start_server(db, api_key=KEY, extra=extra, start_timeout=60)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    try:
        login = srv.login_url()
        printed = "\n".join(srv.stdout)
        assert login and "works once" in printed, srv.stdout
        # serve also says which model names get the simulated engine (no language model behind them).
        assert "Simulated engine (deterministic rules, no language model) answers for: simulated*, retab-*" in printed
        page = context.new_page()
        page.goto(login)
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        page.evaluate("window.__sameDocument = true")
        port = int(srv.base_url.rsplit(":", 1)[1])

        assert srv.stop() == 0
        expect(page.locator("#conn")).not_to_have_attribute("data-state", "live")
        srv = start_server(db, api_key=KEY, port=port, extra=extra, start_timeout=60)
        assert srv.login_url() != login, "every start prints a new link (each works once)"

        # The tab reconnects by itself and is still signed in: no sign-in page, no reload.
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        assert page.evaluate("window.__sameDocument") is True
        assert page.evaluate("fetch('/v1/session').then(r => r.status)") == 200

        # And it is live: a run created now appears in the open list.
        headers = {"Authorization": f"Bearer {KEY}"}
        wf = httpx.post(
            f"{srv.base_url}/v1/workflows", json={"name": "After restart", "project_id": "p"}, headers=headers
        )
        body = {"workflow_id": wf.json()["id"]}
        run = httpx.post(f"{srv.base_url}/v1/workflows/evals/runs", json=body, headers=headers).json()
        expect(page.locator(f'tr[data-run-id="{run["id"]}"]')).to_be_visible()
        shot(page, "restart-still-signed-in")
    finally:
        context.close()
        srv.stop()
