"""Request models that validate AssertionSpec / condition bodies (spec §2.6).

Validation only: the stored form is the normalised JSON dict returned by
``validate_assertion``, which ``orchestrator.core.assertions`` evaluates.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt

from orchestrator.core.assertions.regex import RegexError, compile_pattern
from orchestrator.core.enums import lenient_enum
from orchestrator.wire.limits import TEXT


def _check_splits(value: dict[str, Any]) -> dict[str, Any]:
    splits = value.get("splits")
    if not isinstance(splits, list):
        raise ValueError("expected must be {'splits': [{'name', 'pages'}]}")
    for entry in splits:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError("every split needs a string 'name'")
        pages = entry.get("pages", [])
        if not isinstance(pages, list) or any(isinstance(p, bool) or not isinstance(p, int) for p in pages):
            raise ValueError("split 'pages' must be a list of integers")
    return value


Op = Annotated[Literal["gt", "gte", "lt", "lte", "eq", "neq"], BeforeValidator(lenient_enum)]
Method = Annotated[Literal["levenshtein", "embeddings"], BeforeValidator(lenient_enum)]
# Strict so that booleans and numeric strings are not silently coerced into numbers.
Number = Union[StrictInt, StrictFloat]  # noqa: UP007
SplitsPayload = Annotated[dict[str, Any], AfterValidator(_check_splits)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_max_length=TEXT)


class ExistsCondition(_Model):
    kind: Literal["exists"]


class NotExistsCondition(_Model):
    kind: Literal["not_exists"]


class EqualsCondition(_Model):
    kind: Literal["equals"]
    expected: Any = None


class NotEqualsCondition(_Model):
    kind: Literal["not_equals"]
    expected: Any = None


class NumberCompareCondition(_Model):
    kind: Literal["number_compare"]
    op: Op
    expected: Number


class ContainsCondition(_Model):
    kind: Literal["contains"]
    expected: Any = None


class NotContainsCondition(_Model):
    kind: Literal["not_contains"]
    expected: Any = None


class ObjectContainsCondition(_Model):
    kind: Literal["object_contains"]
    expected: dict[str, Any]


class ArrayContainsCondition(_Model):
    kind: Literal["array_contains"]
    expected: dict[str, Any]


def _runnable_pattern(pattern: str) -> str:
    """Refuse, when the eval is saved, a pattern RE2 cannot run although Python could (a backreference,
    a look-around): it would otherwise be blocked on every run. A pattern no engine reads is left to
    block at run time (`invalid_regex`, spec §2.6)."""
    try:
        compile_pattern(pattern)
    except RegexError as exc:
        if exc.unsupported:
            raise ValueError(f"unsupported regex: {exc}") from None
    return pattern


class MatchesRegexCondition(_Model):
    kind: Literal["matches_regex"]
    pattern: Annotated[str, Field(max_length=4096), AfterValidator(_runnable_pattern)]


class JsonSchemaValidCondition(_Model):
    kind: Literal["json_schema_valid"]
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class SimilarityGteCondition(_Model):
    kind: Literal["similarity_gte"]
    reference: Any
    threshold: Number
    method: Method = "levenshtein"


class LlmJudgedAsCondition(_Model):
    kind: Literal["llm_judged_as"]
    rubric: str
    expected_label: str | None = None


class LlmNotJudgedAsCondition(_Model):
    kind: Literal["llm_not_judged_as"]
    rubric: str
    expected_label: str | None = None


class LengthCompareCondition(_Model):
    kind: Literal["length_compare"]
    op: Op
    expected: Annotated[int, Field(strict=True, ge=0)]


class BetweenCondition(_Model):
    kind: Literal["between"]
    lower: Number
    upper: Number
    inclusive: bool = True


class StartsWithCondition(_Model):
    kind: Literal["starts_with"]
    expected: str


class EndsWithCondition(_Model):
    kind: Literal["ends_with"]
    expected: str


class AllItemsMatchCondition(_Model):
    kind: Literal["all_items_match"]
    condition: Condition


class AnyItemMatchesCondition(_Model):
    kind: Literal["any_item_matches"]
    condition: Condition


class SplitIouCondition(_Model):
    kind: Literal["split_iou_gte"]
    expected: SplitsPayload
    threshold: Number = 1


Condition = Annotated[
    Union[  # noqa: UP007
        ExistsCondition,
        NotExistsCondition,
        EqualsCondition,
        NotEqualsCondition,
        NumberCompareCondition,
        ContainsCondition,
        NotContainsCondition,
        ObjectContainsCondition,
        ArrayContainsCondition,
        MatchesRegexCondition,
        JsonSchemaValidCondition,
        SimilarityGteCondition,
        LlmJudgedAsCondition,
        LlmNotJudgedAsCondition,
        LengthCompareCondition,
        BetweenCondition,
        StartsWithCondition,
        EndsWithCondition,
        AllItemsMatchCondition,
        AnyItemMatchesCondition,
        SplitIouCondition,
    ],
    Field(discriminator="kind"),
]


class OutputTarget(_Model):
    output_handle_id: str
    path: str | None = None


class AssertionSpec(_Model):
    id: str | None = None
    target: OutputTarget
    condition: Condition
    label: str | None = None


AllItemsMatchCondition.model_rebuild()
AnyItemMatchesCondition.model_rebuild()
AssertionSpec.model_rebuild()


def new_assertion_id() -> str:
    return "assert_" + secrets.token_hex(6)


def validate_assertion(raw: object) -> dict[str, Any]:
    """Validate an AssertionSpec body; return the normalised JSON dict to store.

    Raises ``pydantic.ValidationError`` on any problem (unknown kind, missing field, bad op).
    """
    spec = AssertionSpec.model_validate(raw)
    data = spec.model_dump(mode="json", by_alias=True)
    if not data.get("id"):
        data["id"] = new_assertion_id()
    return data
