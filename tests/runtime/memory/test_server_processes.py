"""Two OS processes, each with its own memory folder, against one Chroma server: each recalls,
through the vector and the lexical half, what the other remembered, replaced and forgot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.runtime.memory.conftest import ChromaServer

PROLOGUE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from agentos.runtime.memory import Memory

    class Hashed:  # a tiny deterministic embedder: this test is about the store, not the model
        name = "hashed-test"
        def embed(self, texts):
            out = []
            for t in texts:
                rng = np.random.default_rng(abs(hash(t)) % 2**32)
                out.append(rng.normal(size=16))
            return np.asarray(out, dtype=np.float32)

    memory = Memory(sys.argv[1], url=sys.argv[2], embedder=Hashed(), dedup_threshold=1.01)
""")

READ = PROLOGUE + textwrap.dedent("""
    out = {}
    for word in sys.argv[3:]:
        out[word] = {mode: [h.text for h in memory.recall("global", word, k=3, mode=mode)]
                     for mode in ("lexical", "hybrid")}
    out["indexed"] = memory.lexical.count("global")
    print(json.dumps(out))
""")


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=120, env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin",
                                            "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_second_process_recalls_what_the_first_wrote_replaced_and_forgot(
        tmp_path: Path, chroma_server: ChromaServer) -> None:
    import json

    a, b, url = str(tmp_path / "a"), str(tmp_path / "b"), chroma_server.url
    write = PROLOGUE + textwrap.dedent("""
        memory.remember_many("global", [f"routine note {i} about the weather" for i in range(30)])
        memory.remember("global", "the zeppelin hangar code is 4411")
        memory.add_chunks("global", ["doc-1"], ["a page about the okapi"], [{"source": "p"}])
    """)
    try:
        _run(write, a, url)
        seen = json.loads(_run(READ, b, url, "zeppelin", "okapi"))
        assert seen["zeppelin"]["lexical"] == ["the zeppelin hangar code is 4411"]
        assert seen["zeppelin"]["hybrid"][0] == "the zeppelin hangar code is 4411"
        assert seen["okapi"]["lexical"] == ["a page about the okapi"]
        assert seen["indexed"] == 32

        change = PROLOGUE + textwrap.dedent("""
            memory.add_chunks("global", ["doc-1"], ["a page about the narwhal"], [{"source": "p"}])
            hit = memory.recall("global", "zeppelin", k=1, mode="lexical")[0]
            assert memory.forget("global", ids=[hit.id]) == 1
        """)
        _run(change, a, url)
        seen = json.loads(_run(READ, b, url, "zeppelin", "okapi", "narwhal"))
        assert seen["zeppelin"] == {"lexical": [], "hybrid": seen["zeppelin"]["hybrid"]}
        assert all("zeppelin" not in t for t in seen["zeppelin"]["hybrid"])
        assert seen["okapi"]["lexical"] == []
        assert seen["narwhal"]["lexical"] == ["a page about the narwhal"]
        assert seen["indexed"] == 31
    finally:
        _run(PROLOGUE + "memory.drop('global')\n", a, url)
