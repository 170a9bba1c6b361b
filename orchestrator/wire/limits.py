"""Size limits every request body meets before a model sees it: one JSON depth, string and list lengths.

Deep nesting is refused at the edge (422) because everything downstream recurses: at 253 levels a
block config made publish and every run of its workflow fail with a 500 until the block was deleted.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

MAX_DEPTH = 64  # nesting of any JSON value in a request body
NAME = 1_000  # names, labels, filenames, descriptions of one line
TEXT = 100_000  # free text: descriptions, instructions, rubrics
ID = 256  # ids and short codes the client sends
ITEMS = 10_000  # entries of a list or map a client writes by hand (categories, handle inputs ...)
MAX_SIZE_BYTES = 1 << 53  # `size_bytes`: the largest integer JSON clients keep exact

Name = Annotated[str, Field(max_length=NAME)]
Text = Annotated[str, Field(max_length=TEXT)]
ShortId = Annotated[str, Field(max_length=ID)]


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests objects/arrays more than `limit` levels (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
