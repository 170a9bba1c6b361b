"""The typed values that cross the store's interface, whatever the store.

Resources (workflows, blocks, files, checks, experiments, runs, children) come back as plain rows,
JSON columns already decoded; the runner's hot path and the feed use the typed records below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, NotRequired, Protocol, TypedDict

Row = dict[str, Any]
Order = Literal["asc", "desc"]


@dataclass
class PageRequest:
    limit: int = 50
    order: Order = "desc"
    before: str | None = None
    after: str | None = None


@dataclass
class Page:
    rows: list[Row]
    before: str | None
    after: str | None


class FeedEvent(TypedDict):
    """One committed event of a run's feed: `seq` counts per run, `gseq` across runs, both in commit
    order. `body` holds the run state after the event (`run`) and, for `child.finished`, the child."""

    gseq: int
    run_id: str
    seq: int
    type: str  # progress | child.finished | run.finished
    body: dict[str, Any]
    ts: NotRequired[float | None]  # epoch seconds of the commit (stamped at publish, or read back)


class Broker(Protocol):
    """Where a store hands the events of each transaction, once it has committed."""

    def publish(self, events: Sequence[FeedEvent]) -> None: ...


class ChildStart(NamedTuple):
    child_id: str
    run_id: str
    started_at: str


@dataclass
class ChildFinish:
    """A child's outcome, as the runner hands it to the store's group commit."""

    child_id: str
    run_id: str
    status: str  # completed | error
    verdict: str | None = None
    score: float | None = None
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None  # {"id", "operation", "body"}
    started_at: str | None = None
    completed_at: str | None = None
    check_id: str | None = None
    check_summary: dict[str, Any] | None = None  # latest_run_summary for the saved eval/test
    attempt: int = 0
    stats: dict[str, int] = field(default_factory=dict)  # per-pass counters to add to the run


class ClaimedChild(TypedDict):
    """A child handed to a runner: what it needs to execute, with its saved check's current assertion."""

    id: str
    run_id: str
    position: int
    check_id: str | None
    document_id: str | None
    block_id: str
    block_type: str
    status: str
    attempt: int
    handle_inputs: dict[str, Any]
    assertion: dict[str, Any] | None
