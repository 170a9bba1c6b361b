"""`matches_regex` patterns, run by RE2: matching time is linear in the text, whatever the pattern.

Python's `re` backtracks: `(a+)+$` against `"a" * 28 + "!"` took 15.6 s (×4 for every 2 more characters)
and froze the process that evaluated it. RE2 has no backtracking, so it cannot run backreferences or
look-arounds; such a pattern (valid for Python, refused by RE2) is refused when the eval is saved
(`unsupported_regex`, a 422), while a pattern no engine can read stays what the spec makes it: a
*blocked* assertion (`invalid_regex`) at run time.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 logs every refused pattern to stderr; the caller reports it instead
_OPTIONS.max_mem = 32 << 20  # a pattern whose automaton needs more (`(a{1000}){1000}`) is refused


class RegexError(ValueError):
    """`unsupported` when Python could run the pattern and RE2 cannot (backreference, look-around...)."""

    def __init__(self, message: str, *, unsupported: bool) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern, or RegexError saying why there is none."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise RegexError(str(exc), unsupported=False) from None
    raise RegexError(
        f"{why} (patterns run in RE2, a linear-time engine without backreferences or look-arounds)",
        unsupported=True,
    )


def search(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None
