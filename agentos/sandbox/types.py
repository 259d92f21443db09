"""What a sandboxed run may use (:class:`Limits`) and what came back (:class:`SandboxResult`),
including exactly which isolation applied (:class:`Isolation`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from agentos.errors import UserError

__all__ = ["IsolationMode", "Isolation", "Limits", "SandboxResult"]

IsolationMode = Literal["bwrap", "rlimits-only"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandboxed run.

    Attributes:
        cpu_s: CPU seconds per process (``RLIMIT_CPU``; SIGXCPU ends a process that uses more).
        memory_mb: address space per process (``RLIMIT_AS``), and the cgroup's ``memory.max``
            when a cgroup is applied.
        file_mb: the largest file a process may write (``RLIMIT_FSIZE``).
        processes: processes and threads of the sandbox user (``RLIMIT_NPROC``), and the
            cgroup's ``pids.max`` when a cgroup is applied.
        timeout_s: wall-clock limit; the whole process tree is killed when it passes.
        output_bytes: kept bytes of stdout and of stderr each; a run that writes more is killed
            (``killed_by="output"``) and its output ends at this size.
        disk_mb: how much the workspace may grow, checked every 0.25 s; a run that writes more is
            killed (``killed_by="disk"``).
        tmp_mb: size of the private ``/tmp`` (a tmpfs; bwrap mode only).

    Raises:
        UserError: a limit is not positive.
    """

    cpu_s: int = 20
    memory_mb: int = 1024
    file_mb: int = 64
    processes: int = 64
    timeout_s: float = 30.0
    output_bytes: int = 1_000_000
    disk_mb: int = 512
    tmp_mb: int = 256

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_mb", "file_mb", "processes", "timeout_s", "output_bytes",
                     "disk_mb", "tmp_mb"):
            value = getattr(self, name)
            if not value > 0:
                raise UserError(f"Limits({name}={value!r}): every limit must be > 0")


@dataclass(frozen=True, slots=True)
class Isolation:
    """Which isolation a run actually had (each namespace is read back from bubblewrap's status
    report where it reports one, not assumed).

    Attributes:
        mode: ``"bwrap"`` (the default) or ``"rlimits-only"`` (asked for by name: no namespaces,
            runs as the calling user with its files and network).
        user_namespace, pid_namespace, network_namespace, ipc_namespace, uts_namespace,
            mount_namespace: whether the program ran in a new namespace of that kind. A new
            mount namespace means it saw only ``/usr``, the interpreter's prefixes (read-only),
            a minimal ``/etc``, the workspace (read-write, at ``/workspace``) and a private
            ``/tmp``.
        uid: the uid the program ran as, outside every namespace (65534 when agentos runs as
            root in bwrap mode).
        rlimits: the CPU, address-space, file-size and process rlimits were set.
        cgroup: the cgroup v2 limits applied (``"memory.max=…,pids.max=…"``), or None.
        cgroup_note: why no cgroup was applied, when none was.
    """

    mode: IsolationMode
    user_namespace: bool
    pid_namespace: bool
    network_namespace: bool
    ipc_namespace: bool
    uts_namespace: bool
    mount_namespace: bool
    uid: int
    rlimits: bool = True
    cgroup: str | None = None
    cgroup_note: str = ""

    def summary(self) -> str:
        """One line, e.g. ``bwrap: user, pid, network, ipc, uts, mount namespaces; uid 65534; …``."""
        kinds = [name for name, on in (
            ("user", self.user_namespace), ("pid", self.pid_namespace),
            ("network", self.network_namespace), ("ipc", self.ipc_namespace),
            ("uts", self.uts_namespace), ("mount", self.mount_namespace)) if on]
        spaces = ", ".join(kinds) + " namespaces" if kinds else "no namespaces"
        cgroup = f"cgroup {self.cgroup}" if self.cgroup else f"no cgroup ({self.cgroup_note})"
        limits = "rlimits cpu/as/fsize/nproc" if self.rlimits else "no rlimits"
        return f"{self.mode}: {spaces}; uid {self.uid}; {limits}; {cgroup}"


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What a sandboxed run produced.

    Attributes:
        returncode: the program's exit status (128 + N when signal N ended it, as a shell
            reports it); None when the sandbox killed it (see ``killed_by``).
        stdout, stderr: decoded output, at most ``Limits.output_bytes`` bytes each.
        seconds: wall time of the run, sandbox set-up included.
        timed_out: it ran past ``Limits.timeout_s`` and was killed.
        killed_by: ``"timeout"``, ``"output"`` or ``"disk"`` when the sandbox killed it;
            ``"cpu"`` when the CPU rlimit ended it (SIGXCPU); ``"memory"`` when the cgroup's
            OOM killer did; else None.
        output_truncated: stdout or stderr was cut at ``Limits.output_bytes``.
        signal: the name of the signal that ended the program (``"SIGXCPU"``), when one did.
        isolation: exactly which isolation applied.
    """

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    isolation: Isolation
    killed_by: str | None = None
    output_truncated: bool = False
    signal: str | None = None

    @property
    def ok(self) -> bool:
        """The program exited with status 0."""
        return self.returncode == 0

    @property
    def network_isolated(self) -> bool:
        """The program ran in a network namespace of its own (no host network, no loopback)."""
        return self.isolation.network_namespace

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the isolation facts nested under ``"isolation"``)."""
        data = asdict(self)
        data["isolation"]["summary"] = self.isolation.summary()
        return data
