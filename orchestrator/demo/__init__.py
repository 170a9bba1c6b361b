"""The Invoice demo workflow created on first start (filled in by the quickstart work)."""

from __future__ import annotations

from typing import Any


async def ensure_demo(services: Any) -> None:
    return None
