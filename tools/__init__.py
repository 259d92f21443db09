"""Built-in agentos tools: local MoE model, long-context model, pruning, energy, desktop, code, retrieval.

Each tool module is imported lazily through the registry; nothing heavy is imported here.
"""

from __future__ import annotations

__all__: list[str] = []
