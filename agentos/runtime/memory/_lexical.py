"""The lexical half of hybrid recall: SQLite FTS5 indexes ranked by BM25, one per namespace.

Each namespace has its own FTS5 table (Porter stemming over Unicode words), so BM25's document
frequencies and lengths are those of that namespace alone, and a search reads only its postings.
A plain table maps chunk ids to FTS rows (deletes by id are index lookups, not scans) and keeps
each chunk's content hash; another keeps each namespace's row count and, with a Chroma server,
the server revision the namespace was last brought in step with (:meth:`LexicalIndex.sync`).

A query is not every word of its text OR-ed together: that matches most chunks of a large
namespace and ranks them all (hundreds of milliseconds at 100k chunks). The query's terms are
stemmed by the same tokenizer, looked up in the namespace's vocabulary, and only the informative
ones are kept: terms found in at most ``COMMON_FRACTION`` of the chunks (half: FTS5's BM25 gives
a term in more than half of them an IDF of 1e-6, so dropping it changes no score), rarest
first, at most ``MAX_TERMS`` of them, and no more once their postings add up to
``MAX_POSTINGS`` (the rarest one always stays). The postings cap is what bounds the time of a
search in a large namespace; it drops terms that do carry some weight (in 100k chunks, terms in
more than a few thousand), so it trades a little ranking for speed only there.
FTS5 counts a term's documents by reading its postings, so the counts of common terms (in at
least ``_CACHE_FROM`` chunks) are cached per process and namespace, and dropped once the
namespace's size has changed by more than a tenth; rarer terms are counted afresh every time.
The counts only choose the terms: BM25 itself is always computed from the index.

Writes happen under the memory's write lock; SQLite's WAL lets other processes read meanwhile.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["COMMON_FRACTION", "MAX_POSTINGS", "MAX_TERMS", "LexicalIndex", "text_hash"]

COMMON_FRACTION = 0.5
MAX_TERMS = 12
MAX_POSTINGS = 20_000
_CACHE_FROM = 500

_WORD = re.compile(r"[^\W_]+")  # what the unicode61 tokenizer calls a token
# Words too common to rank by, whatever their counts in a small namespace say.
_STOP = frozenset(
    "a an and are as at be by can do does for from how i in is it of on or that the this to "
    "what when where which who why will with you your".split()
)


def text_hash(text: str) -> str:
    """SHA-256 of the text with whitespace runs collapsed (the memory's ``content_hash``)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def _table(namespace: str) -> str:
    return "fts_" + hashlib.sha256(namespace.encode()).hexdigest()[:24]


class LexicalIndex:
    """BM25 over chunk texts, per namespace.

    Args:
        path: the SQLite file (created), or ``":memory:"``. An index written by an earlier
            version (one ``chunks`` table for every namespace) is moved into this layout once.
        common_fraction, max_terms, max_postings: which query terms a search keeps (see the
            module docstring); the defaults are the module's constants.
    """

    def __init__(self, path: Path | str, *, common_fraction: float = COMMON_FRACTION,
                 max_terms: int = MAX_TERMS, max_postings: int = MAX_POSTINGS) -> None:
        self.common_fraction = common_fraction
        self.max_terms = max_terms
        self.max_postings = max_postings
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS lexical_namespaces (namespace TEXT PRIMARY KEY, "
            "rows INTEGER NOT NULL, revision TEXT)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS lexical_ids (namespace TEXT NOT NULL, id TEXT NOT NULL, "
            "rid INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (namespace, id))"
        )
        self._db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms USING fts5("
                         "text, tokenize='porter unicode61')")
        self._db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_vocab USING "
                         "fts5vocab(temp, query_terms, 'instance')")
        self._df: dict[str, tuple[int, dict[str, int]]] = {}  # namespace: (rows, {term: docs})
        self._migrate()

    # --- layout ---------------------------------------------------------------------------

    def _ensure(self, namespace: str) -> str:
        table = _table(namespace)
        self._db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
                         "text, id UNINDEXED, tokenize='porter unicode61')")
        self._db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table}_vocab USING "
                         f"fts5vocab({table}, 'row')")
        self._db.execute("INSERT OR IGNORE INTO lexical_namespaces VALUES (?, 0, NULL)",
                         (namespace,))
        return table

    def _has(self, namespace: str) -> bool:
        return self._db.execute("SELECT 1 FROM lexical_namespaces WHERE namespace=?",
                                (namespace,)).fetchone() is not None

    def _migrate(self) -> None:
        old = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE name='chunks' AND sql LIKE '%fts5%'").fetchone()
        if old is None:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                by_namespace: dict[str, list[tuple[str, str]]] = {}
                for text, id_, namespace in self._db.execute(
                        "SELECT text, id, namespace FROM chunks"):
                    by_namespace.setdefault(namespace, []).append((id_, text))
                for namespace, items in by_namespace.items():
                    self._add(namespace, items)
                self._db.execute("DROP TABLE chunks")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- writing --------------------------------------------------------------------------

    def add(self, namespace: str, items: Iterable[tuple[str, str]]) -> None:
        """Index ``(id, text)`` pairs, replacing any earlier text under the same id."""
        items = list(items)
        if not items:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._add(namespace, items)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _add(self, namespace: str, items: list[tuple[str, str]]) -> None:
        table = self._ensure(namespace)
        latest = dict(items)  # the last text given for an id wins
        removed = self._delete(namespace, list(latest))
        cursor = self._db.cursor()
        rows = []
        for id_, text in latest.items():
            cursor.execute(f"INSERT INTO {table} (text, id) VALUES (?, ?)", (text, id_))
            rows.append((namespace, id_, cursor.lastrowid, text_hash(text)))
        self._db.executemany("INSERT INTO lexical_ids VALUES (?, ?, ?, ?)", rows)
        self._db.execute("UPDATE lexical_namespaces SET rows = rows + ? WHERE namespace=?",
                         (len(rows) - removed, namespace))

    def _delete(self, namespace: str, ids: Sequence[str]) -> int:
        """Delete ``ids`` (those present); returns how many were. Caller holds the lock."""
        if not self._has(namespace):
            return 0
        table = _table(namespace)
        removed = 0
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            marks = ",".join("?" * len(part))
            rids = [r for (r,) in self._db.execute(
                f"SELECT rid FROM lexical_ids WHERE namespace=? AND id IN ({marks})",
                [namespace, *part])]
            if not rids:
                continue
            self._db.execute(f"DELETE FROM {table} WHERE rowid IN ({','.join('?' * len(rids))})",
                             rids)
            self._db.execute(f"DELETE FROM lexical_ids WHERE namespace=? AND id IN ({marks})",
                             [namespace, *part])
            removed += len(rids)
        return removed

    def sync(self, namespace: str, items: Iterable[tuple[str, str]], gone: Sequence[str],
             revision: str) -> None:
        """In one transaction: index ``items`` (as :meth:`add`), remove ``gone``, and record
        that ``namespace`` is now in step with the server's ``revision``."""
        items = list(items)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._ensure(namespace)
                removed = self._delete(namespace, gone)
                self._db.execute("UPDATE lexical_namespaces SET rows = rows - ?, revision = ? "
                                 "WHERE namespace=?", (removed, revision, namespace))
                if items:
                    self._add(namespace, items)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def revision(self, namespace: str) -> str | None:
        """The server revision :meth:`sync` last recorded for ``namespace`` (``None``: never)."""
        with self._lock:
            row = self._db.execute("SELECT revision FROM lexical_namespaces WHERE namespace=?",
                                   (namespace,)).fetchone()
        return row[0] if row else None

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        """Remove ``ids`` from ``namespace`` (ids it does not hold are ignored)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = self._delete(namespace, ids)
                self._db.execute("UPDATE lexical_namespaces SET rows = rows - ? "
                                 "WHERE namespace=?", (removed, namespace))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def drop(self, namespace: str) -> None:
        """Remove the whole namespace."""
        with self._lock:
            if not self._has(namespace):
                return
            table = _table(namespace)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"DROP TABLE IF EXISTS {table}_vocab")
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
                self._db.execute("DELETE FROM lexical_ids WHERE namespace=?", (namespace,))
                self._db.execute("DELETE FROM lexical_namespaces WHERE namespace=?",
                                 (namespace,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- reading --------------------------------------------------------------------------

    def _terms(self, text: str) -> dict[str, str]:
        """``{stemmed term: the query word it came from}`` for the words of ``text`` (stop
        words left out unless that leaves none), stemmed by FTS5's own tokenizer. A MATCH
        names the word, not the stem, because FTS5 stems what it is given again. Caller holds
        the lock."""
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
        words = [w for w in words if w not in _STOP] or words
        if not words:
            return {}
        tokens = self._tokens(" ".join(words))
        if len(tokens) != len(words):  # the tokenizer split a word differently: one at a time
            return {term: word for word in words for term in self._tokens(word)}
        return {term: word for term, word in reversed(list(zip(tokens, words)))}

    def _tokens(self, text: str) -> list[str]:
        """FTS5's tokens of ``text``, in order. Caller holds the lock."""
        self._db.execute("DELETE FROM temp.query_terms")
        self._db.execute("INSERT INTO temp.query_terms (text) VALUES (?)", (text,))
        return [t for (t,) in self._db.execute(
            "SELECT term FROM temp.query_vocab ORDER BY offset")]

    def query_terms(self, namespace: str, text: str) -> list[tuple[str, int]]:
        """The stemmed terms of ``text`` a search in ``namespace`` uses, with their document
        frequencies, rarest first (see the module docstring for which are kept)."""
        with self._lock:
            return self._query_terms(namespace, self._terms(text))

    def _query_terms(self, namespace: str, terms: dict[str, str]) -> list[tuple[str, int]]:
        if not terms or not self._has(namespace):
            return []
        rows = self._count(namespace)
        filled, cached = self._df.get(namespace, (rows, {}))
        if abs(rows - filled) > 0.1 * filled or len(cached) > 100_000:
            filled, cached = rows, {}
        self._df[namespace] = (filled, cached)
        docs = {t: cached[t] for t in terms if t in cached}  # terms: {stem: word}
        missing = [t for t in terms if t not in cached]
        if missing:
            for term, doc in self._db.execute(
                    f"SELECT term, doc FROM {_table(namespace)}_vocab WHERE term IN "
                    f"({','.join('?' * len(missing))})", missing):
                docs[term] = int(doc)
                if doc >= _CACHE_FROM:  # rarer terms are cheap to count, and counted exactly
                    cached[term] = int(doc)
        found = sorted((doc, term) for term, doc in docs.items())
        kept: list[tuple[str, int]] = []
        postings = 0
        for doc, term in found:
            if kept and (doc > self.common_fraction * rows or len(kept) >= self.max_terms
                         or postings + doc > self.max_postings):
                break
            kept.append((term, doc))
            postings += doc
        return kept

    def search(self, namespace: str, text: str, limit: int) -> list[tuple[str, float]]:
        """Best ``limit`` ``(id, bm25)`` pairs for the informative terms of ``text``, best
        first (FTS5's bm25 is lower-is-better; it is returned negated, so higher is better).
        A namespace never written, or a text with no term in it, gives ``[]``."""
        with self._lock:
            words = self._terms(text)
            terms = self._query_terms(namespace, words)
            if not terms:
                return []
            query = " OR ".join(f'"{words[term]}"' for term, _ in terms)
            table = _table(namespace)
            rows = self._db.execute(
                f"SELECT id, rank FROM {table} WHERE {table} MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
        return [(i, -float(s)) for i, s in rows]

    def _count(self, namespace: str) -> int:
        row = self._db.execute("SELECT rows FROM lexical_namespaces WHERE namespace=?",
                               (namespace,)).fetchone()
        return int(row[0]) if row else 0

    def count(self, namespace: str) -> int:
        """How many chunks ``namespace`` holds."""
        with self._lock:
            return self._count(namespace)

    def hashes(self, namespace: str) -> dict[str, str]:
        """``{id: content hash}`` of every chunk in ``namespace``."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT id, hash FROM lexical_ids WHERE namespace=?", (namespace,)))

    def close(self) -> None:
        with self._lock:
            self._db.close()
