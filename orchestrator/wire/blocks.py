"""The checks a block config must pass before it is stored: the one validator of the API and the importer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from orchestrator.wire.requests import BlockConfig


class BlockConfigError(ValueError):
    """A config the runner could not use. `validation` is set when the config's fields failed their
    types; otherwise `message` says what is wrong and `errors` locate it (`{loc, msg, type}`)."""

    def __init__(self, message: str, errors: list[dict[str, Any]], validation: ValidationError | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.validation = validation


def _empty(field: str) -> BlockConfigError:
    return BlockConfigError(
        f"config.{field} must not be empty",
        [{"loc": ["config", field], "msg": "must not be empty", "type": "too_short"}],
    )


def validate_block_config(block_type: str, config: Mapping[str, Any]) -> None:
    """Typed fields (model, json_schema, categories, n_consensus …), a valid JSON schema for an extract
    block, at least one category for a classifier and one subdocument for a split."""
    try:
        BlockConfig.model_validate(config)
    except ValidationError as exc:
        raise BlockConfigError("invalid block config", [], exc) from exc
    schema = config.get("json_schema")
    if block_type == "extract" and schema is not None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise BlockConfigError(
                f"config.json_schema is not a valid JSON schema: {exc.message}",
                [{"loc": ["config", "json_schema"], "msg": exc.message, "type": "schema"}],
            ) from exc
    if block_type == "classifier" and "categories" in config and not config["categories"]:
        raise _empty("categories")
    if block_type == "split" and "subdocuments" in config and not config["subdocuments"]:
        raise _empty("subdocuments")
