"""cgroup v2 memory and pids limits for one sandboxed run, where this process may create them.

A child cgroup can carry ``memory.max`` and ``pids.max`` only when this process's own cgroup has
the ``memory`` and ``pids`` controllers enabled for its children (a delegated subtree, as systemd
gives a user session or a container). Elsewhere (cgroup v1, a v2 tree without those controllers,
no write access) nothing is applied and :func:`create` says why; the rlimits still hold.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cgroup", "create"]


@dataclass(slots=True)
class Cgroup:
    """A cgroup made for one run: join it from the child, then :meth:`kill` and :meth:`remove`."""

    path: Path
    applied: str  # e.g. "memory.max=1024M,pids.max=64"

    def join_from_child(self) -> None:
        """Move the calling process into the cgroup (called between fork and exec)."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

    def oom_killed(self) -> bool:
        """Whether the cgroup's OOM killer ended a process of the run."""
        try:
            events = (self.path / "memory.events").read_text()
        except OSError:
            return False
        for line in events.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value) > 0
        return False

    def kill(self) -> None:
        """Kill every process left in the cgroup (``cgroup.kill``, Linux 5.14+)."""
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            pass  # older kernels: the PID namespace going away kills the rest

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass  # still busy: a later run's cleanup cannot reuse the name (uuid), so it is harmless


def _own_cgroup_dir() -> Path | None:
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                mount = left.split(" ")[4]
                break
    if mount is None:
        return None
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return Path(mount) / line[3:].strip().lstrip("/")
    return None


def create(memory_mb: int, processes: int) -> tuple[Cgroup | None, str]:
    """A child cgroup with ``memory.max`` (no swap) and ``pids.max``, or None and the reason."""
    try:
        parent = _own_cgroup_dir()
    except OSError as error:
        return None, f"cannot read this process's cgroup ({error})"
    if parent is None:
        return None, "no cgroup v2 hierarchy is mounted for this process"
    try:
        enabled = (parent / "cgroup.subtree_control").read_text().split()
    except OSError as error:
        return None, f"cannot read {parent / 'cgroup.subtree_control'} ({error.strerror})"
    missing = [c for c in ("memory", "pids") if c not in enabled]
    if missing:
        return None, (f"cgroup v2 controllers {'+'.join(missing)} not delegated to {parent}: "
                      f"its cgroup.subtree_control has {' '.join(enabled) or 'none'}")
    path = parent / f"agentos-sandbox-{uuid.uuid4().hex[:12]}"
    try:
        path.mkdir()
        (path / "memory.max").write_text(str(memory_mb * 1024 * 1024))
        if (path / "memory.swap.max").exists():
            (path / "memory.swap.max").write_text("0")
        (path / "pids.max").write_text(str(processes))
    except OSError as error:
        try:
            path.rmdir()
        except OSError:
            pass
        return None, f"cannot create a cgroup under {parent} ({error.strerror})"
    return Cgroup(path, f"memory.max={memory_mb}M,pids.max={processes}"), ""
