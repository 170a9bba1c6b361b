"""Browser sessions: a login token URL is traded for an HttpOnly cookie (the Jupyter convention).

The login token is separate from the API key, so the key never reaches the page; it stays valid
for the life of the server process so the printed URL can be opened again.
"""

from __future__ import annotations

import hmac
import secrets


class Sessions:
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        self._login_token = secrets.token_urlsafe(24)
        self._sessions: set[str] = set()

    def create_login_token(self) -> str:
        return self._login_token

    def exchange(self, token: str) -> str | None:
        """A valid login token → a new session id for the cookie; anything else → None."""
        if not token or not hmac.compare_digest(token.encode(), self._login_token.encode()):
            return None
        sid = secrets.token_urlsafe(32)
        self._sessions.add(sid)
        return sid

    def key_for(self, session_id: str) -> str | None:
        """The key a valid session authenticates as (never sent to the browser)."""
        return self._api_key if session_id in self._sessions else None
