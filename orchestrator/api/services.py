"""The thin service layer between routes and runner/store: composition, no HTTP, no SQL."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from orchestrator.api.http import validation_error
from orchestrator.core import planning
from orchestrator.engines.router import EngineRouter
from orchestrator.errors import Conflict, NotFound, Unprocessable
from orchestrator.ids import new_id
from orchestrator.runner.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.sqlite.db import Row
from orchestrator.wire import requests as rq
from orchestrator.wire.conditions import validate_assertion

RUN_PREFIX = {"eval": "wfevalrun", "test": "wftestrun", "experiment": "exprun"}
CHECK_PREFIX = {"eval": "wfnodeeval", "test": "wfnodetest"}


def validate_block_config(block_type: str, config: dict[str, Any]) -> None:
    try:
        rq.BlockConfig.model_validate(config)
    except ValidationError as exc:
        raise validation_error(exc, "config") from exc
    schema = config.get("json_schema")
    if block_type == "extract" and schema is not None:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise Unprocessable(
                f"config.json_schema is not a valid JSON schema: {exc.message}",
                details={"errors": [{"loc": ["config", "json_schema"], "msg": exc.message, "type": "schema"}]},
            ) from exc
    if block_type == "classifier" and "categories" in config and not config["categories"]:
        raise Unprocessable(
            "config.categories must not be empty",
            details={"errors": [{"loc": ["config", "categories"], "msg": "must not be empty", "type": "too_short"}]},
        )
    if block_type == "split" and "subdocuments" in config and not config["subdocuments"]:
        raise Unprocessable(
            "config.subdocuments must not be empty",
            details={"errors": [{"loc": ["config", "subdocuments"], "msg": "must not be empty", "type": "too_short"}]},
        )


def checked_assertion(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_assertion(raw)
    except ValidationError as exc:
        raise validation_error(exc, "assertion") from exc


class Services:
    def __init__(self, settings: Settings, store: Store, scheduler: Scheduler, router: EngineRouter) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler
        self.router = router

    async def draft_version(self, workflow_id: str) -> str:
        blocks = await self.store.workflows.all_blocks(workflow_id)
        edges = await self.store.workflows.all_edges(workflow_id)
        return planning.draft_version_id(blocks, edges)

    async def delete_workflow(self, workflow_id: str) -> None:
        await self.store.workflows.get_workflow(workflow_id)
        open_runs = [r for r in await self.store.runs.open_runs() if r["workflow_id"] == workflow_id]
        for r in open_runs:
            await self.scheduler.cancel(r["id"], "workflow deleted")
        await self.store.workflows.delete_workflow(workflow_id)

    async def file_inputs_exist(self, handle_inputs: dict[str, Any]) -> None:
        for handle, payload in handle_inputs.items():
            doc = payload.get("document") if isinstance(payload, dict) else None
            if isinstance(doc, dict):
                fid = doc.get("id") or doc.get("original_id")
                try:
                    await self.store.files.get(str(fid))
                except NotFound as exc:
                    raise Unprocessable(
                        f"Handle input {handle!r} refers to unknown file {fid}",
                        code="file_not_found",
                        details={"handle": handle, "file_id": fid},
                    ) from exc

    # -- saved checks
    async def create_check(self, dialect: str, workflow_id: str, body: rq.CreateCheck | rq.CreateCheckNested) -> Row:
        await self.store.workflows.get_workflow(workflow_id)
        await self.store.workflows.get_block(body.target.block_id, workflow_id)
        source = body.source.model_dump(mode="json", exclude_none=True)
        if source.get("type") == "run_step":
            raise Unprocessable(
                "run_step sources need workflow runs, which this server does not record; "
                "use a manual source with handle_inputs",
                code="unsupported_source",
            )
        await self.file_inputs_exist(source.get("handle_inputs", {}))
        return await self.store.checks.create(
            prefix=CHECK_PREFIX[dialect],
            workflow_id=workflow_id,
            block_id=body.target.block_id,
            name=body.name,
            source=source,
            assertion=checked_assertion(body.assertion),
        )

    async def update_check(
        self, check_id: str, body: rq.UpdateCheck, workflow_id: str | None = None, noun: str = "Eval"
    ) -> Row:
        await self.store.checks.get(check_id, workflow_id, noun=noun)
        changes: dict[str, Any] = {}
        if body.name is not None:
            changes["name"] = body.name
        if body.assertion is not None:
            changes["assertion"] = checked_assertion(body.assertion)
        if body.source is not None:
            changes["source"] = body.source.model_dump(mode="json", exclude_none=True)
            await self.file_inputs_exist(changes["source"].get("handle_inputs", {}))
        return await self.store.checks.update(check_id, changes)

    # -- eval / test runs
    async def create_check_run(
        self, kind: str, workflow_id: str, scope: dict[str, Any] | None, n_consensus: int | None
    ) -> Row:
        wf = await self.store.workflows.get_workflow(workflow_id)
        scope = scope or {"type": "workflow"}
        check_id = scope.get("eval_id") or scope.get("test_id") if scope.get("type") == "single" else None
        block_id = scope.get("block_id") if scope.get("type") == "block" else None
        noun = "Eval" if kind == "eval" else "Test"
        if check_id:
            await self.store.checks.get(check_id, workflow_id, noun=noun)
        if block_id:
            await self.store.workflows.get_block(block_id, workflow_id)
        checks = await self.store.checks.for_scope(workflow_id, check_id=check_id, block_id=block_id)
        if check_id:
            block_id = checks[0]["block_id"]
        blocks = {b["id"]: b for b in await self.store.workflows.all_blocks(workflow_id)}
        children = [
            {
                "check_id": c["id"],
                "block_id": c["block_id"],
                "block_type": (blocks.get(c["block_id"]) or {}).get("type", "extract"),
                "handle_inputs": (c.get("source") or {}).get("handle_inputs", {}),
            }
            for c in checks
        ]
        fps: dict[str, Any] = {
            "input_fingerprint": planning.handle_inputs_fingerprint(
                {c["check_id"]: c["handle_inputs"] for c in children}
            )
        }
        if block_id and block_id in blocks:
            b = blocks[block_id]
            fps["block_execution_fingerprint"] = planning.block_execution_fingerprint(b["type"], b.get("config"))
            fps["validity_fingerprint"] = planning.validity_fingerprint(
                fps["block_execution_fingerprint"], fps["input_fingerprint"], [c.get("assertion") for c in checks]
            )
        run = {
            "id": new_id(RUN_PREFIX[kind]),
            "kind": kind,
            "workflow_id": workflow_id,
            "workflow_version_id": await self.draft_version(workflow_id),
            "workflow_name": wf["name"],
            "block_id": block_id,
            "check_id": check_id,
            "scope": scope,
            "n_consensus": n_consensus,
            "fingerprints": fps,
        }
        row, event = await self.store.runs.create_run(run, children)
        self.scheduler.hub.publish([event])
        self.scheduler.submit(row["id"])
        return row

    async def cancel_check_run(self, kind: tuple[str, ...], run_id: str) -> Row:
        run = await self.store.runs.get(run_id, kind)
        if run["status"] in ("completed", "error", "cancelled") or not await self.scheduler.cancel(
            run_id, "cancelled by request"
        ):
            raise NotFound(
                f"Run {run_id} is {run['status']} and cannot be cancelled",
                code="not_cancellable",
                details={"run_id": run_id, "status": run["status"]},
            )
        return await self.store.runs.get(run_id)

    # -- experiments
    async def experiment_documents(
        self, workflow_id: str, documents: list[rq.ExperimentDocument] | None, captures: list[rq.DocumentCapture] | None
    ) -> list[dict[str, Any]]:
        if captures:
            raise Unprocessable(
                "document_captures need workflow runs, which this server does not record; "
                "pass `documents` with explicit handle_inputs",
                code="unsupported_capture",
            )
        docs = [d.model_dump(mode="json", exclude_none=True) for d in documents or []]
        for d in docs:
            await self.file_inputs_exist(d.get("handle_inputs", {}))
        return docs

    async def create_experiment(self, body: rq.CreateExperiment) -> Row:
        await self.store.workflows.get_workflow(body.workflow_id)
        if body.source_experiment_id:
            src = await self.store.experiments.get(body.source_experiment_id)
            if src["workflow_id"] != body.workflow_id:
                raise NotFound(f"Experiment {src['id']} not found in workflow {body.workflow_id}")
            docs = [
                {"handle_inputs": d["handle_inputs"], **({"provenance": d["provenance"]} if d["provenance"] else {})}
                for d in await self.store.experiments.documents(src["id"])
            ]
            return await self.store.experiments.create(
                workflow_id=body.workflow_id,
                block_id=src["block_id"],
                name=src["name"] + " (Copy)",
                n_consensus=src["n_consensus"],
                documents=docs,
            )
        block = await self.store.workflows.get_block(str(body.block_id), body.workflow_id)
        if block["type"] not in planning.RUNNABLE_TYPES:
            raise Unprocessable(
                f"Experiments need an extract, classifier or split block, not {block['type']}",
                code="block_type_unsupported",
                details={"block_id": block["id"]},
            )
        docs = await self.experiment_documents(body.workflow_id, body.documents, body.document_captures)
        return await self.store.experiments.create(
            workflow_id=body.workflow_id,
            block_id=block["id"],
            name=body.name or block["label"] or "Experiment",
            n_consensus=body.n_consensus or 3,
            documents=docs,
        )

    async def update_experiment(self, experiment_id: str, body: rq.UpdateExperiment) -> Row:
        exp = await self.store.experiments.get(experiment_id)
        docs = None
        if body.documents is not None or body.document_captures is not None:
            docs = await self.experiment_documents(exp["workflow_id"], body.documents, body.document_captures)
        return await self.store.experiments.update(
            experiment_id, name=body.name, n_consensus=body.n_consensus, documents=docs
        )

    async def delete_experiment(self, experiment_id: str) -> None:
        await self.store.experiments.get(experiment_id)
        # Any open run, not only the latest: deleting would pull the rows from under the runner.
        for run in await self.store.runs.open_runs():
            if run.get("experiment_id") == experiment_id:
                raise Conflict(
                    f"Experiment {experiment_id} has a run in flight ({run['id']}); cancel it first",
                    code="run_in_flight",
                    details={"run_id": run["id"]},
                )
        await self.store.experiments.delete(experiment_id)

    async def current_fingerprints(self, exp: Row) -> tuple[Row | None, str | None, str]:
        try:
            block = await self.store.workflows.get_block(exp["block_id"], exp["workflow_id"])
        except NotFound:
            return None, None, exp["documents_fingerprint"]
        return (
            block,
            planning.block_execution_fingerprint(block["type"], block.get("config")),
            exp["documents_fingerprint"],
        )

    async def create_experiment_run(self, body: rq.CreateExperimentRun) -> Row:
        exp = await self.store.experiments.get(body.experiment_id)
        if body.workflow_id and body.workflow_id != exp["workflow_id"]:
            raise NotFound(
                f"Experiment {exp['id']} not found in workflow {body.workflow_id}",
                details={"experiment_id": exp["id"], "workflow_id": body.workflow_id},
            )
        wf = await self.store.workflows.get_workflow(exp["workflow_id"])
        block, bfp, dfp = await self.current_fingerprints(exp)
        if block is None or bfp is None:
            raise NotFound(f"Block {exp['block_id']} of experiment {exp['id']} no longer exists")
        if body.plan_token and body.plan_token != planning.metrics_validity_fingerprint(bfp, dfp):
            raise Conflict("The run plan changed since it was previewed", code="plan_changed")
        run = {
            "id": new_id("exprun"),
            "kind": "experiment",
            "workflow_id": exp["workflow_id"],
            "workflow_version_id": await self.draft_version(exp["workflow_id"]),
            "workflow_name": wf["name"],
            "experiment_id": exp["id"],
            "block_id": block["id"],
            "block_type": block["type"],
            "n_consensus": exp["n_consensus"],
            "fingerprints": {
                "block_execution_fingerprint": bfp,
                "documents_fingerprint": dfp,
                "metrics_validity_fingerprint": planning.metrics_validity_fingerprint(bfp, dfp),
            },
        }
        row, event = await self.store.runs.create_run(run, experiment_id=exp["id"])
        self.scheduler.hub.publish([event])
        self.scheduler.submit(row["id"])
        return row

    async def cancel_experiment_run(self, run_id: str) -> dict[str, Any]:
        """`{id, lifecycle}`: idempotent on a cancelled run, 404 on a completed or failed one."""
        run = await self.store.runs.get(run_id, "experiment")
        if run["status"] not in ("completed", "error", "cancelled"):
            reason = "cancelled by request"
            if await self.scheduler.cancel(run_id, reason):
                # The cancel committed this state; no read-back needed.
                return {"id": run_id, "status": "cancelled", "cancel_reason": reason, "error": None}
            run = await self.store.runs.get(run_id, "experiment")  # it ended meanwhile
        if run["status"] in ("completed", "error"):
            raise NotFound(
                f"Experiment run {run_id} is {run['status']} and cannot be cancelled",
                code="not_cancellable",
                details={"run_id": run_id, "status": run["status"]},
            )
        return {"id": run_id, "status": run["status"], "cancel_reason": run.get("cancel_reason"), "error": None}
