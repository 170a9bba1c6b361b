"""A module a block names but the operator did not allow: the allowlist test checks it is never imported."""

from __future__ import annotations

from typing import Any


def extract(config: Any, inputs: Any, pass_index: int) -> dict[str, Any]:
    return {"imported": True}
