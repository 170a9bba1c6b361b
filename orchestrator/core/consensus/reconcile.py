"""POST /v1/consensus (`client.consensus.create`): reconcile several objects into one with the very engine
the runs use (`reduce_extract`), so the same passes give the same consensus whichever way they arrive.

The SDK's ReconciliationResult: the consensus object, a flat map of leaf path → likelihood, one field
per leaf (with how many inputs support its value), and the alignment (the reference input, each input
re-ordered onto the consensus, and where each consensus leaf was in every input).

Limits (the reduction is superlinear in list length, and runs in a worker thread): 2 to MAX_INPUTS
objects, at most MAX_INPUT_BYTES of JSON in all, lists of at most MAX_LIST_ITEMS items.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.core.consensus.extract import reduce_extract_traced
from orchestrator.core.consensus.vote import similarity
from orchestrator.errors import PayloadTooLarge, Unprocessable
from orchestrator.ids import canonical_json

MIN_INPUTS = 2
MAX_INPUTS = 15  # a block's n_consensus is at most 15 (planning.effective_n): the same bound here
MAX_INPUT_BYTES = 1024 * 1024
MAX_LIST_ITEMS = 200  # 5 inputs × 200 list items reduce in about a second; the cost grows ~ n²


@dataclass(frozen=True)
class ReconciledField:
    path: str
    value: Any
    likelihood: float
    supporting_input_count: int
    total_input_count: int


@dataclass(frozen=True)
class Alignment:
    reference_index: int
    aligned_inputs: list[Any] | None = None
    path_alignments: list[tuple[str, list[str | None]]] | None = None


@dataclass(frozen=True)
class Reconciliation:
    consensus: dict[str, Any]
    likelihoods: dict[str, float]
    fields: list[ReconciledField]
    alignment: Alignment


def _invalid(message: str, loc: list[Any], kind: str, **details: Any) -> Unprocessable:
    error = {"loc": loc, "msg": message, "type": kind}
    return Unprocessable(message, code="invalid_consensus_inputs", details={"errors": [error], **details})


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else type(value).__name__


def _longest_list(value: Any) -> tuple[int, str]:
    """(length, path) of the longest list anywhere in `value` (iterative: no recursion limit to hit)."""
    best, where = 0, ""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in node.items())
        elif isinstance(node, list):
            if len(node) > best:
                best, where = len(node), path
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(node))
    return best, where


def validate_inputs(inputs: Any, json_schema: Any = None) -> list[dict[str, Any]]:
    """The inputs as a list of objects, or a 422 (413 when too large) saying what is wrong where."""
    if inputs is None:
        raise _invalid("`inputs` is required: a list of at least 2 objects", ["body", "inputs"], "missing")
    if not isinstance(inputs, list):
        raise _invalid(f"`inputs` must be a list of objects, not {_type_name(inputs)}", ["body", "inputs"], "list_type")
    if json_schema is not None and not isinstance(json_schema, dict):
        raise _invalid("`json_schema` must be an object", ["body", "json_schema"], "dict_type")
    if len(inputs) < MIN_INPUTS:
        raise _invalid(
            f"consensus needs at least {MIN_INPUTS} inputs, got {len(inputs)}", ["body", "inputs"], "too_short"
        )
    if len(inputs) > MAX_INPUTS:
        raise _invalid(
            f"consensus takes at most {MAX_INPUTS} inputs (a block's largest n_consensus), got {len(inputs)}",
            ["body", "inputs"],
            "too_long",
        )
    wrong = [(i, _type_name(v)) for i, v in enumerate(inputs) if not isinstance(v, dict)]
    if wrong:
        listed = ", ".join(f"inputs[{i}] is {t}" for i, t in wrong[:5])
        errors = [
            {"loc": ["body", "inputs", i], "msg": f"expected an object, got {t}", "type": "dict_type"} for i, t in wrong
        ]
        raise Unprocessable(
            f"every input must be a JSON object (the outputs of one extraction); {listed}",
            code="invalid_consensus_inputs",
            details={"errors": errors, "input_types": [_type_name(v) for v in inputs]},
        )
    size = len(canonical_json(inputs))
    if size > MAX_INPUT_BYTES:
        raise PayloadTooLarge(
            f"consensus inputs hold {size} bytes of JSON; the limit is {MAX_INPUT_BYTES}",
            code="consensus_inputs_too_large",
            details={"bytes": size, "max_bytes": MAX_INPUT_BYTES},
        )
    for i, value in enumerate(inputs):
        longest, where = _longest_list(value)
        if longest > MAX_LIST_ITEMS:
            raise PayloadTooLarge(
                f"inputs[{i}].{where} has {longest} items; consensus aligns lists of at most {MAX_LIST_ITEMS}",
                code="consensus_inputs_too_large",
                details={"input_index": i, "path": where, "items": longest, "max_items": MAX_LIST_ITEMS},
            )
    return inputs


def _project(value: Any, likelihood: Any, votes: Iterator[Any]) -> Any:
    """The consensus shape with each leaf replaced by one input's vote, in the order the engine voted the
    leaves (its rows' order): a float in the likelihood tree marks a leaf, whatever the value's type."""
    if isinstance(likelihood, dict):
        return {k: _project(value.get(k), likelihood[k], votes) for k in likelihood}
    if isinstance(likelihood, list):
        return [_project(v, sub, votes) for v, sub in zip(value, likelihood, strict=True)]
    return next(votes)


def reconcile(
    inputs: Sequence[Mapping[str, Any]],
    json_schema: Mapping[str, Any] | None = None,
    *,
    include_alignment: bool = False,
) -> Reconciliation:
    """The consensus of validated inputs (see `validate_inputs`)."""
    n = len(inputs)
    value, likelihoods, rows, _score, sources = reduce_extract_traced(list(inputs), json_schema or None)
    voted = [row for row in rows if row["path"] is not None]
    fields = [
        ReconciledField(
            path=str(row["path"]),
            value=row["consensus"],
            likelihood=row["score"],
            # likelihood = supporting inputs / n (spec §4.3), so this is exact.
            supporting_input_count=round(row["score"] * n),
            total_input_count=n,
        )
        for row in voted
    ]
    flat = {f.path: f.likelihood for f in fields}
    consensus = value if isinstance(value, dict) else {}
    # The reference: the input closest to the consensus (ties: the first), as Retab's alignment names one.
    closeness = [similarity(dict(i), consensus) for i in inputs]
    reference = max(range(n), key=lambda i: (closeness[i], -i))
    if not include_alignment:
        return Reconciliation(consensus, flat, fields, Alignment(reference))
    aligned = [_project(value, likelihoods, iter([row["votes"][i] for row in voted])) for i in range(n)]
    paths = [(row["path"] or "", list(src)) for row, src in zip(voted, sources, strict=True)]
    return Reconciliation(consensus, flat, fields, Alignment(reference, aligned, paths))
