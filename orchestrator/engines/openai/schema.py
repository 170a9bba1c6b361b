"""JSON-schema helpers of the OpenAI-compatible engine: strict-mode conversion and local validation.

OpenAI's strict structured outputs accept a subset of JSON Schema: every object closed and every
property required. `strict_schema` rewrites a block's schema into that shape (optional properties
become nullable) without touching the block config; `drop_optional_nulls` undoes the nulls on the
way back, and `validate` checks the answer against the block's original schema.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from orchestrator.engines.base import EngineError


def unparseable(message: str, **details: Any) -> EngineError:
    return EngineError(kind="unparseable", code="unparseable_output", message=message, details=details)


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONES = ("items", "additionalProperties", "not", "contains")


def strict_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """A copy of `schema` that OpenAI's strict mode accepts, and whether that was possible.

    Strict mode wants every object closed (`additionalProperties: false`) with every property
    required, so optional properties become nullable; `finish` drops the nulls again. Free-form
    objects cannot be expressed: then the original schema is returned with strict=False.
    """
    ok = [schema.get("type") == "object" or "properties" in schema]
    converted = _strictify(copy.deepcopy(dict(schema)), ok)
    return (converted, True) if ok[0] else (copy.deepcopy(dict(schema)), False)


def _strictify(node: Any, ok: list[bool]) -> Any:
    if not isinstance(node, dict):
        return node
    for key in _SCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            node[key] = {k: _strictify(v, ok) for k, v in node[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(node.get(key), list):
            node[key] = [_strictify(v, ok) for v in node[key]]
    for key in _SCHEMA_ONES:
        if isinstance(node.get(key), dict):
            node[key] = _strictify(node[key], ok)
    if "oneOf" in node:  # not accepted by strict mode; the local validation keeps the exclusivity
        node.setdefault("anyOf", []).extend(node.pop("oneOf"))
    is_object = node.get("type") == "object" or (isinstance(node.get("type"), list) and "object" in node["type"])
    if is_object or "properties" in node:
        props: dict[str, Any] = node.get("properties", {})
        if (not props and node.get("additionalProperties") is not False) or isinstance(
            node.get("additionalProperties"), dict
        ):
            ok[0] = False
        if "patternProperties" in node:
            ok[0] = False
        required = set(node.get("required", []))
        node["properties"] = {k: (v if k in required else _nullable(v)) for k, v in props.items()}
        node["required"] = list(props)
        node["additionalProperties"] = False
    return node


def _nullable(schema: Any) -> Any:
    if not isinstance(schema, dict) or allows_null(schema, {}):
        return schema
    out = dict(schema)
    kind = out.get("type")
    if "const" in out or "$ref" in out or (kind is None and "anyOf" not in out):
        return {"anyOf": [out, {"type": "null"}]}
    if "anyOf" in out and kind is None:
        out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        return out
    out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    if isinstance(out.get("enum"), list):
        out["enum"] = [*out["enum"], None]
    return out


def allows_null(schema: Any, root: Mapping[str, Any]) -> bool:
    if schema is True or schema == {}:
        return True
    if not isinstance(schema, Mapping):
        return False
    if "$ref" in schema:
        return allows_null(_resolve(schema["$ref"], root), root)
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "const" in schema:
        return schema["const"] is None
    if kind is None and isinstance(schema.get("enum"), list):
        return None in schema["enum"]
    return any(allows_null(s, root) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _resolve(ref: str, root: Mapping[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node


def drop_optional_nulls(value: Any, schema: Any, root: Mapping[str, Any]) -> Any:
    """Remove the nulls strict mode forced on optional properties the original schema keeps non-null."""
    if isinstance(schema, Mapping) and "$ref" in schema:
        schema = _resolve(schema["$ref"], root)
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict) and isinstance(schema.get("properties"), Mapping):
        props, required = schema["properties"], set(schema.get("required", []))
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = props.get(key)
            if item is None and key in props and key not in required and not allows_null(sub, root):
                continue
            out[key] = drop_optional_nulls(item, sub, root) if sub is not None else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [drop_optional_nulls(item, schema["items"], root) for item in value]
    return value


def validate(value: Any, schema: Mapping[str, Any]) -> None:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise unparseable(f"output does not match the schema at {where}: {error.message}", path=where)


def check_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise EngineError(kind="config", code="invalid_json_schema", message="json_schema must be an object")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except jsonschema.exceptions.SchemaError as exc:
        raise EngineError(
            kind="config", code="invalid_json_schema", message=f"invalid json_schema: {exc.message}"
        ) from None
    return dict(schema)
