"""A tool that runs Python code in the sandbox and returns its output."""

from __future__ import annotations

import tempfile
from typing import Any

from agentos.runtime.tool import tool

__all__ = ["run_python"]


@tool(concurrency=2)
def run_python(code: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """Run a Python program in a sandbox (no network, CPU/memory limits) and return its output.

    Args:
        code: a complete Python program; print what you want to see.
        timeout_s: wall-clock limit in seconds (at most 60).
    """
    from agentos.sandbox import Limits, run_python_code

    limits = Limits(timeout_s=min(max(timeout_s, 1.0), 60.0))
    with tempfile.TemporaryDirectory(prefix="agentos-run-") as workdir:
        result = run_python_code(code, workdir, limits=limits)
    return {
        "returncode": result.returncode,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "timed_out": result.timed_out,
    }
