"""Shared helpers for the API tests (a test module itself so it stays in the files this suite owns).

`sdk(Model, body)` validates a response body with the retab SDK's own pydantic model, the way the
SDK does on the client; `raw(...)` returns status, headers and body for checks the `Api` helper hides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from multidict import CIMultiDictProxy
from pydantic import BaseModel, TypeAdapter
from retab.types.pagination import PaginatedList

from tests.conftest import Api, invoice_text

SLOW: dict[str, Any] = {"simulation": {"latency_ms": 600_000}}
"""Block config that keeps every pass in flight until the run is cancelled."""

TOTAL_EQUALS = {
    "target": {"output_handle_id": "output-json-0", "path": "total"},
    "condition": {"kind": "equals", "expected": 1234.56},
}


@dataclass
class Raw:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any


async def raw(
    api: Api,
    method: str,
    path: str,
    *,
    json: Any = None,
    data: bytes | str | None = None,
    params: Any = None,
    headers: dict[str, str] | None = None,
    auth: bool = True,
) -> Raw:
    hdrs = {"Authorization": "Bearer test-key"} if auth else {}
    hdrs.update(headers or {})
    resp = await api.client.request(
        method, path, json=json, data=data, params=params, headers=hdrs, allow_redirects=False
    )
    text = await resp.text()
    body: Any = None
    if text:
        try:
            body = await resp.json(content_type=None)
        except ValueError:
            body = text
    return Raw(resp.status, resp.headers, body)


def assert_envelope(r: Raw, status: int, code: str | None = None) -> dict[str, Any]:
    """The Retab error envelope with the expected status and an x-request-id header."""
    assert r.status == status, (r.status, r.body)
    assert r.headers.get("x-request-id", "").startswith("req_"), dict(r.headers)
    assert isinstance(r.body, dict) and set(r.body) == {"detail"}, r.body
    detail = r.body["detail"]
    assert set(detail) == {"code", "message", "details"}, detail
    assert isinstance(detail["code"], str) and isinstance(detail["message"], str)
    assert isinstance(detail["details"], dict)
    if code is not None:
        assert detail["code"] == code, detail
    return dict(detail)


def sdk(model: Any, body: Any) -> Any:
    """Validate like the SDK: a model class (`model_validate`) or a union type (TypeAdapter)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_validate(body)
    return TypeAdapter(model).validate_python(body)


def sdk_page(model: type[BaseModel], body: Any) -> Any:
    page = PaginatedList[model].model_validate(body)  # type: ignore[valid-type]
    assert set(body["list_metadata"]) == {"before", "after"}
    for item in body["data"]:
        model.model_validate(item)
    return page


async def file_input(api: Api, number: str = "INV-001", total: str = "$1,234.56") -> dict[str, Any]:
    doc = await api.upload(invoice_text(number=number, total=total))
    return {"input-file-document": {"type": "file", "document": doc}}


async def create_eval(
    api: Api,
    wf: str,
    block: str,
    inputs: dict[str, Any],
    *,
    assertion: dict[str, Any] | None = None,
    name: str | None = "total",
    dialect: str = "evals",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow_id": wf,
        "target": {"type": "block", "block_id": block},
        "source": {"type": "manual", "handle_inputs": inputs},
        "assertion": assertion or TOTAL_EQUALS,
    }
    if name is not None:
        body["name"] = name
    out: dict[str, Any] = await api.post(f"/v1/workflows/{dialect}", body, expect=201)
    return out


async def collect(api: Api, path: str, params: dict[str, Any]) -> list[str]:
    """Follow `list_metadata.after` like the SDK's auto-pagination; returns every id seen."""
    ids: list[str] = []
    query = dict(params)
    for _ in range(1000):
        page = await api.get(path, params=query, expect=200)
        ids += [item["id"] for item in page["data"]]
        if page["list_metadata"]["after"] is None:
            return ids
        query = {**params, "after": page["list_metadata"]["after"]}
    raise AssertionError("pagination never ended")


def test_sdk_helper_rejects_what_the_sdk_rejects() -> None:
    from retab.types.workflows.evals.runs import WorkflowEvalRun

    with pytest.raises(Exception, match="validation error"):
        sdk(WorkflowEvalRun, {"id": "x", "lifecycle": {"status": "failed"}})
    with pytest.raises(Exception, match="validation error"):
        sdk_page(WorkflowEvalRun, {"data": [], "list_metadata": {"after": None}})


class SpentLinks:
    """The store's `signins.spend` for Sessions tested without a store (the store's own is contract-tested):
    a nonce spends once."""

    def __init__(self) -> None:
        self.nonces: set[str] = set()

    async def spend(self, nonce: str, expires_at: float) -> bool:
        if nonce in self.nonces:
            return False
        self.nonces.add(nonce)
        return True
