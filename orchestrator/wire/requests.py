"""Request bodies, validated with pydantic. These models also generate /v1/openapi.json."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.core.enums import lenient_enum
from orchestrator.wire.limits import ITEMS, MAX_SIZE_BYTES, TEXT, Name

BlockTypeName = Literal[
    "start_document",
    "start_json",
    "note",
    "parse",
    "edit",
    "extract",
    "split",
    "classifier",
    "conditional",
    "api_call",
    "function",
    "while_loop",
    "for_each",
    "merge_dicts",
]


class Body(BaseModel):
    # Every string a client sends is bounded (wire/limits.py); names and filenames more tightly.
    model_config = ConfigDict(extra="ignore", str_max_length=TEXT)


class CreateWorkflow(Body):
    name: Name = "Untitled Workflow"
    description: str = ""
    project_id: str | None = None


class UpdateWorkflow(Body):
    name: Name | None = None
    description: str | None = None


class PublishWorkflow(Body):
    description: str = ""


class Category(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=TEXT)
    name: Name
    description: str = ""
    handle_key: str | None = None


class Subdocument(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=TEXT)
    name: Name
    description: str = ""
    allow_multiple_instances: bool = False
    handle_key: str | None = None


class BlockConfig(BaseModel):
    """The config fields the runner reads; unknown keys are kept (the SDK types config as free-form)."""

    model_config = ConfigDict(extra="allow", str_max_length=TEXT)
    model: Name | None = None
    json_schema: dict[str, Any] | None = None
    instructions: str | None = None
    prompt: str | None = None
    categories: Annotated[list[Category], Field(max_length=ITEMS)] | None = None
    subdocuments: Annotated[list[Subdocument], Field(max_length=ITEMS)] | None = None
    n_consensus: Annotated[int, Field(ge=1, le=15)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    simulation: dict[str, Any] | None = None


class CreateBlock(Body):
    workflow_id: str
    type: BlockTypeName
    id: str | None = None
    label: Name = ""
    position_x: float = 0
    position_y: float = 0
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] | None = None
    parent_id: str | None = None

    _lenient = field_validator("type", mode="before")(lenient_enum)


class UpdateBlock(Body):
    label: Name | None = None
    position_x: float | None = None
    position_y: float | None = None
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] | None = None
    parent_id: str | None = None
    config_mode: Literal["merge", "replace"] | None = None
    type: str | None = None

    _lenient = field_validator("type", "config_mode", mode="before")(lenient_enum)


class ValidateBlockConfig(Body):
    config: dict[str, Any]
    config_mode: Literal["merge", "replace"] = "replace"

    _lenient = field_validator("config_mode", mode="before")(lenient_enum)


class CreateEdge(Body):
    workflow_id: str
    source_block: str
    target_block: str
    id: str | None = None
    source_handle: str | None = None
    target_handle: str | None = None


class CreateUpload(Body):
    filename: Annotated[Name, Field(min_length=1)]
    size_bytes: Annotated[int, Field(ge=0, le=MAX_SIZE_BYTES)]
    content_type: str | None = None
    sha256: str | None = None


class CompleteUpload(Body):
    sha256: str | None = None


class FileRef(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=TEXT)
    id: str | None = None
    original_id: str | None = None
    filename: Name = ""
    mime_type: str = "application/octet-stream"

    @model_validator(mode="after")
    def _has_id(self) -> FileRef:
        if not (self.id or self.original_id):
            raise ValueError("a file reference needs `id`")
        return self


class FileHandleInput(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=TEXT)
    type: Literal["file"] = "file"
    document: FileRef


class JsonHandleInput(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=TEXT)
    type: Literal["json"] = "json"
    data: Any = None


HandleInput = Annotated[FileHandleInput | JsonHandleInput, Field(union_mode="left_to_right")]


# An id the client sends: an empty one is a 422, never "no id" (an empty test_id ran every test).
Id = Annotated[str, Field(min_length=1)]


class BlockTarget(Body):
    type: Literal["block"] = "block"
    block_id: Id


class ManualSource(Body):
    type: Literal["manual"] = "manual"
    handle_inputs: dict[str, HandleInput] = Field(default_factory=dict, max_length=ITEMS)


class RunStepSource(Body):
    type: Literal["run_step"]
    run_id: str
    step_id: str | None = None


Source = Annotated[ManualSource | RunStepSource, Field(discriminator="type")]


class CreateCheck(Body):
    workflow_id: str
    target: BlockTarget
    source: Source
    assertion: dict[str, Any]
    name: Name | None = None


class CreateCheckNested(Body):
    """Seed-era `POST /v1/workflows/{workflow_id}/tests`: the workflow comes from the path."""

    target: BlockTarget
    source: Source
    assertion: dict[str, Any]
    name: Name | None = None


class UpdateCheck(Body):
    name: Name | None = None
    assertion: dict[str, Any] | None = None
    source: Source | None = None


class ScopeSingle(Body):
    type: Literal["single"]
    eval_id: Id | None = None
    test_id: Id | None = None

    @model_validator(mode="after")
    def _one_id(self) -> ScopeSingle:
        if not (self.eval_id or self.test_id):
            raise ValueError("scope single needs `eval_id`")
        if self.eval_id and self.test_id and self.eval_id != self.test_id:
            raise ValueError("scope single names two different checks (`eval_id` and `test_id`); pass one")
        return self


class ScopeBlock(Body):
    type: Literal["block"]
    block_id: Id


class ScopeWorkflow(Body):
    type: Literal["workflow"]


Scope = Annotated[ScopeSingle | ScopeBlock | ScopeWorkflow, Field(discriminator="type")]


class Trigger(Body):
    """What started a run (spec §3.5): `api` unless the caller says otherwise (the page: `manual`)."""

    type: Literal["manual", "api", "schedule", "webhook", "email", "custom", "restart"] = "api"


Consensus = Literal[3, 5, 7]


def _one_selector(body: Any, *names: str) -> None:
    """A run names its checks one way: `scope` (SDK 0.0.143+), or `test_id` (one test) or `target` (a
    block's tests) as the 0.0.142 snapshots and the seeds do, or none of them (the whole workflow). Two
    at once is refused: the second one used to be dropped without a word."""
    given = [n for n in names if getattr(body, n) is not None]
    if len(given) > 1:
        raise ValueError(f"pass at most one of {', '.join(f'`{n}`' for n in names)}; got {' and '.join(given)}")


class CreateEvalRun(Body):
    workflow_id: Id
    scope: Scope | None = None
    # 0.0.142-era flat test-run bodies
    test_id: Id | None = None
    target: BlockTarget | None = None
    n_consensus: Consensus | None = None
    trigger: Trigger | None = None  # the page says `manual` (and `restart` for a re-run); the SDK sends none
    cache: bool | None = None  # false: call every pass (the pass cache is neither read nor written)

    @model_validator(mode="after")
    def _at_most_one(self) -> CreateEvalRun:
        _one_selector(self, "scope", "test_id", "target")
        return self


class CreateTestRunNested(Body):
    """Seed-era `POST /v1/workflows/{workflow_id}/tests/runs`: at most one of test_id / target."""

    test_id: Id | None = None
    target: BlockTarget | None = None
    n_consensus: Consensus | None = None
    cache: bool | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> CreateTestRunNested:
        _one_selector(self, "test_id", "target")
        return self


class ExperimentDocument(Body):
    handle_inputs: Annotated[dict[str, HandleInput], Field(max_length=ITEMS)]
    provenance: dict[str, Any] | None = None


class DocumentCapture(Body):
    run_id: str
    step_id: str | None = None


class CreateExperiment(Body):
    workflow_id: str
    block_id: str | None = None
    name: Name | None = None
    n_consensus: Consensus | None = None
    documents: list[ExperimentDocument] | None = None
    document_captures: list[DocumentCapture] | None = None
    source_experiment_id: str | None = None

    @model_validator(mode="after")
    def _modes(self) -> CreateExperiment:
        if self.source_experiment_id:
            extra = [
                k
                for k in ("block_id", "name", "n_consensus", "documents", "document_captures")
                if getattr(self, k) is not None
            ]
            if extra:
                raise ValueError(f"a duplicate takes only workflow_id and source_experiment_id, not {extra}")
        elif not self.block_id:
            raise ValueError("`block_id` is required unless `source_experiment_id` is given")
        return self


class UpdateExperiment(Body):
    name: Name | None = None
    n_consensus: Consensus | None = None
    documents: list[ExperimentDocument] | None = None
    document_captures: list[DocumentCapture] | None = None


class CreateExperimentRun(Body):
    experiment_id: Id
    workflow_id: Id | None = None
    plan_token: str | None = None
    trigger: Trigger | None = None
    cache: bool | None = None  # false: call every pass (the pass cache is neither read nor written)


class CreateConsensus(Body):
    """`client.consensus.create(inputs, json_schema=None, include_alignment=None)`. The inputs are checked
    by core.consensus.reconcile (objects, how many, how large), which names the offending input."""

    inputs: Any = None
    json_schema: dict[str, Any] | None = None
    include_alignment: bool | None = None


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def duration_s(value: Any) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w`, or a number of seconds (never negative)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf"):
        return float(value)
    match = _DURATION_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a duration such as 30d, 12h, 90m, 45s or 2w, or a number of seconds")
    return float(match[1]) * _DURATION[match[2] or "s"]


class ClearCache(Body):
    """`POST /v1/cache/clear`: the entries of one model (`*` and `?` wildcards) and/or older than a
    duration; every entry when neither is given."""

    model: Annotated[str, Field(min_length=1)] | None = None
    older_than: str | float | None = None

    @field_validator("older_than", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else duration_s(value)  # before coercion: `true` is not a duration
