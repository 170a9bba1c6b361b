"""Enum values as clients send them."""

from __future__ import annotations

from typing import Any


def lenient_enum(value: Any) -> Any:
    """An enum-valued field or parameter, however the SDK rendered it: a member (`Op.GTE`), its `str()`
    (`"LengthCompareConditionOp.GTE"`) or its name (`"GTE"`) all read as `"gte"`. Anything that is not
    a string is returned as is. Only for enum-valued inputs: free text such as `Alpha.txt` would be mangled."""
    raw = getattr(value, "value", value)
    if isinstance(raw, str):
        return raw.rsplit(".", 1)[-1].strip().lower()
    return raw
