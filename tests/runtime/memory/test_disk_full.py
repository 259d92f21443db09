"""A disk that fills mid-ingest (a real one: the writing process's file-size limit, so Chroma,
the lexical index and the embedding cache all get EFBIG from the OS): a clear error that says
what to do, and the next ingest, with space again, ends where a clean ingest does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DOCS = Path("/usr/share/doc/python3.11-doc/html/library")

SCRIPT = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    import numpy as np
    from agentos.errors import MemoryUnavailable
    from agentos.runtime.memory import Memory
    from agentos.runtime.memory.ingest import FileRecords, ingest

    class Hashed:  # a tiny deterministic embedder: this test is about the store, not the model
        name = "hashed-test"
        def embed(self, texts):
            out = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=16) for t in texts]
            return np.asarray(out, dtype=np.float32)

    path, limit, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    memory = Memory(path, embedder=Hashed())
    if limit:  # from here on, no file of this process may grow past `limit` bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        report = ingest(memory, files)
    except MemoryUnavailable as error:
        print(json.dumps({"error": str(error)}))
        sys.exit(0)
    records = FileRecords(Path(path) / "index.sqlite")
    print(json.dumps({"added": report.added, "chunks": memory.count("global"),
                      "lexical": memory.lexical.count("global"),
                      "recorded": len(records.paths("global"))}))
""")


def _ingest(path: Path, limit: int, files: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(limit), *files],
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("limit", "what"), [
    (700_000, "Chroma store"),
    pytest.param(1_200_000, "embedding cache", marks=pytest.mark.slow),
])
def test_a_disk_full_mid_ingest_says_what_to_do_and_the_next_ingest_completes_it(
        tmp_path: Path, limit: int, what: str) -> None:
    files = [str(p) for p in sorted(DOCS.glob("a*.html"))[:12]]
    clean = _ingest(tmp_path / "clean", 0, files)
    assert clean["recorded"] == 12

    full = _ingest(tmp_path / "memory", limit, files)
    assert what in str(full.get("error")), full
    assert "free space and run the same command again" in str(full["error"])

    again = _ingest(tmp_path / "memory", 0, files)
    assert 0 < int(again["added"]) < 12  # the files finished before the disk filled stay
    assert again["chunks"] == again["lexical"] == clean["chunks"]
    assert again["recorded"] == 12
