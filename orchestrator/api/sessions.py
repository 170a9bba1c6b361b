"""Browser sessions: a sign-in link is traded for an HttpOnly cookie (the Jupyter convention).

Both are signed with one secret, so a session needs no server-side state and outlives a restart: an
open tab stays signed in and its feeds reconnect by themselves. The secret is
* for a SQLite store, a random file beside the database (`orchestrator.db.secret`, like the key file);
* for a PostgreSQL store (several API nodes, several machines) or `:memory:`, derived from the first
  API key, which every node already shares: a cookie from one node is valid on every other.

The sign-in link is reusable, never one-time: it keeps working (from any browser) until the secret
is rotated, i.e. the secret file is deleted or, without one, the first API key changes. The API key
itself never reaches the page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.settings import Settings

SESSION_MAX_AGE_S = 30 * 24 * 3600
_DERIVE = b"orchestrator browser sessions v1"


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


class Sessions:
    def __init__(self, api_key: str, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._api_key = api_key
        self._secret = secret
        self._clock = clock

    def create_login_token(self) -> str:
        """The same token for the life of the secret: the printed link can be opened again, anywhere."""
        return _mac(self._secret, "login")

    def exchange(self, token: str) -> str | None:
        """A valid sign-in token → a signed session for the cookie; anything else → None."""
        if not token or not hmac.compare_digest(token.encode(), self.create_login_token().encode()):
            return None
        issued = str(int(self._clock()))
        nonce = secrets.token_urlsafe(12)
        return f"{issued}.{nonce}.{_mac(self._secret, f'session:{issued}:{nonce}')}"

    def key_for(self, session_id: str) -> str | None:
        """The key a valid session authenticates as (never sent to the browser)."""
        issued, _, rest = session_id.partition(".")
        nonce, _, mac = rest.partition(".")
        if not (issued.isdigit() and nonce and mac):
            return None
        if not hmac.compare_digest(mac.encode(), _mac(self._secret, f"session:{issued}:{nonce}").encode()):
            return None
        if self._clock() - int(issued) > SESSION_MAX_AGE_S:
            return None
        return self._api_key
