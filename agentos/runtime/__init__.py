"""The agentos runtime: kernel, scheduler, message bus, run store, LLM gateway, tool registry."""

from __future__ import annotations

__all__: list[str] = []
