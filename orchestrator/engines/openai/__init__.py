"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM)."""

from __future__ import annotations

from orchestrator.engines.openai.engine import OpenAIEngine

__all__ = ["OpenAIEngine"]
