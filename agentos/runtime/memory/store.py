"""`Memory`: vector memory over Chroma, with a lexical index, namespaces and one writer.

Layout of the memory folder (``<data_dir>/memory`` by default):

- Chroma's files (embedded ``PersistentClient``), unless a Chroma server is used
  (``AGENTOS_MEMORY_URL=http://host:port``, through ``HttpClient``);
- ``index.sqlite``: the BM25 index and the ingested-file records. With a Chroma server the
  server holds the data and this index is a local copy of its texts, brought in step before
  every recall that ranks lexically (see below); the ingested-file records stay local, so an
  unchanged file is skipped only by the folder that ingested it (another folder ingesting the
  same path rewrites the same chunk ids: no duplicates);
- ``embeddings.sqlite``: the embedding cache;
- ``write.lock``: every write (and opening the store) holds it, so two processes never write
  at once.

Each namespace is one Chroma collection (cosine space, named by a hash of the namespace, which
is kept in the collection's metadata).

Several processes, each with its own memory folder, may share one Chroma server: every write
through this class also stamps a new ``agentos_revision`` in the collection's metadata, and a
hybrid or lexical recall first compares the server's revision and count with what the local
index last saw. When they differ it reads the ids and content hashes of the whole namespace from
the server, fetches the texts it lacks or holds outdated, and drops the ids the server no longer
has; so one process recalls, through both halves, what another remembered or forgot. Vector-only
recall reads the server directly. The write lock is per folder: it keeps the local index whole;
the server orders concurrent writes to Chroma itself.

Vectors are always computed here and passed to Chroma: Chroma's default embedding function,
which downloads a model, is never used.

This class does not check grants: the kernel does, before it calls it (see
:mod:`agentos.runtime.memory.syscalls`). Scripts that own the data use it directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from agentos.errors import MemoryUnavailable, UserError
from agentos.runtime.memory._lexical import LexicalIndex, text_hash
from agentos.runtime.memory._lock import WriteLock
from agentos.runtime.memory.embedder import (
    DEFAULT_EMBEDDER,
    CachedEmbedder,
    Embedder,
    embedder_from_spec,
)
from agentos.runtime.memory.fusion import mmr, reciprocal_rank_fusion
from agentos.runtime.memory.namespaces import validate_namespace

if TYPE_CHECKING:
    from agentos.config import Settings

__all__ = ["Hit", "Memory", "Mode"]

Mode = Literal["hybrid", "vector", "lexical"]
Scalar = str | int | float | bool
_RESERVED = ("namespace", "content_hash", "created_at")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Hit:
    """One recalled (or listed) chunk.

    Attributes:
        id: the chunk id (stable: ``get`` and ``forget`` take it; citations name it).
        text: the chunk's text.
        namespace: where it lives.
        source: the file it came from (ingested chunks), else ``metadata.get("source")``.
        position: its index within ``source`` (0-based), when it came from a file.
        score: higher is better; the fused reciprocal-rank score in hybrid mode, the cosine
            similarity in vector mode, BM25 in lexical mode, 0 for ``get``/``list``.
        metadata: every metadata field stored with it.
        similarity: the cosine similarity of its embedding to the query's, when the vector
            search ranked it (``None`` for a lexical-only hit and for ``get``/``list``): unlike
            a reciprocal-rank score it says how close a hit is, not only that it came first.
    """

    id: str
    text: str
    namespace: str
    source: str | None
    position: int | None
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    similarity: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``source``, ``chunk_id``, ``score``, ``text``, ``namespace``,
        ``position``, ``metadata``, ``similarity``."""
        d = asdict(self)
        d["chunk_id"] = d.pop("id")
        return d


def _hit(namespace: str, id_: str, text: str | None, meta: Mapping[str, Any] | None,
         score: float = 0.0, similarity: float | None = None) -> Hit:
    meta = dict(meta or {})
    position = meta.get("position")
    return Hit(id_, text or "", namespace, meta.get("source"),
               int(position) if position is not None else None, float(score), meta, similarity)


def _where(filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chroma's ``where``: ``{"a": 1, "b": 2}`` becomes ``{"$and": [{"a": 1}, {"b": 2}]}``;
    operator forms (``{"position": {"$lt": 3}}``, ``{"$or": [...]}``) pass through."""
    if not filters:
        return None
    parts = [{key: value} for key, value in filters.items()]
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _normalise(text: str) -> str:
    return " ".join(text.split())


def content_hash(text: str) -> str:
    """SHA-256 of the text with whitespace runs collapsed."""
    return text_hash(text)


def _dedup_key(namespace: str, text: str) -> str:
    """What exact de-duplication keys on: the namespace and the text's words, case-folded
    (so case, spacing and punctuation differences merge)."""
    words = " ".join(_WORDS.findall(text.casefold()))
    return "m-" + hashlib.sha256(f"{namespace}\0{words}".encode()).hexdigest()[:32]


class Memory:
    """Vector memory: remember, recall (hybrid), get, list, forget, per namespace.

    Args:
        path: the memory folder (created). Holds Chroma's files (embedded mode), the lexical
            index, the embedding cache and the write lock.
        url: a Chroma server (``http://host:port``); ``None`` for the embedded store.
        embedder: an :class:`~agentos.runtime.memory.embedder.Embedder` or a spec string
            (``"all-MiniLM-L6-v2"``, a model folder, ``openai:MODEL@BASE_URL``); wrapped in the
            on-disk cache.
        dedup_threshold: ``remember`` merges a text into an existing memory whose cosine
            similarity is at least this; repeats that differ only in case, spacing or
            punctuation always merge. (With MiniLM, 0.96 merges a sentence that lost a word
            but keeps "moved to Thursday" apart from "moved to Friday", at 0.955.)

    Raises:
        MemoryUnavailable: the Chroma server cannot be reached, or the folder cannot be used.
        UserError: the embedder spec is bad.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        url: str | None = None,
        embedder: Embedder | str | None = None,
        dedup_threshold: float = 0.96,
    ) -> None:
        self.path = Path(path).expanduser()
        self.url = url
        self.dedup_threshold = dedup_threshold
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MemoryUnavailable(f"cannot create memory folder {self.path}: {error}") from error
        inner = embedder_from_spec(embedder or DEFAULT_EMBEDDER) \
            if embedder is None or isinstance(embedder, str) else embedder
        self.embedder = inner if isinstance(inner, CachedEmbedder) \
            else CachedEmbedder(inner, self.path / "embeddings.sqlite")
        self.lock = WriteLock(self.path / "write.lock")
        with self.lock.held():  # two processes creating a fresh store at once collide
            self.lexical = LexicalIndex(self.path / "index.sqlite")
            self._client = self._connect()
        self._collections: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> Memory:
        """The memory of ``settings`` (default: loaded): ``<data_dir>/memory``, the
        ``memory_url`` server when set, the ``memory_embedder``."""
        if settings is None:
            from agentos.config import load_settings

            settings = load_settings()
        kwargs.setdefault("embedder", settings.memory_embedder)
        return cls(settings.memory_path, url=settings.memory_url, **kwargs)

    # --- Chroma -------------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings
        except ImportError:
            raise UserError("vector memory needs chromadb: pip install 'agentos-kit[memory]'") from None
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.url is None:
            try:
                return chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)
            except Exception as error:  # Chroma raises its own InternalError, OSError, ...
                raise MemoryUnavailable(
                    f"cannot open the embedded Chroma store in {self.path} "
                    f"({type(error).__name__}: {error}). Check the folder is writable and not "
                    "full, or move it aside to start afresh."
                ) from error
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        try:
            return chromadb.HttpClient(
                host=parts.hostname or "127.0.0.1", port=parts.port or 8000,
                ssl=parts.scheme == "https", settings=chroma_settings,
            )
        except Exception as error:  # ValueError "Could not connect", httpx errors
            raise self._unavailable(error) from error

    def _unavailable(self, error: BaseException) -> MemoryUnavailable:
        if self.url is not None:
            return MemoryUnavailable(
                f"the Chroma server at {self.url} cannot be reached ({type(error).__name__}: "
                f"{error}). Start it (`chroma run --path DIR --port PORT`) or unset "
                "AGENTOS_MEMORY_URL to use the embedded store."
            )
        return MemoryUnavailable(
            f"the embedded Chroma store in {self.path} failed ({type(error).__name__}: {error}). "
            "If the disk is full, free space and run the same command again: nothing is "
            "recorded as done until all of it is written."
        )

    @contextlib.contextmanager
    def _chroma(self) -> Iterator[None]:
        """Turn Chroma's and its transport's failures into `MemoryUnavailable` / `UserError`."""
        import httpx
        from chromadb.errors import ChromaError, InvalidArgumentError

        try:
            yield
        except (UserError, MemoryUnavailable):
            raise
        except InvalidArgumentError as error:
            raise UserError(f"memory rejected the request: {error}") from error
        except (httpx.HTTPError, ChromaError, OSError) as error:
            raise self._unavailable(error) from error
        except ValueError as error:
            if "connect" in str(error).lower():
                raise self._unavailable(error) from error
            raise UserError(f"memory rejected the request: {error}") from error

    @staticmethod
    def collection_name(namespace: str) -> str:
        """The Chroma collection of a namespace: ``agentos-`` and a hash of its name."""
        return "agentos-" + hashlib.sha256(namespace.encode()).hexdigest()[:24]

    def _collection(self, namespace: str, *, create: bool) -> Any | None:
        validate_namespace(namespace)
        collection = self._collections.get(namespace)
        if collection is not None:
            return collection
        name = self.collection_name(namespace)
        with self._chroma():
            if create:
                collection = self._client.get_or_create_collection(
                    name, embedding_function=None, metadata={"agentos_namespace": namespace},
                    configuration={"hnsw": {"space": "cosine"}},
                )
            else:
                from chromadb.errors import NotFoundError

                try:
                    collection = self._client.get_collection(name, embedding_function=None)
                except NotFoundError:
                    return None
        self._collections[namespace] = collection
        return collection

    # --- writing ------------------------------------------------------------------------------

    def remember(self, namespace: str, text: str, metadata: Mapping[str, Scalar] | None = None) -> str:
        """Store ``text``; returns its id. A repeat or near-duplicate (cosine at least
        ``dedup_threshold``) of a memory already in ``namespace`` is merged: nothing new is
        stored and the existing id comes back.

        Raises:
            UserError: empty text, bad namespace or metadata (values: str, int, float, bool).
            MemoryUnavailable: the store failed; nothing was written.
        """
        return self.remember_many(namespace, [text], [metadata or {}])[0]

    def remember_many(
        self, namespace: str, texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Scalar]] | None = None,
    ) -> list[str]:
        """:meth:`remember` for several texts in one batch (duplicates within it merge too)."""
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        if len(metadatas) != len(texts):
            raise UserError("remember_many needs one metadata mapping per text")
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise UserError("cannot remember an empty text")
        if not texts:
            return []
        vectors = self.embedder.embed([_normalise(t) for t in texts])
        ids: list[str] = []
        new_ids, new_texts, new_meta, new_vecs = [], [], [], []
        with self.lock.held():
            collection = self._collection(namespace, create=True)
            exact = [_dedup_key(namespace, t) for t in texts]
            with self._chroma():
                existing = set(collection.get(ids=list(dict.fromkeys(exact)), include=[])["ids"])
                nearest = collection.query(
                    query_embeddings=vectors.tolist(), n_results=1, include=["distances"],
                ) if collection.count() else None
            for i, text in enumerate(texts):
                if exact[i] in existing:
                    ids.append(exact[i])
                    continue
                if nearest is not None and nearest["ids"][i]:
                    if 1.0 - nearest["distances"][i][0] >= self.dedup_threshold:
                        ids.append(nearest["ids"][i][0])
                        continue
                if new_vecs:
                    sims = np.stack(new_vecs) @ vectors[i]
                    best = int(np.argmax(sims))
                    if sims[best] >= self.dedup_threshold:
                        ids.append(new_ids[best])
                        continue
                meta = _clean_metadata(metadatas[i])
                meta.update(namespace=namespace, content_hash=content_hash(text),
                            created_at=time.time())
                new_ids.append(exact[i])
                new_texts.append(text)
                new_meta.append(meta)
                new_vecs.append(vectors[i])
                ids.append(exact[i])
            if new_ids:
                self._write(namespace, collection, new_ids, new_texts, new_meta, np.stack(new_vecs))
        return ids

    def add_chunks(
        self, namespace: str, ids: Sequence[str], texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Scalar]], *, batch_size: int = 256,
    ) -> None:
        """Write chunks under the given ids (replacing any with the same id), no merging:
        ingestion keeps one chunk per file position so a file's chunks can be replaced."""
        if not ids:
            return
        vectors = self.embedder.embed(list(texts))
        with self.lock.held():
            collection = self._collection(namespace, create=True)
            metas = []
            for meta, text in zip(metadatas, texts):
                meta = _clean_metadata(meta)
                meta.update(namespace=namespace, content_hash=content_hash(text),
                            created_at=time.time())
                metas.append(meta)
            for start in range(0, len(ids), batch_size):
                end = start + batch_size
                self._write(namespace, collection, list(ids[start:end]), list(texts[start:end]),
                            metas[start:end], vectors[start:end])

    def _write(self, namespace: str, collection: Any, ids: list[str], texts: list[str],
               metas: list[dict[str, Any]], vectors: np.ndarray) -> None:
        with self._chroma():
            collection.upsert(ids=ids, documents=texts, metadatas=metas, embeddings=vectors)
            self._stamp(namespace, collection)
        try:
            self.lexical.add(namespace, zip(ids, texts))
        except Exception as error:  # keep both indexes in step: undo the vector half
            with contextlib.suppress(Exception), self._chroma():
                collection.delete(ids=ids)
            raise self._unavailable(error) from error

    def _stamp(self, namespace: str, collection: Any) -> None:
        """With a server: a new revision in the collection's metadata, so other processes'
        lexical indexes see that it changed. Caller is inside ``_chroma``."""
        if self.url is not None:
            collection.modify(metadata={"agentos_namespace": namespace,
                                        "agentos_revision": uuid.uuid4().hex})

    def _sync_lexical(self, namespace: str) -> Any | None:
        """With a server: bring the local lexical index of ``namespace`` in step with the
        server's collection (see the module docstring); returns the collection, fetched
        afresh (``None`` when the server has none, and then the local index is dropped)."""
        from chromadb.errors import NotFoundError

        name = self.collection_name(validate_namespace(namespace))
        with self._chroma():
            try:
                collection = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                collection = None
            if collection is None:
                self._collections.pop(namespace, None)
                self.lexical.drop(namespace)
                return None
            self._collections[namespace] = collection  # a re-created collection has a new id
            revision = str((collection.metadata or {}).get("agentos_revision", ""))
            count = int(collection.count())
            if revision == self.lexical.revision(namespace) and count == self.lexical.count(namespace):
                return collection
            server: dict[str, str | None] = {}
            page = 5000
            for offset in range(0, count + page, page):
                got = collection.get(include=["metadatas"], limit=page, offset=offset)
                for id_, meta in zip(got["ids"], got["metadatas"]):
                    server[id_] = (meta or {}).get("content_hash")
                if len(got["ids"]) < page:
                    break
            local = self.lexical.hashes(namespace)
            stale = [i for i, h in server.items() if h is None or local.get(i) != h]
            items: list[tuple[str, str]] = []
            for start in range(0, len(stale), 1000):
                got = collection.get(ids=stale[start:start + 1000], include=["documents"])
                items += [(i, d or "") for i, d in zip(got["ids"], got["documents"])]
        self.lexical.sync(namespace, items, [i for i in local if i not in server], revision)
        return collection

    def forget(self, namespace: str, ids: Sequence[str] | None = None,
               filters: Mapping[str, Any] | None = None) -> int:
        """Delete memories by id, by metadata filter, or both (AND); returns how many went.

        Raises:
            UserError: neither ``ids`` nor ``filters`` given (to empty a namespace, use
                :meth:`drop`).
        """
        if not ids and not filters:
            raise UserError("forget needs ids or filters; to empty a namespace use drop(namespace)")
        with self.lock.held():
            collection = self._collection(namespace, create=False)
            if collection is None:
                return 0
            with self._chroma():
                found = collection.get(ids=list(ids) if ids else None, where=_where(filters),
                                       include=[])["ids"]
                if found:
                    collection.delete(ids=found)
                    self._stamp(namespace, collection)
            self.lexical.delete(namespace, found)
        return len(found)

    def drop(self, namespace: str) -> int:
        """Delete a whole namespace; returns how many memories it held."""
        with self.lock.held():
            collection = self._collection(namespace, create=False)
            if collection is None:
                return 0
            with self._chroma():
                count = collection.count()
                self._client.delete_collection(self.collection_name(namespace))
            self._collections.pop(namespace, None)
            self.lexical.drop(namespace)
        return int(count)

    # --- reading ------------------------------------------------------------------------------

    def recall(
        self,
        namespaces: str | Sequence[str],
        query: str,
        k: int = 5,
        filters: Mapping[str, Any] | None = None,
        *,
        mode: Mode = "hybrid",
        diversity: float = 0.0,
        fetch_k: int | None = None,
    ) -> list[Hit]:
        """The ``k`` best memories for ``query`` across ``namespaces``.

        Hybrid mode ranks by vectors and by BM25 separately (``fetch_k`` candidates each),
        fuses the two rankings by reciprocal rank, then picks ``k`` by MMR when ``diversity``
        is above 0 (``lambda = 1 - diversity``). ``filters`` restrict both halves to memories
        whose metadata match (Chroma ``where`` syntax; plain ``{"key": value}`` means equal).

        Raises:
            UserError: empty query, ``k < 1``, bad namespace, mode or filter.
            MemoryUnavailable: the store failed.
        """
        if not isinstance(query, str) or not query.strip():
            raise UserError("empty query: give some words to search for")
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}")
        if mode not in ("hybrid", "vector", "lexical"):
            raise UserError(f"unknown recall mode {mode!r}: use hybrid, vector or lexical")
        if not 0.0 <= diversity <= 1.0:
            raise UserError(f"diversity must be in [0, 1], got {diversity}")
        names = [namespaces] if isinstance(namespaces, str) else list(dict.fromkeys(namespaces))
        fetch = fetch_k or max(4 * k, 20)
        vector_fetch = k if mode == "vector" and diversity == 0 and len(names) == 1 else fetch
        include = ["documents", "metadatas", *(["embeddings"] if diversity > 0 else [])]
        where = _where(filters)
        query_vector = self.embedder.embed([query])[0] if mode != "lexical" else None
        candidates: dict[tuple[str, str], tuple[str, dict[str, Any], Any]] = {}
        vector_rank: list[tuple[float, tuple[str, str]]] = []
        lexical_rank: list[tuple[float, tuple[str, str]]] = []
        for namespace in names:
            collection = self._sync_lexical(namespace) if self.url is not None and \
                mode != "vector" else self._collection(namespace, create=False)
            if collection is None:
                continue
            with self._chroma():
                if query_vector is not None:
                    found = collection.query(
                        query_embeddings=[query_vector], n_results=vector_fetch, where=where,
                        include=[*include, "distances"],
                    )
                    vectors = found["embeddings"][0] if diversity > 0 else [None] * len(found["ids"][0])
                    for id_, doc, meta, vec, dist in zip(
                        found["ids"][0], found["documents"][0], found["metadatas"][0],
                        vectors, found["distances"][0],
                    ):
                        candidates[(namespace, id_)] = (doc, meta, vec)
                        vector_rank.append((1.0 - float(dist), (namespace, id_)))
                if mode != "vector":
                    scored = self.lexical.search(namespace, query, fetch)
                    if scored:
                        got = collection.get(ids=[i for i, _ in scored], where=where,
                                             include=include)
                        vectors = got["embeddings"] if diversity > 0 else [None] * len(got["ids"])
                        present = {
                            i: (d, m, v) for i, d, m, v in
                            zip(got["ids"], got["documents"], got["metadatas"], vectors)
                        }
                        for id_, score in scored:
                            if id_ in present:
                                candidates.setdefault((namespace, id_), present[id_])
                                lexical_rank.append((score, (namespace, id_)))
        if not candidates:
            return []
        similarity = {key: sim for sim, key in vector_rank}
        vector_rank.sort(key=lambda pair: -pair[0])
        lexical_rank.sort(key=lambda pair: -pair[0])
        if mode == "vector":
            fused = [(key, score) for score, key in vector_rank]
        elif mode == "lexical":
            fused = [(key, score) for score, key in lexical_rank]
        else:
            fused = reciprocal_rank_fusion(
                [[key for _, key in vector_rank], [key for _, key in lexical_rank]]
            )
        if diversity > 0 and len(fused) > k:
            pool = fused[:fetch]
            picked = mmr([s for _, s in pool],
                         np.stack([np.asarray(candidates[key][2]) for key, _ in pool]),
                         k, 1.0 - diversity)
            fused = [pool[i] for i in picked]
        return [
            _hit(key[0], key[1], candidates[key][0], candidates[key][1], score,
                 similarity.get(key))
            for key, score in fused[:k]
        ]

    def get(self, namespace: str, ids: Sequence[str]) -> list[Hit]:
        """The memories of ``namespace`` with these ids (ids it does not hold are left out)."""
        collection = self._collection(namespace, create=False)
        if collection is None or not ids:
            return []
        with self._chroma():
            got = collection.get(ids=list(ids), include=["documents", "metadatas"])
        return [_hit(namespace, i, d, m) for i, d, m in
                zip(got["ids"], got["documents"], got["metadatas"])]

    def list(self, namespace: str, *, limit: int = 100, offset: int = 0,
             filters: Mapping[str, Any] | None = None) -> list[Hit]:
        """Memories of ``namespace`` in storage order, ``limit`` from ``offset``."""
        collection = self._collection(namespace, create=False)
        if collection is None:
            return []
        with self._chroma():
            got = collection.get(where=_where(filters), limit=limit, offset=offset,
                                 include=["documents", "metadatas"])
        return [_hit(namespace, i, d, m) for i, d, m in
                zip(got["ids"], got["documents"], got["metadatas"])]

    def count(self, namespace: str) -> int:
        collection = self._collection(namespace, create=False)
        if collection is None:
            return 0
        with self._chroma():
            return int(collection.count())

    def namespaces(self) -> list[str]:
        """Every namespace that holds (or held) memories in this store."""
        with self._chroma():
            collections = self._client.list_collections()
        names = []
        for collection in collections:
            meta = collection.metadata or {}
            if collection.name.startswith("agentos-") and "agentos_namespace" in meta:
                names.append(str(meta["agentos_namespace"]))
        return sorted(names)

    def stats(self) -> dict[str, Any]:
        """Where the memory lives and how many memories each namespace holds."""
        return {
            "backend": f"chroma server {self.url}" if self.url else f"embedded chroma {self.path}",
            "path": str(self.path),
            "embedder": self.embedder.name,
            "namespaces": {ns: self.count(ns) for ns in self.namespaces()},
        }

    def close(self) -> None:
        """Close the local indexes (the Chroma client needs no closing)."""
        self.lexical.close()
        self.embedder.close()


def _clean_metadata(metadata: Mapping[str, Any]) -> dict[str, Scalar]:
    clean: dict[str, Scalar] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or key in _RESERVED or key.startswith("$"):
            raise UserError(f"metadata key {key!r} is reserved or not a string")
        if value is None:
            continue
        if not isinstance(value, (str, int, float, bool)):
            raise UserError(
                f"metadata {key}={value!r}: values must be str, int, float or bool"
            )
        clean[key] = value
    return clean
