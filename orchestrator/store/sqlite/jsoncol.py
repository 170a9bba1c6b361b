"""JSON columns: orjson in and out, `None` stays SQL NULL."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(raw: str | bytes | None, default: Any = None) -> Any:
    if raw is None:
        return default
    return orjson.loads(raw)
