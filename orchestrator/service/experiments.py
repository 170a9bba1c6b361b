"""Experiments, their runs, results and artifacts (spec §2.11–2.15), each experiment read with its
freshness and run plan (§3.6–3.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.core import planning
from orchestrator.core.freshness import (
    ExperimentPlan,
    Freshness,
    experiment_freshness,
    experiment_plan,
    experiment_status,
    plan_token_holds,
)
from orchestrator.core.lifecycle import TERMINAL
from orchestrator.core.planning import DocumentSet
from orchestrator.errors import Conflict, NotFound, Unprocessable
from orchestrator.ids import new_run_id
from orchestrator.service.base import UseCase
from orchestrator.service.runs import CANCEL_REASON
from orchestrator.store.records import ArtifactRecord, Page, PageRequest, ResultRecord, Row, RunRecord
from orchestrator.wire import requests as rq


@dataclass(frozen=True)
class ExperimentView:
    experiment: Row
    block_type: str
    last_run: RunRecord | None
    status: str  # spec §3.7
    freshness: Freshness
    plan: ExperimentPlan


@dataclass(frozen=True)
class Cancelled:
    run_id: str
    status: str
    reason: str | None


class ExperimentService(UseCase):
    # -- definitions
    async def list_page(
        self, workflow_id: str, req: PageRequest, *, block_id: str | None
    ) -> tuple[Page[Row], list[ExperimentView]]:
        await self._store.workflows.get_workflow(workflow_id)
        page = await self._store.experiments.list_page(workflow_id, req, block_id=block_id)
        return page, [await self._view(r) for r in page.rows]

    async def get(self, experiment_id: str) -> ExperimentView:
        return await self._view(await self._store.experiments.get(experiment_id))

    async def create(self, body: rq.CreateExperiment, documents: DocumentSet | None = None) -> ExperimentView:
        """`documents`: the set already parsed from the request as a stream (else `body.documents`)."""
        await self._store.workflows.get_workflow(body.workflow_id)
        if body.source_experiment_id:
            src = await self._store.experiments.get(body.source_experiment_id)
            if src["workflow_id"] != body.workflow_id:
                raise NotFound(f"Experiment {src['id']} not found in workflow {body.workflow_id}")
            copied = DocumentSet.of(await self._store.experiments.documents(src["id"]))
            row = await self._store.experiments.create(
                workflow_id=body.workflow_id,
                block_id=src["block_id"],
                name=src["name"] + " (Copy)",
                n_consensus=src["n_consensus"],
                documents=copied,
            )
            return await self._view(row)
        block = await self._store.workflows.get_block(str(body.block_id), body.workflow_id)
        if block["type"] not in planning.RUNNABLE_TYPES:
            raise Unprocessable(
                f"Experiments need an extract, classifier or split block, not {block['type']}",
                code="block_type_unsupported",
                details={"block_id": block["id"]},
            )
        docs = await self._documents(documents, body.documents, body.document_captures)
        row = await self._store.experiments.create(
            workflow_id=body.workflow_id,
            block_id=block["id"],
            name=body.name or block["label"] or "Experiment",
            n_consensus=body.n_consensus or 3,
            documents=docs or DocumentSet.of([]),
        )
        return await self._view(row)

    async def update(
        self, experiment_id: str, body: rq.UpdateExperiment, documents: DocumentSet | None = None
    ) -> ExperimentView:
        await self._store.experiments.get(experiment_id)
        docs = await self._documents(documents, body.documents, body.document_captures)
        row = await self._store.experiments.update(
            experiment_id, name=body.name, n_consensus=body.n_consensus, documents=docs
        )
        return await self._view(row)

    async def delete(self, experiment_id: str) -> None:
        await self._store.experiments.get(experiment_id)
        # Any open run, not only the latest: deleting would pull the rows from under the runner.
        for run in await self._store.runs.open_runs():
            if run.get("experiment_id") == experiment_id:
                raise Conflict(
                    f"Experiment {experiment_id} has a run in flight ({run['id']}); cancel it first",
                    code="run_in_flight",
                    details={"run_id": run["id"]},
                )
        await self._store.experiments.delete(experiment_id)

    async def documents(self, experiment_id: str) -> list[Row]:
        await self._store.experiments.get(experiment_id)
        return await self._store.experiments.documents(experiment_id)

    # -- runs
    async def create_run(self, body: rq.CreateExperimentRun) -> RunRecord:
        exp = await self._store.experiments.get(body.experiment_id)
        if body.workflow_id and body.workflow_id != exp["workflow_id"]:
            raise NotFound(
                f"Experiment {exp['id']} not found in workflow {body.workflow_id}",
                details={"experiment_id": exp["id"], "workflow_id": body.workflow_id},
            )
        wf = await self._store.workflows.get_workflow(exp["workflow_id"])
        block, bfp, dfp = await self.current_fingerprints(exp)
        if block is None or bfp is None:
            raise NotFound(f"Block {exp['block_id']} of experiment {exp['id']} no longer exists")
        if not plan_token_holds(body.plan_token, bfp, dfp, exp["n_consensus"]):
            raise Conflict("The run plan changed since it was previewed", code="plan_changed")
        run = {
            "id": new_run_id("experiment"),
            "kind": "experiment",
            "workflow_id": exp["workflow_id"],
            "workflow_version_id": await self._draft_version(exp["workflow_id"]),
            "workflow_name": wf["name"],
            "experiment_id": exp["id"],
            "block_id": block["id"],
            "block_type": block["type"],
            "n_consensus": exp["n_consensus"],
            "trigger_type": body.trigger.type if body.trigger else "api",
            "cache_enabled": body.cache is not False,
            "fingerprints": {
                "block_execution_fingerprint": bfp,
                "documents_fingerprint": dfp,
                "metrics_validity_fingerprint": planning.metrics_validity_fingerprint(bfp, dfp, exp["n_consensus"]),
            },
        }
        return await self._launch(run, experiment_id=exp["id"])

    async def list_runs(self, req: PageRequest, filters: dict[str, Any]) -> Page[RunRecord]:
        return await self._store.runs.list_page(("experiment",), req, filters)

    async def get_run(self, run_id: str) -> RunRecord:
        return await self._store.runs.get(run_id, "experiment")

    async def cancel_run(self, run_id: str) -> Cancelled:
        """Idempotent on a cancelled run, 404 `not_cancellable` on a completed or failed one."""
        run = await self._store.runs.get(run_id, "experiment")
        if run["status"] not in TERMINAL:
            if await self._deps.runner.cancel(run_id, CANCEL_REASON):
                # The cancel committed this state; no read-back needed.
                return Cancelled(run_id, "cancelled", CANCEL_REASON)
            run = await self._store.runs.get(run_id, "experiment")  # it ended meanwhile
        if run["status"] in ("completed", "error"):
            raise NotFound(
                f"Experiment run {run_id} is {run['status']} and cannot be cancelled",
                code="not_cancellable",
                details={"run_id": run_id, "status": run["status"]},
            )
        return Cancelled(run_id, run["status"], run.get("cancel_reason"))

    async def results(self, run_id: str, req: PageRequest) -> Page[ResultRecord]:
        run = await self._store.runs.get(run_id, "experiment")
        page = await self._store.children.list_page(run["id"], req)
        for child in page.rows:
            child["experiment_id"] = run["experiment_id"]
        return page

    async def result(self, result_id: str) -> ResultRecord:
        return await self._store.children.get(result_id, ("experiment",))

    async def artifact(self, artifact_id: str) -> ArtifactRecord:
        return await self._store.children.artifact(artifact_id)

    async def artifacts(self, req: PageRequest, *, run_id: str | None, operation: str | None) -> Page[ArtifactRecord]:
        return await self._store.children.list_artifacts(req, run_id=run_id, operation=operation)

    # -- helpers
    async def _documents(
        self,
        streamed: DocumentSet | None,
        documents: list[rq.ExperimentDocument] | None,
        captures: list[rq.DocumentCapture] | None,
    ) -> DocumentSet | None:
        """The document set to store (None: leave it as it is), every file it names checked to exist."""
        if captures:
            raise Unprocessable(
                "document_captures need workflow runs, which this server does not record; "
                "pass `documents` with explicit handle_inputs",
                code="unsupported_capture",
            )
        docs = streamed
        if docs is None and documents is not None:
            docs = DocumentSet.of(d.model_dump(mode="json", exclude_none=True) for d in documents)
        for file_id in sorted(docs.file_ids if docs else ()):
            try:
                await self._store.files.get(file_id)
            except NotFound as exc:
                raise Unprocessable(
                    f"A document refers to unknown file {file_id}",
                    code="file_not_found",
                    details={"file_id": file_id},
                ) from exc
        return docs

    async def _view(self, exp: Row) -> ExperimentView:
        block, bfp, dfp = await self.current_fingerprints(exp)
        last = None
        if exp["last_run_id"]:
            try:
                last = await self._store.runs.get(exp["last_run_id"])
            except NotFound:
                last = None
        status = last["status"] if last else None
        fresh = experiment_freshness(last, bfp, dfp, exp["n_consensus"])
        return ExperimentView(
            experiment=exp,
            block_type=(block or {}).get("type", "extract"),
            last_run=last,
            status=experiment_status(status),
            freshness=fresh,
            plan=experiment_plan(fresh, status, exp["document_count"], bfp, dfp, exp["n_consensus"]),
        )
