"""``agentos memory ingest | search | stats | forget`` on a real embedded store."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentos.cli import app
from agentos.runtime.memory import CachedEmbedder, Memory


@pytest.fixture
def cli(tmp_path: Path, embedder: CachedEmbedder, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AGENTOS_MEMORY_URL", raising=False)
    real = Memory.from_settings.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Memory, "from_settings",  # the session's loaded model, same store
                        classmethod(lambda cls, settings=None, **kw: real(cls, settings, embedder=embedder)))
    return CliRunner()


def test_ingest_search_stats_forget(cli: CliRunner, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Parking\nVisitors park in lot C behind the library.\n")
    (docs / "b.txt").write_text("The cafeteria closes at 2 pm on Fridays.\n")
    (docs / "c.bin.txt").write_bytes(b"\x00\x01")
    first = cli.invoke(app, ["memory", "ingest", str(docs)])
    assert first.exit_code == 0, first.output
    assert "2 added, 0 replaced, 0 unchanged, 0 pruned, 1 skipped; 2 chunks" in first.stdout
    assert "looks binary" in first.output
    again = cli.invoke(app, ["memory", "ingest", str(docs)])
    assert "0 added, 0 replaced, 2 unchanged" in again.stdout

    found = cli.invoke(app, ["memory", "search", "where do visitors park", "--k", "1", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert len(hits) == 1 and {"source", "chunk_id", "score", "text"} <= set(hits[0])
    assert hits[0]["source"] == str((docs / "a.md").resolve()) and "lot C" in hits[0]["text"]

    stats = cli.invoke(app, ["memory", "stats"])
    assert "global" in stats.stdout and "embedded chroma" in stats.stdout

    gone = cli.invoke(app, ["memory", "forget", "--id", hits[0]["chunk_id"]])
    assert "forgot 1 memories in global" in gone.stdout
    after = json.loads(cli.invoke(app, ["memory", "search", "visitors park", "--json"]).stdout)
    assert all(h["chunk_id"] != hits[0]["chunk_id"] for h in after)
    assert "forgot 1 memories" in cli.invoke(app, ["memory", "forget", "--all"]).stdout


def test_empty_query_and_dead_server_give_clear_errors(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = cli.invoke(app, ["memory", "search", "  "])
    assert isinstance(empty.exception, Exception) and "empty query" in str(empty.exception)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    monkeypatch.setenv("AGENTOS_MEMORY_URL", f"http://127.0.0.1:{port}")
    dead = cli.invoke(app, ["memory", "search", "anything"])
    assert dead.exit_code == 2
    assert f"Chroma server at http://127.0.0.1:{port} cannot be reached" in dead.output
    assert "chroma run" in dead.output and "unset AGENTOS_MEMORY_URL" in dead.output
