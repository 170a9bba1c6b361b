"""What the OpenAI-compatible engine asks, and how it reads the answer back.

Each block type becomes a `StructuredTask`: a system prompt, the user content (text, or parts with
images), the JSON schema sent to the provider and a `finish` function that validates the decoded
answer and shapes it into the block's output. Everything here is pure; HTTP lives in `openai.py`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.engines.base import (
    Document,
    EngineError,
    HandleValue,
    JsonInput,
    JudgeAnswer,
    JudgeRequest,
    PassRequest,
)
from orchestrator.engines.openai.schema import (
    check_schema,
    drop_optional_nulls,
    strict_schema,
    unparseable,
    validate,
)

Content = str | list[dict[str, Any]]
# Rough prompt cost of an image for the tokens-per-minute budget (OpenAI: 85 + 170 per 512px tile).
IMAGE_TOKEN_ESTIMATE = 765


@dataclass(frozen=True)
class StructuredTask:
    name: str  # json_schema name sent to the provider
    system: str
    content: Content
    wire_schema: dict[str, Any] | None  # None: ask for any JSON object
    strict: bool
    finish: Callable[[Any], Any]  # decoded JSON -> block output; raises EngineError(unparseable)

    def estimate_tokens(self) -> int:
        chars = len(self.system)
        images = 0
        if isinstance(self.content, str):
            chars += len(self.content)
        else:
            for part in self.content:
                if part.get("type") == "image_url":
                    images += 1
                else:
                    chars += len(str(part.get("text", "")))
        if self.wire_schema is not None:
            chars += len(json.dumps(self.wire_schema))
        return chars // 4 + images * IMAGE_TOKEN_ESTIMATE + 1

    def system_for(self, mode: str) -> str:
        """json_object mode cannot carry the schema in `response_format`, so it goes in the prompt."""
        if mode == "json_schema" or self.wire_schema is None:
            return self.system
        schema = json.dumps(self.wire_schema, ensure_ascii=False)
        return f"{self.system}\n\nReply with only a JSON object valid against this JSON schema:\n{schema}"


# ---------------------------------------------------------------- content


def image_data_url(data: bytes, fallback_mime: str) -> str:
    mime = fallback_mime if fallback_mime.startswith("image/") else "image/png"
    if data.startswith(b"\x89PNG"):
        mime = "image/png"
    elif data.startswith(b"\xff\xd8"):
        mime = "image/jpeg"
    elif data.startswith((b"GIF87a", b"GIF89a")):
        mime = "image/gif"
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image(data: bytes, mime: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image_data_url(data, mime)}}


def _document_parts(doc: Document, *, numbered: bool, first_n: int | None) -> list[dict[str, Any]]:
    pages, images = list(doc.pages), list(doc.images)
    if first_n is not None:
        pages, images = pages[:first_n], images[:first_n]
    parts = [_text(f"Document: {doc.filename}")]
    if images and not "".join(pages).strip():
        for number, data in enumerate(images, start=1):
            if numbered:
                parts.append(_text(f"--- Page {number} ---"))
            parts.append(_image(data, doc.mime_type))
    elif numbered or first_n is not None:
        for number, page in enumerate(pages, start=1):
            parts.append(_text(f"--- Page {number} ---\n{page}" if numbered else page))
    else:
        parts.append(_text(doc.text))
    return parts


def input_content(inputs: Mapping[str, HandleValue], *, numbered: bool = False, first_n: int | None = None) -> Content:
    parts: list[dict[str, Any]] = []
    for handle, value in inputs.items():
        if isinstance(value, Document):
            parts.extend(_document_parts(value, numbered=numbered, first_n=first_n))
        elif isinstance(value, JsonInput):
            data = json.dumps(value.data, ensure_ascii=False, indent=2, default=str)
            parts.append(_text(f"Input {handle} (JSON):\n{data}"))
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _primary_document(request: PassRequest) -> Document:
    for value in request.inputs.values():
        if isinstance(value, Document):
            return value
    raise EngineError(
        kind="input",
        code="missing_document",
        message=f"the {request.block_type} block needs a document input",
    )


def _instructions(config: Mapping[str, Any]) -> str:
    text = config.get("instructions") or config.get("prompt") or ""
    return f"\n\nInstructions:\n{text}" if str(text).strip() else ""


# ---------------------------------------------------------------- tasks

EXTRACT_SYSTEM = (
    "You extract structured data from documents. Read the input and reply with one JSON object that "
    "follows the JSON schema. Use null for values the document does not contain; never invent values."
)
CLASSIFY_SYSTEM = (
    "You classify documents. Read the document and pick exactly one category from the list below. "
    "Explain your choice briefly in `reasoning`, then give the category name in `category`."
)
SPLIT_SYSTEM = (
    "You split a multi-page document into subdocuments. Pages are numbered from 1. Assign every page "
    "to the subdocument it belongs to and reply with the list of subdocuments in page order."
)
JUDGE_SYSTEM = (
    "You are a careful, impartial evaluator. Judge the value below against the rubric. Explain your "
    "judgement briefly in `reasoning`, give a short `label`, and set `passed` to whether the rubric is met."
)


def extract_task(request: PassRequest) -> StructuredTask:
    system = EXTRACT_SYSTEM + _instructions(request.config)
    content = input_content(request.inputs)
    raw = request.config.get("json_schema")
    if not raw:
        return StructuredTask("extraction", system, content, None, False, _any_object)
    original = check_schema(raw)
    wire, strict = strict_schema(original)

    def finish(value: Any) -> Any:
        value = drop_optional_nulls(value, original, original)
        validate(value, original)
        return value

    return StructuredTask("extraction", system, content, wire, strict, finish)


def _any_object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise unparseable(f"expected a JSON object, got {type(value).__name__}")
    return value


def _names(config: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = config.get(key)
    entries = [i for i in items if isinstance(i, Mapping) and i.get("name")] if isinstance(items, list) else []
    if not entries:
        raise EngineError(kind="config", code=f"no_{key}", message=f"the block config has no `{key}` with names")
    return [dict(i) for i in entries]


def _menu(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        note = " (may occur several times)" if e.get("allow_multiple_instances") else ""
        desc = f": {e['description']}" if e.get("description") else ""
        lines.append(f"- {e['name']}{desc}{note}")
    return "\n".join(lines)


def classifier_task(request: PassRequest) -> StructuredTask:
    categories = _names(request.config, "categories")
    names = [str(c["name"]) for c in categories]
    first_n = request.config.get("first_n_pages")
    first_n = int(first_n) if isinstance(first_n, int | float) and first_n > 0 else None
    system = f"{CLASSIFY_SYSTEM}\n\nCategories:\n{_menu(categories)}{_instructions(request.config)}"
    schema = {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, "category": {"type": "string", "enum": names}},
        "required": ["reasoning", "category"],
        "additionalProperties": False,
    }

    def finish(value: Any) -> Any:
        validate(value, schema)
        return {"category": value["category"], "reasoning": value["reasoning"]}

    content = input_content(request.inputs, first_n=first_n)
    return StructuredTask("classification", system, content, schema, True, finish)


def split_task(request: PassRequest) -> StructuredTask:
    subdocs = _names(request.config, "subdocuments")
    names = [str(s["name"]) for s in subdocs]
    multiple = {str(s["name"]) for s in subdocs if s.get("allow_multiple_instances")}
    doc = _primary_document(request)
    page_count = doc.page_count or len(doc.pages) or len(doc.images)
    system = f"{SPLIT_SYSTEM}\n\nSubdocument types:\n{_menu(subdocs)}{_instructions(request.config)}"
    split_item = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": names},
            "pages": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["name", "pages"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"splits": {"type": "array", "items": split_item}},
        "required": ["splits"],
        "additionalProperties": False,
    }

    def finish(value: Any) -> Any:
        validate(value, schema)
        out: list[dict[str, Any]] = []
        by_name: dict[str, dict[str, Any]] = {}
        for item in value["splits"]:
            # Pages outside the document are model noise, not a reason to lose the whole pass.
            pages = sorted({p for p in item["pages"] if 1 <= p <= page_count})
            if not pages:
                continue
            name = item["name"]
            if name in by_name and name not in multiple:
                by_name[name]["pages"] = sorted(set(by_name[name]["pages"]) | set(pages))
                continue
            entry = {"name": name, "pages": pages}
            by_name[name] = entry
            out.append(entry)
        return out

    content = input_content({"document": doc}, numbered=True)
    return StructuredTask("split", system, content, schema, True, finish)


def judge_task(request: JudgeRequest) -> StructuredTask:
    expected = request.expected_label
    schema = {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "label": {"type": "string"},
            "passed": {"type": "boolean"},
        },
        "required": ["reasoning", "label", "passed"],
        "additionalProperties": False,
    }
    value = json.dumps(request.value, ensure_ascii=False, indent=2, default=str)
    content = f"Rubric:\n{request.rubric}\n\nValue:\n{value}"
    if expected:
        content += (
            f"\n\nThe label under test is {json.dumps(expected)}. Reply with that exact label if it "
            "describes the value under the rubric; otherwise reply with a better label."
        )

    def finish(answer: Any) -> Any:
        validate(answer, schema)
        label = str(answer["label"])
        # With an expected label the verdict is the label match, so it does not hinge on the model
        # keeping `passed` consistent with its own label.
        passed = label.strip().casefold() == expected.strip().casefold() if expected else bool(answer["passed"])
        return JudgeAnswer(label=label, passed=passed, reasoning=str(answer["reasoning"]), engine="openai")

    return StructuredTask("judgement", JUDGE_SYSTEM, content, schema, True, finish)


def task_for(request: PassRequest) -> StructuredTask:
    builders = {"extract": extract_task, "classifier": classifier_task, "split": split_task}
    builder = builders.get(request.block_type)
    if builder is None:
        raise EngineError(
            kind="config",
            code="unsupported_block",
            message=f"block type {request.block_type!r} is not supported",
        )
    return builder(request)


def decode_content(text: str) -> Any:
    """Decode a model's JSON answer; tolerate a Markdown code fence around it (json_object mode)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise unparseable(f"the model's answer is not valid JSON ({exc.msg})", content=text[:500]) from None
