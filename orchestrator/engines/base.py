"""The contract between the runner and whatever executes one model pass.

Engines never touch the store, the feed or the HTTP API: they get a fully resolved
`PassRequest` (documents already turned into text/pages/images) and return a `PassOutput`
or raise an `EngineError` whose `kind` tells the runner whether to retry and what to count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

BlockType = Literal["extract", "classifier", "split"]

ErrorKind = Literal[
    "rate_limited",  # provider said 429: transient, honour retry_after
    "timeout",  # the pass took longer than allowed: transient
    "provider",  # 5xx / connection error (transient) or other 4xx (permanent)
    "unparseable",  # the model answered but the output is not valid for the block: permanent
    "config",  # block config unusable by this engine (e.g. model_not_configured): permanent
    "input",  # the inputs cannot be read (unsupported document type...): permanent
    "simulated",  # an error injected by the simulated engine (error_rate / transient_error_rate)
]


@dataclass(frozen=True)
class Document:
    """A document as engines see it. Built by `engines.documents.load_document`."""

    filename: str
    mime_type: str
    content_id: str  # first 16 hex of sha256(bytes): stable identity of the content
    text: str  # whole text ("" for images)
    pages: tuple[str, ...]  # text per page; a non-paged document has exactly one page
    images: tuple[bytes, ...] = ()  # raw image bytes for image documents (vision models)
    page_count: int = 1
    sha256: str = ""  # sha256 hex of the bytes, set by the runner when it loads the file: the pass cache's key


@dataclass(frozen=True)
class JsonInput:
    """A JSON handle input (`{"type": "json", "data": ...}`)."""

    data: Any


HandleValue = Document | JsonInput


@dataclass(frozen=True)
class PassRequest:
    block_id: str
    block_type: BlockType
    config: Mapping[str, Any]  # the block's draft config (model, json_schema, instructions, categories, ...)
    inputs: Mapping[str, HandleValue]  # handle id -> value
    pass_index: int  # 0 .. n_passes-1
    n_passes: int  # n_consensus in force for this child (temperature > 0 when > 1)
    seed: int = 0  # run-level seed; the simulated engine mixes it into its determinism


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass
class PassOutput:
    """One pass's output.

    extract    -> dict matching the block's json_schema
    classifier -> {"category": str, "reasoning": str}
    split      -> [{"name": str, "pages": [int, ...]}, ...]  (1-based pages)
    """

    output: Any
    engine: str  # "simulated" | "python" | "openai"
    model: str  # the model name the block asked for
    usage: Usage | None = None


@dataclass(frozen=True)
class JudgeRequest:
    """An `llm_judged_as` / `llm_not_judged_as` question asked through the block's engine."""

    config: Mapping[str, Any]  # the block config (to pick the model)
    rubric: str
    value: Any  # the value under judgement
    expected_label: str | None


@dataclass
class JudgeAnswer:
    label: str  # the label the judge gave (e.g. "pass"/"fail" or one of the rubric's labels)
    passed: bool  # whether the judge considers the rubric satisfied
    reasoning: str = ""
    engine: str = ""
    decided: bool = True  # False: the judge could not decide; the assertion is then blocked, not passed


@dataclass
class EngineError(Exception):
    kind: ErrorKind
    code: str  # stable machine code, e.g. "model_not_configured", "rate_limited", "unsupported_document"
    message: str
    transient: bool = False  # True -> the runner retries with backoff
    retry_after: float | None = None  # seconds, from Retry-After
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@runtime_checkable
class Engine(Protocol):
    """What the runner calls. An engine may also have `immediate(config) -> bool`: True when a pass with
    this config never waits on anything (no I/O, no sleep), so the runner runs a child's passes one after
    the other in its own task, without a task, timeout or task group per pass (their cost is most of a
    zero-latency pass). Without it, or False, passes run concurrently under a timeout.

    An engine may also have `cache_identity(request) -> object | None`: everything its call for `request`
    depends on except the pass index, as a JSON value — the full request it would send (messages, schema,
    temperature, other parameters, the endpoint and the model it names; never a key or secret) — or None
    when its passes must not be cached. What differs between passes must follow from the pass index, which
    the runner adds, with the input documents' sha256, to make each pass's key in the pass cache. Without
    the method, the engine's passes are never cached."""

    name: str

    async def run_pass(self, request: PassRequest) -> PassOutput: ...

    async def judge(self, request: JudgeRequest) -> JudgeAnswer: ...

    async def aclose(self) -> None: ...
