"""Browser sessions outlive the server process: the cookie and the sign-in link are signed with a secret
kept beside the SQLite database (derived from the API key for PostgreSQL), so an open tab stays signed in
across restarts; a sign-in link works once, within its lifetime, and says so."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from orchestrator.api.sessions import SESSION_MAX_AGE_S, Sessions, secret_file, session_secret
from orchestrator.cli.serve import _link_note
from orchestrator.settings import Settings
from tests.api.test_support import SpentLinks
from tests.conftest import AppFactory


def sqlite(tmp_path: Path, key: str = "k1") -> Settings:
    return Settings(db=str(tmp_path / "o.db"), api_key=key)


async def test_the_secret_is_kept_beside_the_database(tmp_path: Path) -> None:
    settings = sqlite(tmp_path)
    first = session_secret(settings)
    path = secret_file(settings)
    assert path == tmp_path / "o.db.secret" and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_secret(settings) == first, "read back, not made anew"
    a, b = Sessions("k1", first), Sessions("k1", session_secret(settings))  # two starts of the server
    spent = SpentLinks()  # the store both starts share
    assert a.create_login_token() != a.create_login_token(), "every link is new"
    assert await b.exchange(a.create_login_token(), spent.spend), "a link made before a restart works after it"
    cookie = await a.exchange(a.create_login_token(), spent.spend)
    assert cookie and b.key_for(cookie) == "k1", "an open tab stays signed in"
    path.unlink()  # rotating the secret signs everyone out and voids every link
    c = Sessions("k1", session_secret(settings))
    assert c.key_for(cookie) is None and await c.exchange(a.create_login_token(), spent.spend) is None


@pytest.mark.parametrize("db", ["postgresql://u:p@db.example:5432/orch", ":memory:"])
async def test_without_a_local_database_the_secret_derives_from_the_api_key(tmp_path: Path, db: str) -> None:
    """Several API nodes on several machines share the key, hence the secret: no file anywhere."""
    node_a = Settings(db=db, api_key="shared,second")
    node_b = Settings(db=db, api_key="shared")
    assert secret_file(node_a) is None
    assert session_secret(node_a) == session_secret(node_b)
    assert session_secret(Settings(db=db, api_key="rotated")) != session_secret(node_a)
    cookie = await Sessions("shared", session_secret(node_a)).exchange(
        Sessions("shared", session_secret(node_b)).create_login_token(), SpentLinks().spend
    )
    assert cookie and Sessions("shared", session_secret(node_b)).key_for(cookie) == "shared"
    assert "the first API key changes" in _link_note(node_a)
    assert "o.db.secret is deleted" in _link_note(sqlite(tmp_path))


async def test_forged_tampered_and_expired_cookies_are_refused() -> None:
    now = [1_000_000.0]
    s = Sessions("k", b"secret", clock=lambda: now[0])
    spent = SpentLinks()
    cookie = await s.exchange(s.create_login_token(), spent.spend)
    assert cookie and s.key_for(cookie) == "k"
    issued, nonce, mac = cookie.split(".")
    for bad in ("", "forged", f"{issued}.{nonce}.{mac[:-1]}x", f"{int(issued) + 1}.{nonce}.{mac}", f"{issued}.{nonce}"):
        assert s.key_for(bad) is None, bad
    assert Sessions("k", b"other").key_for(cookie) is None
    assert await s.exchange("wrong", spent.spend) is None and await s.exchange("", spent.spend) is None
    now[0] += SESSION_MAX_AGE_S + 1
    assert s.key_for(cookie) is None, "a cookie lasts 30 days"


@pytest.mark.stores("sqlite")
async def test_a_cookie_from_before_a_restart_still_signs_in(make_api: AppFactory) -> None:
    first = await make_api()
    app = first.client.app
    assert app is not None
    from orchestrator.api.keys import SESSIONS

    token = app[SESSIONS].create_login_token()
    ok = await first.client.get(f"/?token={token}", allow_redirects=False)
    assert ok.status == 303 and "max-age" in ok.headers["Set-Cookie"].lower()
    cookie = ok.cookies["orchestrator_session"].value
    await first.client.close()

    second = await make_api()  # the same database: a restart
    resp = await second.client.get("/v1/session", cookies={"orchestrator_session": cookie})
    assert resp.status == 200 and (await resp.json())["signed_in"] is True
    fresh = second.client.app[SESSIONS].create_login_token() if second.client.app is not None else ""
    assert (await second.client.get(f"/?token={fresh}", allow_redirects=False)).headers["Location"] == "/"
    again = await second.client.get(f"/?token={fresh}", allow_redirects=False)
    assert again.headers["Location"] == "/#/signin-failed", "a link works once"
    await second.client.close()

    third = await make_api()  # another restart: the link was spent in the store, not only in memory
    spent = await third.client.get(f"/?token={fresh}", allow_redirects=False)
    assert spent.headers["Location"] == "/#/signin-failed", "a link works once, across restarts"
