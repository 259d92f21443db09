"""`agentos.Memory` and the memory package import without chromadb, torch or sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys


def test_memory_import_is_light() -> None:
    code = (
        "import sys, json, agentos\nagentos.Memory\nimport agentos.runtime.memory.syscalls\n"
        "print(json.dumps([m for m in ('chromadb', 'torch', 'sentence_transformers', "
        "'transformers') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
