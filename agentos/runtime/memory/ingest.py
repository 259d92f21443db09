"""Ingestion: files and folders into a namespace, idempotently.

Each file's SHA-256 is recorded (in ``index.sqlite``) once *all* of its chunks are written, so:

- an unchanged file adds nothing;
- a changed file's chunks are replaced (the old ones are deleted first);
- a file whose ingestion was interrupted (a crash, a full disk) is not recorded, and the next
  ingest deletes whatever part of it was written and writes it whole;
- with ``prune``, recorded files under the given paths that no longer exist lose their chunks.

With a Chroma server, a file whose write fails because the server went away (a restart, a
crash) is written again, whole, once the server is back: the ingest waits for it, with growing
pauses, up to ``server_wait`` seconds each time. Rewriting is safe because a file's old chunks
are deleted before its chunks are written under ids fixed by file and position. When the wait
runs out, the error says to run the same ingest again, which finishes the rest the same way.

Unsupported, binary, non-UTF-8 or unparsable files are skipped with a reason (in the report),
never half-ingested.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentos.errors import MemoryUnavailable, UserError
from agentos.runtime.memory.chunking import Chunk, chunk_file, file_kind
from agentos.runtime.memory.namespaces import GLOBAL, validate_namespace
from agentos.runtime.memory.store import Memory

__all__ = ["FileRecords", "IngestReport", "ingest"]


@dataclass
class IngestReport:
    """What one ingest did.

    Attributes:
        added: files ingested for the first time.
        replaced: changed files whose chunks were replaced.
        unchanged: files skipped because their content hash was already recorded.
        pruned: recorded files that no longer exist and lost their chunks (``prune``).
        chunks: chunks written.
        skipped: ``(path, reason)`` for every file that could not be ingested.
        seconds: wall time.
    """

    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    pruned: int = 0
    chunks: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


class FileRecords:
    """The ``files`` table: which file was ingested into which namespace, with what hash."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files (namespace TEXT NOT NULL, path TEXT NOT NULL, "
            "sha256 TEXT NOT NULL, chunks INTEGER NOT NULL, ingested_at REAL NOT NULL, "
            "PRIMARY KEY (namespace, path))"
        )

    def get(self, namespace: str, path: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT sha256 FROM files WHERE namespace=? AND path=?",
                                   (namespace, path)).fetchone()
        return row[0] if row else None

    def put(self, namespace: str, path: str, sha: str, chunks: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                             (namespace, path, sha, chunks, time.time()))

    def delete(self, namespace: str, path: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files WHERE namespace=? AND path=?", (namespace, path))

    def paths(self, namespace: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT path FROM files WHERE namespace=? ORDER BY path", (namespace,))]

    def count(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT namespace, count(*) FROM files GROUP BY namespace"))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _files(paths: Sequence[Path], exclude: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to ingest under ``paths`` (folders walked, hidden ones left out) and problems."""
    found: list[Path] = []
    problems: list[tuple[str, str]] = []

    def excluded(p: Path, root: Path) -> bool:
        rel = p.relative_to(root).as_posix() if p != root else p.name
        return any(fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(p.name, pattern)
                   for pattern in exclude)

    for root in paths:
        if not root.exists():
            problems.append((str(root), "does not exist; check the path"))
        elif root.is_file():
            if file_kind(root) is None:
                problems.append((str(root), "unsupported file type (use .md, .rst, .html, "
                                            ".txt, .py or .pdf)"))
            else:
                found.append(root)
        else:
            for p in sorted(root.rglob("*")):
                rel_parts = p.relative_to(root).parts
                if any(part.startswith(".") or part == "__pycache__" for part in rel_parts):
                    continue
                if p.is_file() and file_kind(p) is not None and not excluded(p, root):
                    found.append(p)
    return list(dict.fromkeys(found)), problems


def chunk_id(namespace: str, source: str, position: int) -> str:
    """Stable id of the chunk at ``position`` in file ``source``."""
    return "c-" + hashlib.sha256(f"{namespace}\0{source}\0{position}".encode()).hexdigest()[:32]


def _write_file(memory: Memory, records: FileRecords, namespace: str, source: str, sha: str,
                chunks: list[Chunk]) -> None:
    """One file's chunks into ``namespace``, then its record."""
    with memory.lock.held():
        # Whatever an earlier, interrupted or outdated write of this file left goes first.
        memory.forget(namespace, filters={"source": source})
        memory.add_chunks(
            namespace,
            [chunk_id(namespace, source, c.position) for c in chunks],
            [c.text for c in chunks],
            [{"source": source, "position": c.position, "section": c.section[:500],
              "kind": "document"} for c in chunks],
        )
        records.put(namespace, source, sha, len(chunks))


def _prune_file(memory: Memory, records: FileRecords, namespace: str, source: str) -> None:
    with memory.lock.held():
        memory.forget(namespace, filters={"source": source})
        records.delete(namespace, source)


def _retrying(memory: Memory, write: Callable[[], None], server_wait: float,
              notify: Callable[[str], None] | None) -> None:
    """``write()``; with a Chroma server, again after growing pauses (0.5 s doubling, at most
    5 s) while it raises `MemoryUnavailable`, until ``server_wait`` seconds have passed since
    the first failure. The embedded store is never retried (a full disk does not heal itself)."""
    deadline: float | None = None
    delay = 0.5
    while True:
        try:
            write()
            return
        except MemoryUnavailable as error:
            if memory.url is None:
                raise
            if deadline is None:
                deadline = time.monotonic() + server_wait
            if time.monotonic() + delay > deadline:
                raise MemoryUnavailable(
                    f"{error} It was not back within {server_wait:.0f} s (--server-wait). "
                    "Files written whole before then are recorded: once the server is back, run "
                    "the same ingest again; it skips them and writes the rest whole, adding no "
                    "duplicates."
                ) from error
            if notify is not None:
                notify(f"{error} Retrying in {delay:.1f} s; giving up {server_wait:.0f} s "
                       "after the server went away.")
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def ingest(
    memory: Memory,
    paths: Sequence[str | Path],
    namespace: str = GLOBAL,
    *,
    prune: bool = False,
    exclude: Sequence[str] = (),
    max_chars: int = 1000,
    overlap: int = 150,
    progress: Callable[[Path, int, int], None] | None = None,
    server_wait: float = 60.0,
    notify: Callable[[str], None] | None = None,
) -> IngestReport:
    """Ingest files and folders into ``namespace`` (see the module docstring for the rules).

    Args:
        memory: where the chunks go.
        paths: files and folders (walked recursively; hidden entries are left out).
        namespace: the target namespace.
        prune: also delete the chunks of recorded files under ``paths`` that are gone.
        exclude: glob patterns (matched against the path relative to a folder, and the name).
        max_chars, overlap: chunk size and overlap, in characters.
        progress: called as ``progress(path, done, total)`` after each file.
        server_wait: with a Chroma server, how many seconds to keep retrying a write after the
            server went away (0: fail at once).
        notify: called with a message before each such retry (what failed, when it retries).

    Raises:
        UserError: bad namespace or no paths.
        MemoryUnavailable: the store failed (the disk filled, or the Chroma server stayed away
            longer than ``server_wait``); files not finished are not recorded, so running the
            same ingest again completes them without duplicates.
    """
    validate_namespace(namespace)
    if not paths:
        raise UserError("nothing to ingest: give files or folders")
    started = time.monotonic()
    roots = [Path(p).expanduser().resolve() for p in paths]
    files, problems = _files(roots, exclude)
    report = IngestReport(skipped=problems)
    records = FileRecords(memory.path / "index.sqlite")
    try:
        for done, path in enumerate(files, 1):
            source = str(path)
            try:
                data = path.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                previous = records.get(namespace, source)
                if previous == sha:
                    report.unchanged += 1
                    continue
                chunks = chunk_file(path, max_chars=max_chars, overlap=overlap)
            except (UserError, OSError) as error:
                report.skipped.append((source, str(error)))
                continue
            finally:
                if progress is not None:
                    progress(path, done, len(files))
            texts = [c.text for c in chunks]
            memory.embedder.embed(texts)  # outside the write lock; add_chunks finds them cached
            _retrying(memory, functools.partial(_write_file, memory, records, namespace, source,
                                                sha, chunks), server_wait, notify)
            report.chunks += len(chunks)
            if previous is None:
                report.added += 1
            else:
                report.replaced += 1
        if prune:
            for source in records.paths(namespace):
                path = Path(source)
                under = any(path == root or root in path.parents for root in roots)
                if under and not path.exists():
                    _retrying(memory, functools.partial(_prune_file, memory, records, namespace,
                                                        source), server_wait, notify)
                    report.pruned += 1
    finally:
        records.close()
    report.seconds = time.monotonic() - started
    return report
