"""The Invoice demo workflow created on first start, so `scripts/serve` is a complete first experience.

Everything is built through the service layer (the same validation as the HTTP routes). The simulated
engine is deterministic for given inputs, config, pass and seed, so the demo verdicts are stable: the
evals that fail or block do so on purpose, and a test pins exactly which ones.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from orchestrator.service import Services
from orchestrator.store.records import PageRequest
from orchestrator.wire import requests as rq
from orchestrator.wire.dialects import EVAL

AnyServices = Services[Any]  # whichever runner the caller has

DEMO_NAME = "Invoice demo"
EXPERIMENT_NAME = "Invoice consensus (5 passes)"
HANDLE = "input-file-document"
OUTPUT = "output-json-0"

# The three fields every invoice example needs: what the tests and benchmarks extract.
MINIMAL_INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"invoice_number": {"type": "string"}, "vendor": {"type": "string"}, "total": {"type": "number"}},
    "required": ["invoice_number", "total"],
}

INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string", "description": "The invoice identifier, e.g. INV-1001"},
        "vendor": {"type": "string", "description": "Who issued the invoice"},
        "invoice_date": {"type": "string", "format": "date"},
        "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
        "total": {"type": "number", "description": "Amount due, taxes included"},
        "line_items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "quantity": {"type": "number"},
                    "unit_price": {"type": "number"},
                },
            },
        },
    },
    "required": ["invoice_number", "total"],
}

BLOCK_CONFIG: dict[str, Any] = {
    "model": "simulated",
    "json_schema": INVOICE_SCHEMA,
    "instructions": "Extract the invoice header fields and its line items.",
    # Evals vote over 3 passes, so a single perturbed pass does not flip a verdict.
    "n_consensus": 3,
    # Latency makes the runs slow enough to watch: with the default 32 pass slots, the eval run takes
    # ≈ 5 s (33 passes, two waves) and the experiment ≈ 15 s (100 passes). Timing never changes an output
    # (the simulated engine leaves it out of its seed). Disagreement makes consensus scores fall below 1.
    "simulation": {"disagreement": 0.08, "latency_ms": 2000, "jitter_ms": 500},
}


def _cond(path: str | None, condition: dict[str, Any]) -> dict[str, Any]:
    return {"target": {"output_handle_id": OUTPUT, "path": path}, "condition": condition}


# (name, invoice file, assertion). Two fail on purpose, one is blocked by an invalid regex.
DEMO_EVALS: list[tuple[str, str, dict[str, Any]]] = [
    ("INV-1001 invoice number", "inv-1001.txt", _cond("invoice_number", {"kind": "equals", "expected": "INV-1001"})),
    ("INV-1002 total", "inv-1002.txt", _cond("total", {"kind": "equals", "expected": 820.8})),
    (
        "INV-1007 total (wrong expected value)",
        "inv-1007.txt",
        _cond("total", {"kind": "equals", "expected": 2464.0}),
    ),
    (
        "INV-1003 vendor looks like Initech",
        "inv-1003.txt",
        _cond("vendor", {"kind": "similarity_gte", "reference": "Initech L.L.C.", "threshold": 0.75}),
    ),
    (
        "INV-1004 currency is an ISO code",
        "inv-1004.txt",
        _cond("currency", {"kind": "matches_regex", "pattern": "^[A-Z]{3}$"}),
    ),
    (
        "INV-1005 has 3 line items",
        "inv-1005.txt",
        _cond("line_items", {"kind": "length_compare", "op": "eq", "expected": 3}),
    ),
    (
        "INV-1010 has 4 line items (it has 3)",
        "inv-1010.txt",
        _cond("line_items", {"kind": "length_compare", "op": "eq", "expected": 4}),
    ),
    ("INV-1006 invoice date exists", "inv-1006.txt", _cond("invoice_date", {"kind": "exists"})),
    (
        "INV-1008 output matches the schema",
        "inv-1008.txt",
        _cond(None, {"kind": "json_schema_valid", "schema": INVOICE_SCHEMA}),
    ),
    (
        "INV-1009 PO number (invalid regex)",
        "inv-1009.txt",
        _cond("invoice_number", {"kind": "matches_regex", "pattern": "INV-(10[0-9"}),
    ),
    (
        "INV-1012 total above 1,000",
        "inv-1012.txt",
        _cond("total", {"kind": "number_compare", "op": "gt", "expected": 1000}),
    ),
]


def invoice_files() -> list[tuple[str, bytes]]:
    """The sample invoices shipped as package data, sorted by name."""
    folder = resources.files(__package__).joinpath("invoices")
    return sorted((f.name, f.read_bytes()) for f in folder.iterdir() if f.name.endswith(".txt"))


async def demo_exists(services: AnyServices) -> bool:
    req = PageRequest(limit=500)
    while True:
        page = await services.workflows.list_workflows(req, project_id=None, sort_by="created_at")
        if any(row["name"] == DEMO_NAME for row in page.rows):
            return True
        if not page.after:
            return False
        req = PageRequest(limit=500, after=page.after)


def _file_input(file_row: dict[str, Any]) -> dict[str, Any]:
    doc = {"id": file_row["id"], "filename": file_row["filename"], "mime_type": file_row["mime_type"]}
    return {HANDLE: {"type": "file", "document": doc}}


async def ensure_demo(services: AnyServices) -> None:
    """Create the Invoice demo unless a workflow of that name exists (the user may have edited it)."""
    if await demo_exists(services):
        return
    wf = await services.workflows.create_workflow(
        rq.CreateWorkflow(
            name=DEMO_NAME,
            description="Sample invoices on the offline simulated engine: saved evals and a consensus experiment.",
        )
    )
    try:
        await _fill(services, wf["id"])
    except Exception:
        # A half-built demo would be skipped forever by the name check: remove it, retry next start.
        await services.workflows.delete_workflow(wf["id"])
        raise
    logging.getLogger("orchestrator").info("created the %s workflow %s", DEMO_NAME, wf["id"])


async def _fill(services: AnyServices, workflow_id: str) -> None:
    blocks = await services.workflows.list_blocks(workflow_id, PageRequest(limit=10))
    start = next(b for b in blocks.rows if b["type"] == "start_document")
    block = await services.workflows.create_block(
        rq.CreateBlock(
            workflow_id=workflow_id, type="extract", label="Extract invoice", config=BLOCK_CONFIG, position_x=320
        )
    )
    await services.workflows.create_edge(
        rq.CreateEdge(
            workflow_id=workflow_id,
            source_block=start["id"],
            target_block=block["id"],
            source_handle="output-file-0",
            target_handle=HANDLE,
        )
    )
    files: dict[str, dict[str, Any]] = {}
    for name, data in invoice_files():
        files[name] = await services.files.store_bytes(filename=name, mime_type="text/plain", data=data)
    for name, filename, assertion in DEMO_EVALS:
        body = rq.CreateCheck.model_validate(
            {
                "workflow_id": workflow_id,
                "name": name,
                "target": {"type": "block", "block_id": block["id"]},
                "source": {"type": "manual", "handle_inputs": _file_input(files[filename])},
                "assertion": assertion,
            }
        )
        await services.checks.create(EVAL, workflow_id, body)
    await services.experiments.create(
        rq.CreateExperiment.model_validate(
            {
                "workflow_id": workflow_id,
                "block_id": block["id"],
                "name": EXPERIMENT_NAME,
                "n_consensus": 5,
                "documents": [{"handle_inputs": _file_input(f)} for f in files.values()],
            }
        )
    )
