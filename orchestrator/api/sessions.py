"""Browser sessions: a sign-in link is traded for an HttpOnly cookie (the Jupyter convention).

Both are signed with one secret, so a session needs no server-side state and outlives a restart: an
open tab stays signed in and its feeds reconnect by themselves. The secret is
* for a SQLite store, a random file beside the database (`orchestrator.db.secret`, like the key file);
* for a PostgreSQL store (several API nodes, several machines) or `:memory:`, derived from the first
  API key, which every node already shares: a cookie from one node is valid on every other.

A sign-in link carries its own issue time and nonce: it works once (its nonce is spent in the store,
so neither another API node nor this one after a restart takes it again) and only within `signin_ttl_s`
of being made; `serve` prints a fresh one at every start and `POST /v1/session/link` (API key only)
makes another. A session lasts `session_ttl_h`. Deleting the secret (or changing the first key, without
a secret file) signs every browser out. The API key itself never reaches the page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from orchestrator.settings import Settings

SESSION_MAX_AGE_S = 7 * 24 * 3600  # the default of the `session_ttl_h` setting
SIGNIN_TTL_S = 900.0  # the default of `signin_ttl_s`
_DERIVE = b"orchestrator browser sessions v1"
Spend = Callable[[str, float], Awaitable[bool]]  # (nonce, expires_at epoch s) → spent now (False: before)


def secret_file(settings: Settings) -> Path | None:
    """Where the SQLite store keeps the secret; None for a store that is not one local file."""
    if settings.db == ":memory:" or settings.db.startswith(("postgresql://", "postgres://")):
        return None
    return Path(settings.db + ".secret")


def session_secret(settings: Settings) -> bytes:
    """The signing secret: read from (or created in) the file beside the database, else derived from
    the first API key (see the module docstring for which and why)."""
    path = secret_file(settings)
    if path is None:
        return hmac.new(settings.api_keys[0].encode(), _DERIVE, hashlib.sha256).digest()
    if path.exists():
        text = path.read_text().strip()
        if text:
            return text.encode()
    text = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    path.chmod(0o600)
    return text.encode()


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _signed(secret: bytes, purpose: str, issued: int, nonce: str) -> str:
    return f"{issued}.{nonce}.{_mac(secret, f'{purpose}:{issued}:{nonce}')}"


def _verify(secret: bytes, purpose: str, token: str) -> tuple[int, str] | None:
    """(issue time, nonce) of a well-signed token, else None."""
    issued, _, rest = token.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued.isdigit() and nonce and mac):
        return None
    if not hmac.compare_digest(mac.encode(), _mac(secret, f"{purpose}:{issued}:{nonce}").encode()):
        return None
    return int(issued), nonce


class Sessions:
    def __init__(
        self,
        api_key: str,
        secret: bytes,
        *,
        clock: Callable[[], float] = time.time,
        signin_ttl_s: float = SIGNIN_TTL_S,
        session_ttl_s: float = SESSION_MAX_AGE_S,
    ) -> None:
        self._api_key = api_key
        self._secret = secret
        self._clock = clock
        self.signin_ttl_s = signin_ttl_s
        self.session_ttl_s = session_ttl_s

    def create_login_token(self) -> str:
        """A new sign-in token, valid once within `signin_ttl_s`."""
        return _signed(self._secret, "login", int(self._clock()), secrets.token_urlsafe(12))

    async def exchange(self, token: str, spend: Spend) -> str | None:
        """A valid, unexpired, unused sign-in token → a signed session for the cookie; anything else → None.
        `spend(nonce, expires_at)` spends the link in the store (False: spent already, by any API node,
        before a restart or not)."""
        now = self._clock()
        found = _verify(self._secret, "login", token) if token else None
        if found is None:
            return None
        issued, nonce = found
        if not 0 <= now - issued <= self.signin_ttl_s or not await spend(nonce, issued + self.signin_ttl_s):
            return None
        return _signed(self._secret, "session", int(now), secrets.token_urlsafe(12))

    def key_for(self, session_id: str) -> str | None:
        """The key a valid, unexpired session authenticates as (never sent to the browser)."""
        found = _verify(self._secret, "session", session_id)
        if found is None or not 0 <= self._clock() - found[0] <= self.session_ttl_s:
            return None
        return self._api_key
