"""Run untrusted code (what a model wrote) isolated from the host.

The default isolation is bubblewrap: new user, PID, network, IPC, UTS and mount namespaces; only
``/usr``, the interpreter's prefixes (read-only), a minimal ``/etc`` and the workspace
(read-write, at ``/workspace``) visible; a private ``/tmp``; an unprivileged uid outside every
namespace even when agentos runs as root (65534); ``--die-with-parent`` and a new session. On
top: CPU, address-space, file-size and process rlimits, cgroup v2 memory and pids limits where
this process may create them, a wall-clock timeout that kills the whole process tree, output and
workspace-growth caps, and a scrubbed environment.

Where bubblewrap cannot give that, :func:`run` raises :class:`~agentos.errors.SandboxUnavailable`
saying how to fix it. ``isolation="rlimits-only"`` runs with the limits only, when asked for by
name. Every :class:`SandboxResult` carries the :class:`Isolation` that applied.

Example:
    >>> from agentos.sandbox import run_python_code
    >>> result = run_python_code("print(6 * 7)", "/tmp/ws")  # doctest: +SKIP
    >>> result.stdout, result.isolation.network_namespace  # doctest: +SKIP
    ('42\\n', True)
"""

from __future__ import annotations

from agentos.sandbox._bwrap import SANDBOX_UID, WORKSPACE, check_available
from agentos.sandbox._runner import run, run_python_code
from agentos.sandbox.types import Isolation, IsolationMode, Limits, SandboxResult

__all__ = [
    "SANDBOX_UID",
    "WORKSPACE",
    "Isolation",
    "IsolationMode",
    "Limits",
    "SandboxResult",
    "check_available",
    "run",
    "run_python_code",
]
