"""Browser sessions: a one-time token URL is traded for an HttpOnly cookie (the Jupyter convention)."""

from __future__ import annotations

import secrets


class Sessions:
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        self._sessions: set[str] = set()

    def create(self) -> str:
        sid = secrets.token_urlsafe(32)
        self._sessions.add(sid)
        return sid

    def key_for(self, session_id: str) -> str | None:
        """The key a valid session authenticates as (never sent to the browser)."""
        return self._api_key if session_id in self._sessions else None
