"""The command line and the client side: `serve`, `worker`, the client commands, the HTTP client, the importer."""

from __future__ import annotations

from orchestrator.cli.main import main

__all__ = ["main"]
