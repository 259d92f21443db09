"""Vector memory: Chroma underneath, offline embeddings, hybrid recall, namespaces, ingestion.

Importing this package is light (no chromadb, torch or sentence-transformers): they load when a
`Memory` is built or first embeds.
"""

from __future__ import annotations

from agentos.runtime.memory.embedder import (
    CachedEmbedder,
    Embedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
)
from agentos.runtime.memory.namespaces import GLOBAL, Grants, agent_namespace, crew_namespace
from agentos.runtime.memory.store import Hit, Memory

__all__ = [
    "GLOBAL",
    "CachedEmbedder",
    "Embedder",
    "Grants",
    "Hit",
    "Memory",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "agent_namespace",
    "crew_namespace",
]
