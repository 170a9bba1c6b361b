"""The orchestrator benchmark: `scripts/bench` (see docs/performance.md). Not part of the installed package."""

from __future__ import annotations
