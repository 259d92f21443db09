"""The LLM gateway and the embedded local model."""

from __future__ import annotations

__all__: list[str] = []
