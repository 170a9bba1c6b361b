"""A run as one worker feeds it: the children it holds in a buffer, and how many it claims at once.

A page holds about HOLD_S of this worker's work on the run, from the rate at which it took the last
page's children: a fast run claims up to PAGE at once (fewer claim transactions), a slow one about what
its slots can run at once. What a worker holds, the other workers cannot run: at a run's end the
workers finish within about HOLD_S of each other. The next page is claimed when half a page is left,
so the slots never wait on it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import anyio

from orchestrator.runner.context import RunContext
from orchestrator.runner.passcache import Prepared
from orchestrator.store.records import ClaimedChild

PAGE = 256  # the largest page of children claimed at once
HOLD_S = 0.05


@dataclass(eq=False)
class ActiveRun:
    ctx: RunContext
    buffer: deque[ClaimedChild] = field(default_factory=deque)
    exhausted: bool = False
    refilling: bool = False
    page: int = PAGE
    claimed_at: float = 0.0
    taken: int = 0  # children picked since the last claim: the rate that sizes the next page
    in_flight: int = 0
    scopes: set[anyio.CancelScope] = field(default_factory=set)
    cancelled: bool = False
    prepared: dict[str, Prepared] = field(default_factory=dict)  # buffered children's pass cache look-ups

    @property
    def id(self) -> str:
        return str(self.ctx.run["id"])

    @property
    def wants_more(self) -> bool:
        """Half a page left (a page of 1: none): time to claim the next one."""
        return 2 * len(self.buffer) <= self.page


def min_page(slots: int, passes_per_child: int) -> int:
    """The first page, and the smallest: the children whose passes all fit in this worker's slots at
    once. A small run with an engine that waits spreads over the workers from its first claims,
    instead of queueing for one worker's share of the slots."""
    return max(1, min(PAGE, slots // max(1, passes_per_child)))


def next_page(taken: int, elapsed_s: float, smallest: int, current: int) -> int:
    """HOLD_S of work at the rate the last page went (`taken` children in `elapsed_s`), at most twice the
    last page: a page of one child taken the instant it arrived says nothing about the rate (it measures
    one free slot, not the engine), and a burst estimate would claim a whole page that the other workers
    then cannot run. Doubling still reaches PAGE within eight claims on a fast run."""
    if not taken or elapsed_s <= 0:
        return current
    return max(smallest, min(PAGE, 2 * current, int(taken / elapsed_s * HOLD_S)))
