"""Run untrusted code in a subprocess with limits.

Limits: CPU seconds, address space, file size, number of processes, a wall-clock timeout, a
scrubbed environment, a working directory of its own, and no network where the OS allows it
(a fresh network namespace through ``unshare -n``; reported in :attr:`SandboxResult.network_isolated`).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "SandboxResult", "run_python_code"]

_SAFE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True, slots=True)
class Limits:
    cpu_s: int = 20
    memory_mb: int = 1024
    file_mb: int = 64
    processes: int = 64
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class SandboxResult:
    returncode: int | None  # None when killed by the timeout
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    network_isolated: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _limit(limits: Limits) -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = limits.file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    os.setsid()


def _can_isolate_network() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


def run_python_code(
    code: str, workdir: str | Path, *, limits: Limits | None = None, stdin: str = ""
) -> SandboxResult:
    """Write ``code`` to ``workdir/main.py`` and run it with the sandbox's limits.

    Output is truncated to 20,000 characters per stream.
    """
    limits = limits or Limits()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "main.py"
    script.write_text(code)
    env = {k: os.environ[k] for k in _SAFE_ENV if k in os.environ}
    env.update({"HOME": str(workdir), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"})
    argv = [sys.executable, "-I", str(script)]
    isolated = _can_isolate_network()
    if isolated:
        argv = [shutil.which("unshare") or "unshare", "-n", *argv]
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: _limit(limits),
    )
    try:
        out, err = proc.communicate(stdin, timeout=limits.timeout_s)
        timed_out, code_ = False, proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        timed_out, code_ = True, None
    return SandboxResult(code_, out[-20000:], err[-20000:], time.monotonic() - start, timed_out,
                         isolated)
