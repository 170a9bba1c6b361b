"""The offline, deterministic engine for demos, CI and benchmarks."""

from __future__ import annotations

from orchestrator.engines.simulated.engine import SimulatedEngine

__all__ = ["SimulatedEngine"]
