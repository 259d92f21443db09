"""One writer: two OS processes writing the same embedded store neither corrupt it nor hang."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from agentos.runtime.memory import CachedEmbedder, Memory

WRITER = textwrap.dedent("""
    import sys
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

    who, path = sys.argv[1], sys.argv[2]
    memory = Memory(path, embedder=Hashed(), dedup_threshold=1.01)
    for batch in range(15):
        memory.remember_many("global", [f"writer {who} batch {batch} item {i}" for i in range(10)])
        memory.add_chunks("crew:shared", [f"{who}-{batch}"], [f"chunk {who} {batch}"],
                          [{"source": who, "position": batch}])
    print(memory.count("global"))
""")


def test_two_writer_processes_keep_every_write(tmp_path: Path) -> None:
    path = tmp_path / "memory"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, who, str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for who in ("a", "b")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=240)  # a hang fails here
        assert proc.returncode == 0, err[-3000:]
    # A third process reads everything both wrote, through both indexes.
    check = textwrap.dedent(f"""
        import sys
        sys.argv = ["x", "reader", {str(path)!r}]
        exec(compile({WRITER.split("who, path")[0]!r}, "w", "exec"))
        from agentos.runtime.memory import Memory
        memory = Memory({str(path)!r}, embedder=Hashed())
        lexical = memory.recall("global", "writer b batch 14 item 9", k=1, mode="lexical")
        vector = memory.recall("global", "writer a batch 3 item 2", k=1, mode="vector")
        print(memory.count("global"), memory.count("crew:shared"), lexical[0].text, "|",
              vector[0].text, memory.lexical.count("global"))
    """)
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    counts, rest = out.stdout.strip().split(" writer", 1)
    assert counts.split() == ["300", "30"]
    assert rest.startswith(" b batch 14 item 9 | writer a batch 3 item 2 300")
