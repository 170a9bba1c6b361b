"""The typed values that cross the store's interface, whatever the store.

Resources (workflows, blocks, files, checks, experiments, runs, children) come back as plain rows,
JSON columns already decoded; the runner's hot path and the feed use the typed records below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NamedTuple, NotRequired, Protocol, TypedDict, TypeVar

from orchestrator.core.planning import DocumentSet

Row = dict[str, Any]
Record = Mapping[str, Any]  # any stored row or typed record, read-only (what renderers take)
T = TypeVar("T")
Order = Literal["asc", "desc"]


@dataclass
class PageRequest:
    limit: int = 50
    order: Order = "desc"
    before: str | None = None
    after: str | None = None


@dataclass
class Page(Generic[T]):
    rows: list[T]
    before: str | None
    after: str | None


# An experiment's documents as a store takes them: a validated, encoded set (what the API builds while it
# parses a request), or plain `{"handle_inputs", "provenance"}` mappings (tests, tools).
Documents = DocumentSet | Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class FileQuery:
    """A listing of complete files: a filename substring, a MIME type, a creation window (ISO)."""

    filename: str | None = None
    mime_type: str | None = None
    from_date: str | None = None
    to_date: str | None = None


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


class ChildKeys(TypedDict):
    """What every view of a child has: which run, which position, what it runs on, how far it got."""

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


class ClaimedChild(ChildKeys):
    """A child handed to a runner: what it needs to execute, with its saved check's current assertion."""

    assertion: dict[str, Any] | None


class RunRecord(TypedDict):
    """A run as stored (JSON columns decoded): what it runs, its state and counts, its feed position."""

    n: int
    id: str
    kind: str  # eval | test | experiment
    workflow_id: str
    workflow_version_id: str
    workflow_name: str
    experiment_id: str | None
    block_id: str | None
    block_type: str | None
    check_id: str | None
    scope: dict[str, Any] | None
    n_consensus: int | None
    status: str
    error: dict[str, Any] | None
    cancel_reason: str | None
    trigger_type: str
    seed: int
    total: int
    c_pending: int
    c_queued: int
    c_running: int
    c_completed: int
    c_error: int
    c_cancelled: int
    o_passed: int
    o_failed: int
    o_blocked: int
    score_sum: float
    score: float | None
    fingerprints: dict[str, Any]
    stats: dict[str, Any]
    last_seq: int
    created_at: str
    started_at: str | None
    completed_at: str | None


class ResultRecord(ChildKeys):
    """A child of a run as stored: an eval/test result or an experiment document's result."""

    n: int
    verdict: str | None
    error: dict[str, Any] | None
    cancel_reason: str | None
    score: float | None
    result: dict[str, Any] | None
    artifact_id: str | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    lease_owner: str | None
    lease_expires: float | None
    # with the run it belongs to, when read by id (and filled in by the readers that render it)
    run_kind: NotRequired[str]
    workflow_id: NotRequired[str | None]
    experiment_id: NotRequired[str | None]


class ArtifactRecord(TypedDict):
    """One child's artifact: every pass's output (`consensus.choices`) and the likelihoods."""

    n: int
    id: str
    run_id: str
    child_id: str
    operation: str
    body: dict[str, Any]
    created_at: str
