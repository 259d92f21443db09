"""`import agentos` and `agentos --help` stay light: no heavy framework is imported."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "transformers", "chromadb", "litellm", "langgraph", "crewai", "xllamacpp"]


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_agentos_is_light() -> None:
    assert _imported_after("import agentos; agentos.Agent; agentos.Kernel; agentos.tool") == []


def test_cli_help_is_light() -> None:
    code = (
        "import sys\nsys.argv = ['agentos', '--help']\nfrom agentos.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert _imported_after(code) == []


def test_kernel_modules_do_not_import_tools_or_kernels_bare() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import agentos.cli, agentos.runtime.kernel, sys;"
         "print('tools' in sys.modules, 'kernels' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.split() == ["False", "False"]
