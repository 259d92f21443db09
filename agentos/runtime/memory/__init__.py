"""Vector memory: Chroma underneath, offline embeddings, hybrid recall, namespaces, ingestion.

Short-term memory (a token-bounded conversation window with summaries) is
:mod:`~agentos.runtime.memory.short_term`; episodic memory (past runs, searchable) is
:mod:`~agentos.runtime.memory.episodic`.

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
from agentos.runtime.memory.short_term import ConversationWindow, llm_summarizer
from agentos.runtime.memory.store import Hit, Memory

__all__ = [
    "GLOBAL",
    "CachedEmbedder",
    "ConversationWindow",
    "Embedder",
    "Grants",
    "Hit",
    "Memory",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "agent_namespace",
    "crew_namespace",
    "llm_summarizer",
]
