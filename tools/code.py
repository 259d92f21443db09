"""``run_python``: run a Python program in the sandbox and return its output and isolation.

The registered ``run_python`` uses the full bubblewrap sandbox and refuses to run
(:class:`~agentos.errors.SandboxUnavailable`, with the fix) where that isolation is not there.
:func:`make_run_python` builds the tool for the named weaker mode, whose description tells the
model what it lacks.
"""

from __future__ import annotations

import tempfile
from typing import Any

from agentos.runtime.tool import FunctionTool, tool

__all__ = ["make_run_python", "run_python"]

_MAX_TIMEOUT_S = 60.0

_LIMITS = (
    "limits of {cpu_s} CPU-seconds, {memory_mb} MiB memory, {file_mb} MiB per file, "
    "{processes} processes and the timeout (at most 60 s)"
)
_BWRAP_DESCRIPTION = (
    "Run a complete Python program in a sandbox and return its exit code, output and the "
    "isolation that applied. Sandbox: bubblewrap with no network (not even the host's "
    "loopback), no host files except /usr and the Python interpreter with its libraries "
    "(read-only), a "
    "fresh empty working directory and /tmp, an unprivileged user, no environment secrets; "
    + _LIMITS + "."
)
_RLIMITS_ONLY_DESCRIPTION = (
    "Run a complete Python program and return its exit code, output and the isolation that "
    "applied. WARNING, weak isolation (rlimits-only): the program runs as the agentos user, "
    "can read that user's files and can use the network; only " + _LIMITS + " apply."
)


def _describe(template: str) -> str:
    from agentos.sandbox import Limits

    defaults = Limits()
    return template.format(cpu_s=defaults.cpu_s, memory_mb=defaults.memory_mb,
                           file_mb=defaults.file_mb, processes=defaults.processes)


def _run(code: str, timeout_s: float, isolation: str) -> dict[str, Any]:
    from agentos.sandbox import Limits, run_python_code

    limits = Limits(timeout_s=min(max(timeout_s, 1.0), _MAX_TIMEOUT_S))
    with tempfile.TemporaryDirectory(prefix="agentos-run-") as workdir:
        result = run_python_code(code, workdir, limits=limits, isolation=isolation)  # type: ignore[arg-type]
    return {
        "returncode": result.returncode,
        "stdout": result.stdout[-20_000:],
        "stderr": result.stderr[-20_000:],
        "timed_out": result.timed_out,
        "killed_by": result.killed_by,
        "isolation": result.to_dict()["isolation"],
    }


def make_run_python(isolation: str = "bwrap") -> FunctionTool:
    """The ``run_python`` tool for an isolation mode (``"bwrap"`` or ``"rlimits-only"``).

    Raises:
        UserError: an unknown mode.
    """
    from agentos.errors import UserError

    descriptions = {"bwrap": _BWRAP_DESCRIPTION, "rlimits-only": _RLIMITS_ONLY_DESCRIPTION}
    if isolation not in descriptions:
        raise UserError(f"unknown sandbox isolation {isolation!r}; use one of "
                        + ", ".join(descriptions))

    def run_python(code: str, timeout_s: float = 20.0) -> dict[str, Any]:
        """Run a Python program.

        Args:
            code: a complete Python program; print what you want to see.
            timeout_s: wall-clock limit in seconds (at most 60).
        """
        return _run(code, timeout_s, isolation)

    return tool(run_python, name="run_python", description=_describe(descriptions[isolation]),
                concurrency=2)


run_python = make_run_python("bwrap")
