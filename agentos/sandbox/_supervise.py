"""Start a sandboxed process, watch it, and kill its whole tree when a limit is passed.

The watcher reads stdout and stderr as they come (never more than ``Limits.output_bytes`` kept
per stream), checks the wall clock and the workspace's growth, and on any limit kills the
process group with SIGKILL. In bwrap mode that is enough for the whole tree: bubblewrap's
``--die-with-parent`` takes the sandbox's init with it, and the kernel kills every process of a
PID namespace whose init died.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentos.sandbox._bwrap import Command
from agentos.sandbox.types import Limits

__all__ = ["Outcome", "open_fds", "supervise", "set_rlimits", "workspace_bytes"]

_PIPE_CAPACITY = 60_000  # below Linux's default 64 KiB: writes never block before exec
_DISK_CHECK_S = 0.25
_DRAIN_S = 0.5  # after the program exits, how long stragglers holding the pipes get


@dataclass(slots=True)
class Outcome:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    seconds: float
    killed_by: str | None
    truncated: bool
    status: list[dict[str, Any]]


@contextlib.contextmanager
def open_fds(command: Command) -> Iterator[tuple[list[str], list[int], list[int]]]:
    """Pipes for the command's placeholders: yields (argv, fds to pass, status read fds)."""
    ours: list[int] = []
    theirs: list[int] = []
    numbers: dict[str, str] = {}
    status: list[int] = []
    try:
        for key, payload in command.data.items():
            numbers[key] = str(_filled_pipe(payload, ours, theirs))
        for key in command.status_keys:
            r, w = os.pipe()
            ours.append(r)
            theirs.append(w)
            status.append(r)
            numbers[key] = str(w)
        opts = [numbers.get(o, o) for o in command.opts]
        blob = b"".join(o.encode() + b"\0" for o in opts)
        numbers["@args"] = str(_filled_pipe(blob, ours, theirs))
        argv = [numbers.get(a, a) for a in command.argv]
        yield argv, list(theirs), status
    finally:
        for fd in ours + theirs:
            with contextlib.suppress(OSError):
                os.close(fd)


def _filled_pipe(payload: bytes, ours: list[int], theirs: list[int]) -> int:
    if len(payload) > _PIPE_CAPACITY:
        raise ValueError(f"sandbox set-up data of {len(payload)} bytes does not fit a pipe")
    r, w = os.pipe()
    theirs.append(r)
    try:
        os.write(w, payload)
    finally:
        os.close(w)
    return r


def set_rlimits(limits: Limits) -> None:
    """Set the CPU, address-space, file-size and process rlimits (in the child, before exec)."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = limits.file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def workspace_bytes(root: Path, cap_entries: int = 200_000) -> int:
    """Allocated bytes under ``root`` (symlinks not followed); counts 4 KiB per entry past the cap."""
    total = 0
    entries = 0
    stack = [str(root)]
    while stack:
        try:
            scan = os.scandir(stack.pop())
        except OSError:
            continue
        with scan:
            for entry in scan:
                entries += 1
                if entries > cap_entries:
                    return total + 4096 * entries
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def supervise(
    argv: list[str],
    *,
    limits: Limits,
    cwd: Path,
    env: dict[str, str],
    stdin: bytes,
    pass_fds: list[int],
    status_fds: list[int],
    preexec: Callable[[], None],
    watch: Path,
    on_kill: Callable[[], None] = lambda: None,
) -> Outcome:
    """Run ``argv`` to completion or to the first limit it passes; see the module docstring."""
    start = time.monotonic()
    deadline = start + limits.timeout_s
    base = workspace_bytes(watch)
    disk_limit = limits.disk_mb * 1024 * 1024
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds,
        start_new_session=True, preexec_fn=preexec,
    )
    for fd in pass_fds:  # the child has them; closing ours lets EOF arrive
        with contextlib.suppress(OSError):
            os.close(fd)
    if stdin:
        threading.Thread(target=_feed, args=(proc, stdin), daemon=True).start()
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers = {out_fd: bytearray(), err_fd: bytearray()}
    cap = limits.output_bytes
    killed_by: str | None = None
    truncated = False
    selector = selectors.DefaultSelector()
    for stream in (proc.stdout, proc.stderr):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream.fileno(), selectors.EVENT_READ)

    def kill(reason: str) -> None:
        nonlocal killed_by
        if killed_by is None:
            killed_by = reason
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        on_kill()

    next_disk = start + _DISK_CHECK_S
    exited_at: float | None = None
    while selector.get_map():
        now = time.monotonic()
        if killed_by is None and now >= deadline:
            kill("timeout")
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > _DRAIN_S:
            break  # something the program left behind holds the pipes: stop waiting for it
        if killed_by is None and now >= next_disk:
            next_disk = now + _DISK_CHECK_S
            if workspace_bytes(watch) - base > disk_limit:
                kill("disk")
        for key, _ in selector.select(timeout=min(0.05, max(0.0, deadline - now)) or 0.01):
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(key.fd)
                continue
            buf = buffers[key.fd]
            room = cap - len(buf)
            if len(chunk) > room:
                buf += chunk[:max(room, 0)]
                truncated = True
                if killed_by is None:
                    kill("output")
            else:
                buf += chunk
    selector.close()
    if killed_by is None and proc.poll() is None and time.monotonic() >= deadline:
        kill("timeout")
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill("timeout")
        proc.wait()
    if killed_by is None:
        # Anything still in the group (rlimits-only mode) goes with the run.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.stdout.close()
    proc.stderr.close()
    status = _read_status(status_fds)
    returncode = None if killed_by in ("timeout", "output", "disk") else proc.returncode
    return Outcome(returncode, bytes(buffers[out_fd]), bytes(buffers[err_fd]),
                   time.monotonic() - start, killed_by, truncated, status)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()


def _read_status(fds: list[int]) -> list[dict[str, Any]]:
    """Every JSON document bubblewrap wrote, per status fd (one merged dict each)."""
    merged: list[dict[str, Any]] = []
    for fd in fds:
        chunks = []
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        doc: dict[str, Any] = {}
        for line in b"".join(chunks).decode(errors="replace").splitlines():
            line = line.strip()
            if line:
                with contextlib.suppress(json.JSONDecodeError):
                    doc.update(json.loads(line))
        merged.append(doc)
    return merged
