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


@dataclass(frozen=True)
class ScoreCursor:
    """Where a page of an experiment run's scored documents starts: after `position` (document order), or
    after (`score`, `position`) when `by_score` (worst first). The wire form is opaque: `p:12`, `s:0.5:12`."""

    by_score: bool = False
    score: float | None = None
    position: int = -1

    @classmethod
    def parse(cls, by_score: bool, after: str | None) -> ScoreCursor:
        """Raises ValueError for a cursor this server did not make (or made for the other order)."""
        if not after:
            return cls(by_score)
        kind, _, rest = after.partition(":")
        if by_score and kind == "s":
            score, _, position = rest.rpartition(":")
            return cls(True, float(score), int(position))
        if not by_score and kind == "p":
            return cls(False, None, int(rest))
        raise ValueError(f"not a cursor of this list: {after!r}")

    @staticmethod
    def after_row(by_score: bool, row: Row) -> str:
        return f"s:{float(row['score'])!r}:{int(row['position'])}" if by_score else f"p:{int(row['position'])}"


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
    digest: dict[str, Any] | None = None  # an experiment child's metrics digest (core.metrics.digest)
    artifact: dict[str, Any] | None = None  # {"id", "operation", "body"}
    started_at: str | None = None
    completed_at: str | None = None
    check_id: str | None = None
    check_summary: dict[str, Any] | None = None  # latest_run_summary for the saved eval/test
    attempt: int = 0
    stats: dict[str, int] = field(default_factory=dict)  # per-pass counters to add to the run
    cache_puts: list[CacheEntry] = field(default_factory=list)  # new pass outputs for the pass cache
    cache_touches: list[str] = field(default_factory=list)  # keys of cached passes used: their LRU stamp moves


@dataclass(frozen=True)
class CacheEntry:
    """The new passes of one request for the pass cache, as the runner hands them to the group commit.
    `passes_json` is `{"<pass index>": {"o": output, "p": prompt tokens, "c": completion tokens}, ...}`
    encoded (UTF-8 JSON); the store writes it as is, or merges it into the entry of the same key, whose
    passes stay as they are. One row per request, not per pass: a child's n passes are one row to write
    and one to read."""

    key: str  # sha256 hex of the engine, its full request and the input documents' sha256 (not the pass index)
    engine: str
    model: str
    passes_json: bytes
    passes: int  # how many passes passes_json holds

    @property
    def size(self) -> int:
        return len(self.passes_json) + ENTRY_OVERHEAD


# What an entry costs beyond its passes in the size bound: the key (twice, with its index), the other
# columns and the row's bookkeeping, about.
ENTRY_OVERHEAD = 200


@dataclass(frozen=True)
class CachedPass:
    """A pass output read back from the pass cache: pass `index` of the request `key`."""

    key: str
    index: int
    engine: str
    model: str
    output: Any
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: float  # epoch seconds, of the entry (the request's first cached pass)
    last_used_at: float


@dataclass(frozen=True)
class CacheStats:
    entries: int  # cached passes
    bytes: int
    hits: int  # passes served from the cache since it was created or last cleared whole
    misses: int  # passes looked up and not found
    oldest: float | None  # created_at of the oldest entry (epoch seconds)
    models: list[dict[str, Any]]  # per model: {"model", "engine", "entries" (passes), "bytes"}


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
    cache_enabled: NotRequired[bool]  # False: the run neither reads nor writes the pass cache
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
