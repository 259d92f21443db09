"""A Chroma server killed (SIGKILL) in the middle of `agentos memory ingest` and started again on
the same port and data folder: the running ingest says it is waiting, resumes once the server is
back, and ends with every file's chunks on the server exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np

from agentos.runtime.memory import Memory
from agentos.runtime.memory.chunking import chunk_file
from agentos.runtime.memory.ingest import FileRecords
from tests.runtime.memory.conftest import ChromaServer

FILES = 40

# `agentos memory ingest` as a user runs it, with a tiny deterministic embedder in place of the
# model (this test is about the store) that takes 0.1 s per file, so the kill lands mid-ingest.
CLI = textwrap.dedent("""
    import sys, time
    import numpy as np
    from agentos.runtime.memory import Memory

    class SlowHashed:
        name = "hashed-test"
        def embed(self, texts):
            time.sleep(0.1)
            return np.asarray([np.random.default_rng(sum(map(ord, t))).normal(size=16)
                               for t in texts], dtype=np.float32)

    real = Memory.from_settings.__func__
    Memory.from_settings = classmethod(
        lambda cls, settings=None, **kw: real(cls, settings, embedder=SlowHashed()))
    from agentos.cli import app
    app(["memory", "ingest", *sys.argv[1:]], prog_name="agentos")
""")


class Hashed:
    name = "hashed-test"

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray([np.random.default_rng(sum(map(ord, t))).normal(size=16)
                           for t in texts], dtype=np.float32)


def _notes(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(FILES):
        sections = "\n\n".join(
            f"## Part {j}\n\n" + " ".join(f"note{i} item{j} word{k}" for k in range(40 + 25 * j))
            for j in range(1 + i % 4)
        )
        path = folder / f"note{i:02d}.md"
        path.write_text(f"# Note {i}\n\n{sections}\n")
        paths.append(path.resolve())
    return paths


def _by_source(memory: Memory) -> Counter[str]:
    hits = memory.list("global", limit=100_000)
    assert len({h.id for h in hits}) == len(hits)
    return Counter(h.source for h in hits if h.source)


def test_a_server_killed_and_restarted_mid_ingest_lets_the_running_ingest_finish_exactly_once(
        tmp_path: Path) -> None:
    paths = _notes(tmp_path / "notes")
    expected = {str(p): len(chunk_file(p)) for p in paths}
    assert sum(expected.values()) > 2 * FILES  # files of several chunks, so a file can be cut
    (tmp_path / "chroma").mkdir()
    server = ChromaServer(tmp_path / "chroma")
    server.start()
    env = {**os.environ, "AGENTOS_DATA_DIR": str(tmp_path / "data"),
           "AGENTOS_MEMORY_URL": server.url, "HF_HUB_OFFLINE": "1"}
    out, err = (tmp_path / "ingest.out").open("w+"), (tmp_path / "ingest.err").open("w+")
    ingest = subprocess.Popen([sys.executable, "-c", CLI, str(tmp_path / "notes")],
                              stdout=out, stderr=err, env=env)
    watcher = Memory(tmp_path / "watcher", url=server.url, embedder=Hashed())
    try:
        deadline = time.monotonic() + 60
        while watcher.count("global") < 10:  # some files in, most still to come
            assert ingest.poll() is None, "the ingest ended before the server was killed"
            assert time.monotonic() < deadline, "the ingest wrote nothing in 60 s"
            time.sleep(0.02)
        server.kill()
        assert ingest.poll() is None, "the ingest ended before the server was killed"
        records = FileRecords(tmp_path / "data" / "memory" / "index.sqlite")
        done_at_kill = len(records.paths("global"))
        records.close()
        assert 0 < done_at_kill < FILES - 10
        time.sleep(2.0)  # down long enough for the ingest to hit it and retry
        assert ingest.poll() is None, "the ingest gave up instead of waiting for the server"
        server.start()  # same port, same data folder
        assert ingest.wait(timeout=120) == 0, (tmp_path / "ingest.err").read_text()[-3000:]

        stdout = (tmp_path / "ingest.out").read_text()
        stderr = " ".join((tmp_path / "ingest.err").read_text().split())  # rich wraps lines
        assert f"Chroma server at {server.url} cannot be reached" in stderr
        assert "waiting:" in stderr and "Retrying in 0.5 s" in stderr
        assert f"global: {FILES} added, 0 replaced, 0 unchanged" in stdout

        # Every file's chunks exactly once: none lost, none doubled, no leftovers.
        assert _by_source(watcher) == expected
        assert watcher.count("global") == sum(expected.values())
        local = Memory(tmp_path / "data" / "memory", url=server.url, embedder=Hashed())
        records = FileRecords(local.path / "index.sqlite")
        assert records.paths("global") == sorted(expected)
        records.close()
        hits = local.recall("global", "note7 item2 word60", k=1, mode="lexical")
        assert hits and hits[0].source == str(paths[7])
        assert local.lexical.count("global") == sum(expected.values())
        local.close()

        again = subprocess.run([sys.executable, "-c", CLI, str(tmp_path / "notes")],
                               capture_output=True, text=True, env=env, timeout=120)
        assert again.returncode == 0, again.stderr[-3000:]
        assert f"global: 0 added, 0 replaced, {FILES} unchanged" in again.stdout
        assert _by_source(watcher) == expected
    finally:
        if ingest.poll() is None:
            ingest.kill()
            ingest.wait(timeout=10)
        out.close()
        err.close()
        if server.proc is not None:
            watcher.drop("global")
        watcher.close()
        server.stop()
