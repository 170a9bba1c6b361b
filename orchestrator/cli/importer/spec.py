"""The declarative import file: load YAML, validate it, resolve document paths. No network here.

Everything that can be checked offline is checked before the server is touched, so a typo costs
nothing and the message names the place in the file (`evals[3].condition.kind: …`).
"""

from __future__ import annotations

import glob
import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.core.planning import RUNNABLE_TYPES
from orchestrator.wire import requests as rq
from orchestrator.wire.blocks import BlockConfigError, validate_block_config
from orchestrator.wire.conditions import validate_assertion

DEFAULT_HANDLE = "input-file-document"
DEFAULT_OUTPUT = "output-json-0"


class SpecError(Exception):
    """The import file is invalid; the message is meant for the user as is."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WorkflowSpec(_Strict):
    id: str | None = None
    name: Annotated[str, Field(min_length=1)]
    description: str = ""


class BlockSpec(_Strict):
    id: str | None = None
    label: Annotated[str, Field(min_length=1)]
    type: rq.BlockTypeName
    config: dict[str, Any] = Field(default_factory=dict)
    position_x: float | None = None
    position_y: float | None = None


class FileInputSpec(_Strict):
    file: Annotated[str, Field(min_length=1)]


class JsonInputSpec(_Strict):
    json_: Any = Field(default=None, alias="json")


InputSpec = FileInputSpec | JsonInputSpec


class _HasInputs(_Strict):
    document: str | None = None
    inputs: dict[str, InputSpec] | None = None

    def input_specs(self) -> dict[str, InputSpec]:
        if self.document is not None:
            return {DEFAULT_HANDLE: FileInputSpec(file=self.document)}
        return dict(self.inputs or {})


class EvalSpec(_HasInputs):
    name: Annotated[str, Field(min_length=1)]
    block: str | None = None
    output: str = DEFAULT_OUTPUT
    path: str | None = None
    label: str | None = None
    condition: dict[str, Any]

    @model_validator(mode="after")
    def _one_source(self) -> EvalSpec:
        if (self.document is None) == (self.inputs is None):
            raise ValueError("give exactly one of `document` (a file path) or `inputs` (handle → {file|json})")
        return self


class ExperimentDocSpec(_HasInputs):
    @model_validator(mode="after")
    def _one_source(self) -> ExperimentDocSpec:
        if (self.document is None) == (self.inputs is None):
            raise ValueError("give exactly one of `document` or `inputs`")
        return self


class ExperimentSpec(_Strict):
    name: Annotated[str, Field(min_length=1)]
    block: str | None = None
    n_consensus: Literal[3, 5, 7] = 3
    # A path or glob (relative to the YAML file), or {document|inputs} for several handles.
    documents: Annotated[list[str | ExperimentDocSpec], Field(min_length=1)]


class ImportFile(_Strict):
    version: Literal[1] = 1
    workflow: WorkflowSpec
    blocks: list[BlockSpec] = Field(default_factory=list)
    evals: list[EvalSpec] = Field(default_factory=list)
    experiments: list[ExperimentSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class LocalFile:
    path: Path
    filename: str
    mime_type: str
    data: bytes
    sha256: str


# Resolved handle inputs: handle → ("file", LocalFile) | ("json", data)
Inputs = dict[str, tuple[str, Any]]


@dataclass
class EvalPlan:
    name: str
    block: str  # a block label of the file
    inputs: Inputs
    assertion: dict[str, Any]


@dataclass
class ExperimentPlan:
    name: str
    block: str
    n_consensus: int
    documents: list[Inputs]


@dataclass
class ImportPlan:
    source: Path
    workflow: WorkflowSpec
    blocks: list[BlockSpec]
    evals: list[EvalPlan] = field(default_factory=list)
    experiments: list[ExperimentPlan] = field(default_factory=list)

    @property
    def files(self) -> list[LocalFile]:
        seen: dict[str, LocalFile] = {}
        for inputs in [e.inputs for e in self.evals] + [d for x in self.experiments for d in x.documents]:
            for kind, value in inputs.values():
                if kind == "file":
                    seen.setdefault(str(value.path), value)
        return list(seen.values())


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: `2026-03-04` stays the string JSON needs."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _union_tag(part: int | str) -> bool:
    """Pydantic's names of union branches (`FileInputSpec`, `str`, `function-after[…]`): noise in a location."""
    if not isinstance(part, str):
        return False
    return part[:1].isupper() or part in _SCALAR_TAGS or "[" in part or part.startswith("constrained-")


_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _format_errors(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors(include_url=False)[:10]:
        loc = tuple(p for p in err["loc"] if not _union_tag(p))
        where = _loc(loc)
        lines.append(f"{prefix}{'.' if prefix and where[:1] != '[' else ''}{where}: {err['msg']}")
    return "\n  ".join(dict.fromkeys(lines))


def _read(path: Path, base: Path, cache: dict[Path, LocalFile]) -> LocalFile:
    full = (base / path).resolve()
    if full in cache:
        return cache[full]
    try:
        data = full.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read document {str(path)!r} (looked at {full}): {exc.strerror or exc}") from exc
    mime = mimetypes.guess_type(full.name)[0] or "application/octet-stream"
    cache[full] = LocalFile(full, full.name, mime, data, hashlib.sha256(data).hexdigest())
    return cache[full]


def _inputs(specs: dict[str, InputSpec], base: Path, cache: dict[Path, LocalFile], where: str) -> Inputs:
    if not specs:
        raise SpecError(f"{where}: `inputs` is empty")
    out: Inputs = {}
    for handle, spec in specs.items():
        if isinstance(spec, FileInputSpec):
            out[handle] = ("file", _read(Path(spec.file), base, cache))
        else:
            out[handle] = ("json", spec.json_)
    return out


def _expand(pattern: str, base: Path, where: str) -> list[str]:
    if not any(ch in pattern for ch in "*?["):
        return [pattern]
    matches = sorted(glob.glob(str(base / pattern), recursive=True))
    files = [str(Path(m).relative_to(base)) if Path(m).is_relative_to(base) else m for m in matches]
    files = [f for f in files if (base / f).is_file()]
    if not files:
        raise SpecError(f"{where}: the pattern {pattern!r} matches no file (relative to {base})")
    return files


def _block_ref(ref: str | None, blocks: list[BlockSpec], where: str) -> str:
    if ref is None:
        runnable = [b.label for b in blocks if b.type in RUNNABLE_TYPES]
        if len(runnable) != 1:
            raise SpecError(f"{where}: say which block with `block:` (the file has {len(runnable)} runnable blocks)")
        return runnable[0]
    for b in blocks:
        if ref in (b.label, b.id):
            return b.label
    labels = ", ".join(repr(b.label) for b in blocks) or "none"
    raise SpecError(f"{where}: unknown block {ref!r} (blocks in this file: {labels})")


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise SpecError(f"two {what} are named {n!r}; names are how re-imports find them, so keep them unique")
        seen.add(n)


def _check_block(block: BlockSpec, where: str) -> None:
    """The server's own checks of a block config (the same validator), done before anything is written."""
    try:
        validate_block_config(block.type, block.config)
    except BlockConfigError as exc:
        if exc.validation is not None:
            raise SpecError(f"invalid block config:\n  {_format_errors(exc.validation, where + '.config')}") from exc
        raise SpecError(f"{where}.{exc.message}") from exc


def parse(raw: Any, source: Path) -> ImportPlan:
    """Validate loaded YAML and resolve every document; raises SpecError with a precise message."""
    try:
        return _parse(raw, source)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from exc


def _parse(raw: Any, source: Path) -> ImportPlan:
    try:
        spec = ImportFile.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"invalid import file:\n  {_format_errors(exc)}") from exc
    for i, block in enumerate(spec.blocks):
        _check_block(block, f"blocks[{i}] ({block.label})")
    _unique([b.label for b in spec.blocks], "blocks")
    _unique([e.name for e in spec.evals], "evals")
    _unique([x.name for x in spec.experiments], "experiments")
    base = source.parent
    cache: dict[Path, LocalFile] = {}
    plan = ImportPlan(source=source, workflow=spec.workflow, blocks=spec.blocks)
    for i, ev in enumerate(spec.evals):
        where = f"evals[{i}] ({ev.name})"
        raw_assertion: dict[str, Any] = {
            "target": {"output_handle_id": ev.output, "path": ev.path},
            "condition": ev.condition,
        }
        if ev.label is not None:
            raw_assertion["label"] = ev.label
        try:
            assertion = validate_assertion(raw_assertion)
        except ValidationError as exc:
            raise SpecError(f"invalid condition:\n  {_format_errors(exc, where)}") from exc
        assertion.pop("id", None)  # the server's id is kept across re-imports
        plan.evals.append(
            EvalPlan(
                ev.name,
                _block_ref(ev.block, spec.blocks, where),
                _inputs(ev.input_specs(), base, cache, where),
                assertion,
            )
        )
    for i, ex in enumerate(spec.experiments):
        where = f"experiments[{i}] ({ex.name})"
        docs: list[Inputs] = []
        for entry in ex.documents:
            if isinstance(entry, str):
                docs += [
                    _inputs({DEFAULT_HANDLE: FileInputSpec(file=f)}, base, cache, where)
                    for f in _expand(entry, base, where)
                ]
            else:
                docs.append(_inputs(entry.input_specs(), base, cache, where))
        plan.experiments.append(ExperimentPlan(ex.name, _block_ref(ex.block, spec.blocks, where), ex.n_consensus, docs))
    return plan


def load(path: str | Path) -> ImportPlan:
    source = Path(path)
    try:
        with source.open(encoding="utf-8") as stream:  # a named stream: YAML errors cite the file and line
            raw = yaml.load(stream, Loader=_Loader)  # _Loader is a SafeLoader
    except OSError as exc:
        raise SpecError(f"cannot read {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source} is not UTF-8 text: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a mapping with `workflow:`, `blocks:`, `evals:`, `experiments:`")
    return parse(raw, source.resolve())
