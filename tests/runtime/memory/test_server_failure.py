"""A Chroma server that dies mid-ingest, with no wait for it (``server_wait=0``): a clear error
that says what to start and to run the same ingest again, nothing recorded as done that was not
written, and once the server is back the same ingest completes it. (Waiting for a restarted
server is test_server_restart.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from agentos.errors import MemoryUnavailable
from agentos.runtime.memory import Memory
from agentos.runtime.memory.ingest import FileRecords, ingest
from tests.runtime.memory.conftest import ChromaServer

DOCS = Path("/usr/share/doc/python3.11-doc/html/library")


class Hashed:
    """A tiny deterministic embedder: this test is about the store, not the model."""

    name = "hashed-test"

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray([np.random.default_rng(len(t) * 7919 + sum(map(ord, t[:64])))
                           .normal(size=16) for t in texts], dtype=np.float32)


def test_a_server_killed_mid_ingest_gives_a_clear_error_and_the_rerun_completes(
        tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for page in ("bisect.html", "heapq.html", "array.html", "abc.html", "atexit.html"):
        shutil.copy(DOCS / page, corpus / page)
    (tmp_path / "chroma").mkdir()
    server = ChromaServer(tmp_path / "chroma")
    server.start()
    try:
        memory = Memory(tmp_path / "memory", url=server.url, embedder=Hashed())

        def kill_at_third(path: Path, done: int, total: int) -> None:
            if done == 3:
                server.stop()

        with pytest.raises(MemoryUnavailable) as failed:
            ingest(memory, [corpus], progress=kill_at_third, server_wait=0)
        message = str(failed.value)
        assert f"Chroma server at {server.url} cannot be reached" in message
        assert "chroma run" in message
        assert "not back within 0 s (--server-wait)" in message
        assert "run the same ingest again" in message
        records = FileRecords(memory.path / "index.sqlite")
        assert len(records.paths("global")) == 2  # the two files written whole, no more
        records.close()

        server.start()  # same port, same data
        report = ingest(memory, [corpus])
        assert (report.added, report.unchanged) == (3, 2)
        clean = Memory(tmp_path / "clean", embedder=Hashed())
        ingest(clean, [corpus])
        assert memory.count("global") == clean.count("global") > 0
        hits = memory.recall("global", "insort bisect sorted list", k=3, mode="lexical")
        assert hits and all(h.source and h.source.endswith(".html") for h in hits)
        assert memory.lexical.count("global") == memory.count("global")
        memory.drop("global")
        memory.close()
        clean.close()
    finally:
        server.stop()
