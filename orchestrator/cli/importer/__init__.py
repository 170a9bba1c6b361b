"""`orchestrator import FILE.yaml`: a workflow, its evals and experiments kept in git."""

from __future__ import annotations

from orchestrator.cli.importer.command import cmd_import

__all__ = ["cmd_import"]
