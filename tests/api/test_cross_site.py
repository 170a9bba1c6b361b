"""Issue 15: no cross-site request rides the session cookie. The matrix: a request signed in by cookie
only is refused unless it shows it comes from this page (Origin / Sec-Fetch-Site, and JSON for writes);
header-key clients are unaffected; the API key is never read from the URL; sign-in links work once and
expire; sessions expire."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from orchestrator.api.sessions import Sessions
from tests.api.test_support import SpentLinks, assert_envelope, raw
from tests.conftest import API_KEY, Api, AppFactory

EVIL = "http://evil.example"
OTHER_PORT = "http://127.0.0.1:1"  # same site, another origin: SameSite=Strict lets it through


async def signed_in(api: Api) -> dict[str, str]:
    """The session cookie a browser gets from a fresh sign-in link."""
    link = await api.post("/v1/session/link", {}, expect=200)
    token = link["url"].split("?token=", 1)[1]
    resp = await api.client.get(f"/?token={token}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    return {"orchestrator_session": resp.cookies["orchestrator_session"].value}


def origin(api: Api) -> str:
    return f"http://{api.client.host}:{api.client.port}"


async def by_cookie(
    api: Api, cookies: dict[str, str], method: str, path: str, headers: dict[str, str], body: str | None = "{}"
) -> tuple[int, Any]:
    resp = await api.client.request(method, path, data=body, headers=headers, cookies=cookies)
    return resp.status, await resp.json(content_type=None) if resp.status != 204 else None


async def test_cookie_writes_need_json_and_a_same_origin_proof(api: Api) -> None:
    cookies = await signed_in(api)
    same = origin(api)
    refused: list[dict[str, str]] = [
        {"Content-Type": "text/plain", "Origin": same},  # a no-preflight fetch / form
        {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"},
        {"Content-Type": "application/json", "Origin": EVIL},
        {"Content-Type": "application/json", "Origin": OTHER_PORT},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "application/json"},  # no proof at all
    ]
    for headers in refused:
        status, body = await by_cookie(api, cookies, "POST", "/v1/workflows", headers, '{"name": "csrf"}')
        assert status == 403 and body["detail"]["code"] == "cross_site_request", (headers, status, body)
    listed = await api.get("/v1/workflows", expect=200)
    assert not [w for w in listed["data"] if w["name"] == "csrf"], "a refused request wrote nothing"
    for headers in (
        {"Content-Type": "application/json", "Origin": same},
        {"Content-Type": "application/json; charset=utf-8", "Sec-Fetch-Site": "same-origin"},
    ):
        status, body = await by_cookie(api, cookies, "POST", "/v1/workflows", headers, '{"name": "page"}')
        assert status == 201, (headers, body)


async def test_cookie_reads_and_feeds_refuse_other_origins(api: Api) -> None:
    cookies = await signed_in(api)
    for headers in ({"Origin": EVIL}, {"Origin": OTHER_PORT}, {"Sec-Fetch-Site": "cross-site"}):
        for path in ("/v1/workflows", "/v1/events", "/v1/session"):
            status, body = await by_cookie(api, cookies, "GET", path, headers, None)
            assert status == 403 and body["detail"]["code"] == "cross_site_request", (path, headers)
    status, _ = await by_cookie(api, cookies, "GET", "/v1/session", {"Sec-Fetch-Site": "same-origin"}, None)
    assert status == 200


async def test_cookie_websockets_need_a_same_origin_origin(api: Api) -> None:
    cookies = await signed_in(api)
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    for headers in ({"Origin": EVIL}, {"Origin": OTHER_PORT}, {}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await api.client.ws_connect("/v1/ws", headers={**cookie, **headers})
        assert err.value.status == 403, headers
    ws = await api.client.ws_connect("/v1/ws", headers={**cookie, "Origin": origin(api)})
    first = await ws.receive(timeout=10)
    assert first.type == aiohttp.WSMsgType.TEXT, first
    await ws.close()


async def test_header_key_clients_are_unaffected(api: Api) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Origin": EVIL, "Content-Type": "text/plain"}
    resp = await api.client.post("/v1/workflows", data='{"name": "cli"}', headers=headers)
    assert resp.status == 201
    ws = await api.client.ws_connect("/v1/ws", headers={"Api-Key": API_KEY, "Origin": EVIL})
    await ws.close()


async def test_the_api_key_is_never_read_from_the_url(api: Api) -> None:
    for path in ("/v1/workflows", "/v1/events", "/v1/openapi.json"):
        r = await raw(api, "GET", path, params={"token": API_KEY}, auth=False)
        assert_envelope(r, 401, "invalid_api_key")


async def test_sign_in_links_are_made_by_key_holders_only_and_work_once(api: Api) -> None:
    cookies = await signed_in(api)
    status, body = await by_cookie(
        api, cookies, "POST", "/v1/session/link", {"Content-Type": "application/json", "Origin": origin(api)}
    )
    assert status == 403 and body["detail"]["code"] == "key_required"
    link = await api.post("/v1/session/link", {}, expect=200)
    path = "/" + link["url"].split("/", 3)[3]
    first = await api.client.get(path, allow_redirects=False)
    assert first.status == 303 and first.headers["Location"] == "/"
    again = await api.client.get(path, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/#/signin-failed"
    assert "orchestrator_session" not in again.cookies


async def test_links_expire_and_sessions_expire() -> None:
    now = [1_000_000.0]
    s = Sessions("k", b"secret", clock=lambda: now[0], signin_ttl_s=600, session_ttl_s=3600)
    spent = SpentLinks()
    stale, fresh = s.create_login_token(), None
    now[0] += 601
    assert await s.exchange(stale, spent.spend) is None, "a link older than signin_ttl_s"
    fresh = s.create_login_token()
    cookie = await s.exchange(fresh, spent.spend)
    assert cookie and s.key_for(cookie) == "k"
    assert await s.exchange(fresh, spent.spend) is None, "a link works once"
    now[0] += 3601
    assert s.key_for(cookie) is None, "a session older than session_ttl_h"


async def test_session_lifetime_is_a_setting(make_api: AppFactory) -> None:
    api = await make_api(session_ttl_h=2.0)
    link = await api.post("/v1/session/link", {}, expect=200)
    resp = await api.client.get("/?token=" + link["url"].split("?token=", 1)[1], allow_redirects=False)
    assert f"max-age={2 * 3600}" in resp.headers["Set-Cookie"].lower()
