"""`orchestrator import FILE.yaml`: create or update a workflow, its blocks, saved evals and experiments.

Idempotent: things are matched by name (blocks by label, or by an explicit stable `id`), compared
with what the server holds, and written only when they differ, so re-importing an unchanged file
changes nothing (no `updated_at` moves). Documents are deduplicated by filename and sha256.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape

from orchestrator.cli.client import Client, ClientError
from orchestrator.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    list_all,
    print_json,
    run_command,
)
from orchestrator.cli.importer.files import FileResolver
from orchestrator.cli.importer.spec import ImportPlan, Inputs, SpecError, load
from orchestrator.wire import requests as rq

NEW = "(new)"


@dataclass
class Change:
    kind: str
    name: str
    id: str
    action: str  # created | updated | replaced | deleted | unchanged

    def json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "id": self.id, "action": self.action}


@dataclass
class Importer:
    client: Client
    plan: ImportPlan
    dry_run: bool = False
    prune: bool = False
    changes: list[Change] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.files = FileResolver(self.client, dry_run=self.dry_run)
        self.stale_blocks: list[dict[str, Any]] = []

    def note(self, kind: str, name: str, id_: str, action: str) -> None:
        self.changes.append(Change(kind, name, id_, action))

    async def write(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.dry_run:
            return {"id": NEW}
        out: dict[str, Any] | None = await self.client.request(method, path, json=body)
        return out or {}

    async def existing(self, path: str, workflow_id: str) -> list[dict[str, Any]]:
        return [] if workflow_id == NEW else await list_all(self.client, path, {"workflow_id": workflow_id})

    # -- workflow
    async def workflow(self) -> str:
        spec = self.plan.workflow
        wf: dict[str, Any] | None = None
        if spec.id:
            try:
                wf = await self.client.request("GET", f"/v1/workflows/{spec.id}")
            except ClientError as exc:
                if exc.status != 404:
                    raise
                raise CliError(
                    f"workflow.id {spec.id!r} does not exist on this server; remove it to match by name"
                ) from None
        else:
            named = [w for w in await list_all(self.client, "/v1/workflows") if w.get("name") == spec.name]
            if len(named) > 1:
                ids = ", ".join(w["id"] for w in named)
                raise CliError(f"several workflows are named {spec.name!r} ({ids}); add `id:` under `workflow:`")
            wf = named[0] if named else None
        if wf is None:
            created = await self.write("POST", "/v1/workflows", {"name": spec.name, "description": spec.description})
            self.note("workflow", spec.name, created["id"], "created")
            return str(created["id"])
        patch = {k: v for k, v in (("name", spec.name), ("description", spec.description)) if wf.get(k) != v}
        if patch:
            await self.write("PATCH", f"/v1/workflows/{wf['id']}", patch)
        self.note("workflow", spec.name, wf["id"], "updated" if patch else "unchanged")
        return str(wf["id"])

    # -- blocks
    async def blocks(self, wid: str) -> dict[str, str]:
        current = await self.existing("/v1/workflows/blocks", wid)
        ids: dict[str, str] = {}
        for i, b in enumerate(self.plan.blocks):
            found = [c for c in current if c["id"] == b.id] if b.id else [c for c in current if c["label"] == b.label]
            if len(found) > 1:
                raise CliError(f"the workflow has several blocks labelled {b.label!r}; add a stable `id:` to it")
            if not found:
                body: dict[str, Any] = {
                    "workflow_id": wid,
                    "type": b.type,
                    "label": b.label,
                    "config": b.config,
                    "position_x": b.position_x if b.position_x is not None else 320.0 * (i + 1),
                    "position_y": b.position_y if b.position_y is not None else 0.0,
                }
                if b.id:
                    body["id"] = b.id
                row = await self.write("POST", "/v1/workflows/blocks", body)
                ids[b.label] = row["id"]
                self.note("block", b.label, row["id"], "created")
                continue
            cur = found[0]
            if cur["type"] != b.type:
                raise CliError(
                    f"block {b.label!r} is a {cur['type']} block on the server but {b.type} in the file; "
                    "a block's type cannot change (rename it to create a new block)"
                )
            patch: dict[str, Any] = {}
            if cur.get("label") != b.label:
                patch["label"] = b.label
            if (cur.get("config") or {}) != b.config:
                patch.update(config=b.config, config_mode="replace")
            for axis in ("position_x", "position_y"):
                want = getattr(b, axis)
                if want is not None and cur.get(axis) != want:
                    patch[axis] = want
            if patch:
                await self.write("PATCH", f"/v1/workflows/blocks/{cur['id']}", patch)
            ids[b.label] = cur["id"]
            self.note("block", b.label, cur["id"], "updated" if patch else "unchanged")
        keep = set(ids.values())
        self.stale_blocks = [c for c in current if c["id"] not in keep and c["type"] != "start_document"]
        return ids

    # -- documents
    async def handle_inputs(self, inputs: Inputs) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for handle, (kind, value) in inputs.items():
            if kind == "file":
                raw[handle] = {"type": "file", "document": await self.files.ref(value)}
            else:
                raw[handle] = {"type": "json", "data": value}
        # Normalise exactly as the server stores it, so the comparison sees no spurious change.
        source = rq.ManualSource.model_validate({"type": "manual", "handle_inputs": raw})
        normalised: dict[str, Any] = source.model_dump(mode="json", exclude_none=True)["handle_inputs"]
        return normalised

    # -- evals
    async def evals(self, wid: str, block_ids: dict[str, str]) -> None:
        current = {c.get("name"): c for c in reversed(await self.existing("/v1/workflows/evals", wid))}
        for ev in self.plan.evals:
            block_id = block_ids[ev.block]
            source = {"type": "manual", "handle_inputs": await self.handle_inputs(ev.inputs)}
            cur = current.get(ev.name)
            body = {"target": {"type": "block", "block_id": block_id}, "source": source, "assertion": ev.assertion}
            if cur is not None and (cur.get("target") or {}).get("block_id") != block_id:
                # The target block of a saved eval cannot be patched: replace the eval.
                await self.write("DELETE", f"/v1/workflows/evals/{cur['id']}")
                row = await self.write("POST", "/v1/workflows/evals", {"workflow_id": wid, "name": ev.name, **body})
                self.note("eval", ev.name, row["id"], "replaced")
                continue
            if cur is None:
                row = await self.write("POST", "/v1/workflows/evals", {"workflow_id": wid, "name": ev.name, **body})
                self.note("eval", ev.name, row["id"], "created")
                continue
            stored = dict(cur.get("assertion") or {})
            stored_id = stored.pop("id", None)
            patch: dict[str, Any] = {}
            if stored != ev.assertion:
                patch["assertion"] = {**ev.assertion, **({"id": stored_id} if stored_id else {})}
            if cur.get("source") != source:
                patch["source"] = source
            if patch:
                await self.write("PATCH", f"/v1/workflows/evals/{cur['id']}", patch)
            self.note("eval", ev.name, cur["id"], "updated" if patch else "unchanged")
        if self.prune:
            wanted = {e.name for e in self.plan.evals}
            for name, c in current.items():
                if name not in wanted:
                    await self.write("DELETE", f"/v1/workflows/evals/{c['id']}")
                    self.note("eval", str(name or c["id"]), c["id"], "deleted")

    # -- experiments
    async def experiments(self, wid: str, block_ids: dict[str, str]) -> None:
        current = {x.get("name"): x for x in reversed(await self.existing("/v1/workflows/experiments", wid))}
        for ex in self.plan.experiments:
            block_id = block_ids[ex.block]
            docs = [{"handle_inputs": await self.handle_inputs(d)} for d in ex.documents]
            cur = current.get(ex.name)
            create = {"workflow_id": wid, "block_id": block_id, "name": ex.name, "n_consensus": ex.n_consensus}
            if cur is not None and cur.get("block_id") != block_id:
                await self.write("DELETE", f"/v1/workflows/experiments/{cur['id']}")
                row = await self.write("POST", "/v1/workflows/experiments", {**create, "documents": docs})
                self.note("experiment", ex.name, row["id"], "replaced")
                continue
            if cur is None:
                row = await self.write("POST", "/v1/workflows/experiments", {**create, "documents": docs})
                self.note("experiment", ex.name, row["id"], "created")
                continue
            patch: dict[str, Any] = {}
            if cur.get("n_consensus") != ex.n_consensus:
                patch["n_consensus"] = ex.n_consensus
            stored = await self.client.request("GET", f"/v1/workflows/experiments/{cur['id']}/documents")
            if [d.get("handle_inputs") for d in stored.get("data") or []] != [d["handle_inputs"] for d in docs]:
                patch["documents"] = docs
            if patch:
                await self.write("PATCH", f"/v1/workflows/experiments/{cur['id']}", patch)
            self.note("experiment", ex.name, cur["id"], "updated" if patch else "unchanged")
        if self.prune:
            wanted = {x.name for x in self.plan.experiments}
            for name, c in current.items():
                if name not in wanted:
                    await self.write("DELETE", f"/v1/workflows/experiments/{c['id']}")
                    self.note("experiment", str(name or c["id"]), c["id"], "deleted")

    async def run(self) -> dict[str, Any]:
        wid = await self.workflow()
        block_ids = await self.blocks(wid)
        await self.evals(wid, block_ids)
        await self.experiments(wid, block_ids)
        if self.prune:
            # Blocks last: deleting one earlier would leave evals pointing at a missing block meanwhile.
            for c in self.stale_blocks:
                await self.write("DELETE", f"/v1/workflows/blocks/{c['id']}")
                self.note("block", c.get("label") or c["id"], c["id"], "deleted")
        counts = {a: sum(1 for c in self.changes if c.action == a) for a in ("created", "updated", "replaced")}
        counts.update(
            deleted=sum(1 for c in self.changes if c.action == "deleted"),
            unchanged=sum(1 for c in self.changes if c.action == "unchanged"),
        )
        return {
            "file": str(self.plan.source),
            "workflow_id": wid,
            "workflow_name": self.plan.workflow.name,
            "dry_run": self.dry_run,
            "changed": any(c.action != "unchanged" for c in self.changes) or self.files.uploaded > 0,
            "counts": counts,
            "files": {"uploaded": self.files.uploaded, "reused": self.files.reused},
            "changes": [c.json() for c in self.changes],
        }


def print_import(report: dict[str, Any]) -> None:
    from orchestrator.cli.run import stdout_console

    console = stdout_console()
    verb = "Would import" if report["dry_run"] else "Imported"
    console.print(
        f'{verb} {escape(report["file"])} into workflow "{escape(report["workflow_name"])}" ({report["workflow_id"]})'
    )
    style = {"created": "green", "updated": "yellow", "replaced": "yellow", "deleted": "red"}
    for c in report["changes"]:
        if c["action"] != "unchanged":
            console.print(f"  [{style[c['action']]}]{c['action']:<9}[/] {c['kind']:<10} {escape(c['name'])}")
    n, f = report["counts"], report["files"]
    if not report["changed"]:
        console.print(f"No changes ({n['unchanged']} up to date).")
    else:
        console.print(
            f"{n['created']} created, {n['updated'] + n['replaced']} updated, {n['deleted']} deleted, "
            f"{n['unchanged']} unchanged; documents: {f['uploaded']} uploaded, {f['reused']} reused"
        )


def cmd_import(args: argparse.Namespace) -> int:
    try:
        plan = load(args.file)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def body(client: Client) -> int:
        report = await Importer(client, plan, dry_run=args.dry_run, prune=args.prune).run()
        if args.json:
            print_json(report)
        else:
            print_import(report)
        return EXIT_OK

    return run_command(args, body)
