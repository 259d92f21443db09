"""Ingestion is idempotent, replaces changed files, prunes deleted ones, skips bad input with a
reason, and an interrupted ingest is completed by the next one without duplicates."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from agentos.errors import MemoryUnavailable
from agentos.runtime.memory import CachedEmbedder, Memory
from agentos.runtime.memory.ingest import FileRecords, ingest

DOCS = Path("/usr/share/doc/python3.11-doc/html/library")


@pytest.fixture
def memory(tmp_path: Path, embedder: CachedEmbedder):  # type: ignore[no-untyped-def]
    memory = Memory(tmp_path / "memory", embedder=embedder)
    yield memory
    memory.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "notes.md").write_text("# Notes\nThe blue widget ships on Mondays.\n\n## More\n"
                                   "Refunds take ten days.\n")
    (root / "api.py").write_text("def frobnicate(x):\n    '''Frobnicate x twice.'''\n    return x\n")
    shutil.copy(DOCS / "bisect.html", root / "bisect.html")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("# hidden\nnot ingested")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return root


def test_ingest_then_search_finds_the_source_file(memory: Memory, corpus: Path) -> None:
    report = ingest(memory, [corpus])
    assert (report.added, report.replaced, report.unchanged, report.skipped) == (3, 0, 0, [])
    assert report.chunks == memory.count("global") > 3
    hit = memory.recall("global", "when does the blue widget ship", k=1)[0]
    assert hit.source == str((corpus / "notes.md").resolve()) and hit.position is not None
    assert memory.recall("global", "insort into a sorted list", k=1)[0].source.endswith("bisect.html")
    assert memory.recall("global", "frobnicate", k=1)[0].metadata["section"] == "api.py: def frobnicate"


def test_reingest_is_idempotent_and_replaces_changed_files(memory: Memory, corpus: Path) -> None:
    ingest(memory, [corpus])
    count = memory.count("global")
    again = ingest(memory, [corpus])
    assert (again.added, again.replaced, again.unchanged, again.chunks) == (0, 0, 3, 0)
    assert memory.count("global") == count
    (corpus / "notes.md").write_text("# Notes\nThe red widget ships on Fridays.\n")
    changed = ingest(memory, [corpus])
    assert (changed.added, changed.replaced, changed.unchanged) == (0, 1, 2)
    texts = [h.text for h in memory.list("global", limit=1000)]
    assert any("red widget" in t for t in texts) and not any("blue widget" in t for t in texts)


def test_prune_removes_chunks_of_deleted_files(memory: Memory, corpus: Path) -> None:
    ingest(memory, [corpus])
    (corpus / "api.py").unlink()
    kept = ingest(memory, [corpus])
    assert kept.pruned == 0 and memory.recall("global", "frobnicate", k=1, mode="lexical")
    pruned = ingest(memory, [corpus], prune=True)
    assert pruned.pruned == 1
    assert memory.recall("global", "frobnicate", k=3, mode="lexical") == []
    assert memory.list("global", filters={"source": str((corpus / "api.py").resolve())}) == []


def test_bad_files_are_skipped_with_a_reason(memory: Memory, tmp_path: Path) -> None:
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x00binary")
    good = tmp_path / "good.md"
    good.write_text("# Good\nfine text\n")
    (tmp_path / "x.docx").write_bytes(b"PK\x03\x04")
    report = ingest(memory, [binary, good, tmp_path / "missing.md", tmp_path / "x.docx"])
    reasons = dict(report.skipped)
    assert "looks binary" in reasons[str(binary.resolve())]
    assert "does not exist" in reasons[str((tmp_path / "missing.md").resolve())]
    assert "unsupported file type" in reasons[str((tmp_path / "x.docx").resolve())]
    assert report.added == 1


def test_a_store_failure_mid_ingest_leaves_nothing_half_written(
    memory: Memory, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add = memory.lexical.add
    calls = {"n": 0}

    def failing_add(namespace, items):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real_add(namespace, items)

    monkeypatch.setattr(memory.lexical, "add", failing_add)
    with pytest.raises(MemoryUnavailable, match="disk is full.*run the same command again"):
        ingest(memory, [corpus])
    records = FileRecords(memory.path / "index.sqlite")
    assert len(records.paths("global")) == 1  # only the file written whole is recorded
    records.close()
    first = records_count = memory.count("global")
    assert records_count == memory.lexical.count("global")  # both indexes agree
    monkeypatch.setattr(memory.lexical, "add", real_add)
    report = ingest(memory, [corpus])
    assert (report.added, report.unchanged) == (2, 1)
    fresh = Memory(memory.path.parent / "fresh", embedder=memory.embedder)
    ingest(fresh, [corpus])
    assert memory.count("global") == fresh.count("global") > first
    fresh.close()


def test_an_interrupted_file_is_rewritten_whole_without_duplicates(
    memory: Memory, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self, *args):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # killed after a file's chunks were written, before its record

    monkeypatch.setattr(FileRecords, "put", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(memory, [corpus / "bisect.html"])
    partial = memory.count("global")
    assert partial > 0
    monkeypatch.undo()
    report = ingest(memory, [corpus / "bisect.html"])
    assert report.added == 1 and memory.count("global") == partial == report.chunks
