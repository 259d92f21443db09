"""The lexical half of hybrid recall: an SQLite FTS5 index ranked by BM25.

One table for every namespace (a column says which); Porter stemming over Unicode words. Writes
happen under the memory's write lock; SQLite's WAL lets other processes read meanwhile.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["LexicalIndex"]

_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to rank by; dropping them keeps OR-queries from matching every chunk.
_STOP = frozenset(
    "a an and are as at be by can do does for from how i in is it of on or that the this to "
    "what when where which who why will with you your".split()
)


def fts_query(text: str) -> str | None:
    """An FTS5 query matching any word of ``text`` (each word quoted, so nothing is syntax)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    words = [w for w in words if w not in _STOP] or words
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words[:64])


class LexicalIndex:
    """BM25 over chunk texts, per namespace.

    Args:
        path: the SQLite file (created), or ``":memory:"``.
    """

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5("
            "text, id UNINDEXED, namespace UNINDEXED, tokenize='porter unicode61')"
        )

    def add(self, namespace: str, items: Iterable[tuple[str, str]]) -> None:
        """Index ``(id, text)`` pairs, replacing any earlier text under the same id."""
        items = list(items)
        if not items:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._delete(namespace, [i for i, _ in items])
                self._db.executemany(
                    "INSERT INTO chunks (text, id, namespace) VALUES (?, ?, ?)",
                    [(text, i, namespace) for i, text in items],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _delete(self, namespace: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            self._db.execute(
                f"DELETE FROM chunks WHERE namespace=? AND id IN ({','.join('?' * len(part))})",
                [namespace, *part],
            )

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        with self._lock:
            self._delete(namespace, ids)

    def drop(self, namespace: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM chunks WHERE namespace=?", (namespace,))

    def search(self, namespace: str, text: str, limit: int) -> list[tuple[str, float]]:
        """Best ``limit`` ``(id, bm25)`` pairs for the words of ``text``, best first (FTS5's
        bm25 is lower-is-better; it is returned negated, so higher is better)."""
        query = fts_query(text)
        if query is None:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT id, bm25(chunks) AS score FROM chunks WHERE chunks MATCH ? "
                "AND namespace = ? ORDER BY score LIMIT ?",
                (query, namespace, limit),
            ).fetchall()
        return [(i, -float(s)) for i, s in rows]

    def count(self, namespace: str) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT count(*) FROM chunks WHERE namespace=?", (namespace,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
