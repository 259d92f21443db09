"""``run`` and ``run_python_code``: the sandbox's two entry points."""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentos.errors import SandboxUnavailable, UserError
from agentos.sandbox import _bwrap, _cgroup
from agentos.sandbox._supervise import Outcome, open_fds, set_rlimits, supervise
from agentos.sandbox.types import Isolation, IsolationMode, Limits, SandboxResult

__all__ = ["python_bin_dir", "run", "run_python_code"]

_MODES = ("bwrap", "rlimits-only")
_PASS_ENV = ("LANG", "LC_ALL", "TZ")


def python_bin_dir() -> str:
    """The interpreter's ``bin`` directory (the venv's when in one), first on the sandbox PATH."""
    return os.path.dirname(sys.executable)


def _env(home: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update({
        "PATH": f"{python_bin_dir()}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": "/tmp" if home == "/tmp" else home,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    })
    env.update(extra or {})
    return env


def _data_dir() -> Path:
    from agentos.config import data_dir

    return data_dir()


def _give_to_sandbox_user(workdir: Path) -> None:
    """As root: make the workspace the sandbox user's (dirs and singly-linked files only).

    Symlinks are not followed and files with several hard links are skipped, so nothing outside
    the workspace changes owner.
    """
    uid = _bwrap.SANDBOX_UID
    for dirpath, dirnames, filenames in os.walk(workdir):
        os.chown(dirpath, uid, uid, follow_symlinks=False)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1):
                os.chown(path, uid, uid, follow_symlinks=False)


def run(
    argv: Sequence[str],
    workdir: str | Path,
    *,
    limits: Limits | None = None,
    stdin: str | bytes = "",
    isolation: IsolationMode = "bwrap",
    env: Mapping[str, str] | None = None,
    ro_binds: Sequence[str | Path] = (),
) -> SandboxResult:
    """Run ``argv`` in the sandbox with ``workdir`` as its working directory.

    In the default ``"bwrap"`` mode ``workdir`` appears as ``/workspace`` (the program's cwd)
    and is the only host directory it can write; ``argv[0]`` is looked up on the sandbox PATH
    (the interpreter's ``bin``, then ``/usr/bin``). When agentos runs as root the workspace is
    handed to uid 65534 first. The environment holds only ``PATH``, ``HOME``, ``TMPDIR``,
    ``LANG``/``LC_ALL``/``TZ``, a few ``PYTHON*`` switches and ``env``: no API keys, tokens or
    ``AGENTOS_*``.

    Args:
        argv: the program and its arguments.
        workdir: the workspace (created if missing).
        limits: resource limits; :class:`Limits` defaults when None.
        stdin: fed to the program's standard input.
        isolation: ``"bwrap"``, or ``"rlimits-only"`` to run without namespaces (the program
            then runs as you, sees your files and has the network; the result says so).
        env: extra environment variables, set as given.
        ro_binds: extra host paths to show read-only at their own paths (bwrap mode).

    Returns:
        A :class:`SandboxResult`; a program that fails, hangs or floods is a result, not an error.

    Raises:
        SandboxUnavailable: bwrap mode cannot give its isolation here (the message says how to
            fix it); nothing was run.
        UserError: ``isolation`` is not a known mode, or ``argv`` is empty.
    """
    if isolation not in _MODES:
        raise UserError(f"unknown sandbox isolation {isolation!r}; use one of {', '.join(_MODES)}")
    if not argv:
        raise UserError("sandbox.run needs a program to run (argv is empty)")
    limits = limits or Limits()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data = stdin.encode() if isinstance(stdin, str) else stdin
    if isolation == "rlimits-only":
        return _run_rlimits_only(list(argv), workdir, limits, data, env)
    _bwrap.check_available()
    data_dir = _data_dir()
    command = _bwrap.build(list(argv), workdir, env=_env("/tmp", env), tmp_mb=limits.tmp_mb,
                           ro_binds=[Path(p) for p in ro_binds], data_dir=data_dir)
    if command.as_root:
        _give_to_sandbox_user(workdir)
    cgroup, note = _cgroup.create(limits.memory_mb, limits.processes)

    def preexec() -> None:
        set_rlimits(limits)
        if cgroup is not None:
            cgroup.join_from_child()

    try:
        with open_fds(command) as (full_argv, fds, status_fds):
            outcome = supervise(
                full_argv, limits=limits, cwd=workdir, env={}, stdin=data, pass_fds=fds,
                status_fds=status_fds, preexec=preexec, watch=workdir,
                on_kill=cgroup.kill if cgroup else lambda: None,
            )
    finally:
        if cgroup is not None:
            cgroup.kill()
    oom = cgroup.oom_killed() if cgroup is not None else False
    if cgroup is not None:
        cgroup.remove()
    outer = outcome.status[0] if outcome.status else {}
    started = "child-pid" in outer and (not command.as_root or "child-pid" in outcome.status[1])
    if not started:
        raise SandboxUnavailable(
            "bubblewrap could not set up the sandbox for this run: "
            + (outcome.stderr.decode(errors="replace").strip() or f"exit {outcome.returncode}")
        )
    isolation_facts = Isolation(
        mode="bwrap",
        user_namespace=True,  # bubblewrap --unshare-user exits before the program otherwise
        pid_namespace=_new_ns(outer, "pid"),
        network_namespace=_new_ns(outer, "net"),
        ipc_namespace=_new_ns(outer, "ipc"),
        uts_namespace=_new_ns(outer, "uts"),
        mount_namespace=_new_ns(outer, "mnt"),
        uid=_bwrap.SANDBOX_UID if command.as_root else os.getuid(),
        cgroup=cgroup.applied if cgroup is not None else None,
        cgroup_note=note,
    )
    return _result(outcome, isolation_facts, shell_codes=True, oom=oom)


def _new_ns(status: dict[str, object], kind: str) -> bool:
    key = f"{kind}-namespace"
    if key not in status:
        return False
    return status[key] != os.stat(f"/proc/self/ns/{kind}").st_ino


def _run_rlimits_only(
    argv: list[str], workdir: Path, limits: Limits, stdin: bytes, env: Mapping[str, str] | None
) -> SandboxResult:
    outcome = supervise(
        argv, limits=limits, cwd=workdir, env=_env(str(workdir), env), stdin=stdin, pass_fds=[],
        status_fds=[], preexec=lambda: set_rlimits(limits), watch=workdir,
    )
    facts = Isolation(
        mode="rlimits-only", user_namespace=False, pid_namespace=False, network_namespace=False,
        ipc_namespace=False, uts_namespace=False, mount_namespace=False, uid=os.getuid(),
        cgroup_note="rlimits-only mode applies none",
    )
    return _result(outcome, facts, shell_codes=False, oom=False)


def _result(outcome: Outcome, facts: Isolation, *, shell_codes: bool, oom: bool) -> SandboxResult:
    code = outcome.returncode
    signum: int | None = None
    if code is not None:
        if not shell_codes and code < 0:
            signum, code = -code, 128 - code
        elif shell_codes and code > 128:
            signum = code - 128
    name: str | None = None
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = None
    killed_by = outcome.killed_by
    if killed_by is None and name == "SIGXCPU":
        killed_by = "cpu"
    if killed_by is None and oom:
        killed_by = "memory"
    return SandboxResult(
        returncode=code,
        stdout=outcome.stdout.decode(errors="replace"),
        stderr=outcome.stderr.decode(errors="replace"),
        seconds=outcome.seconds,
        timed_out=outcome.killed_by == "timeout",
        isolation=facts,
        killed_by=killed_by,
        output_truncated=outcome.truncated,
        signal=name,
    )


def run_python_code(
    code: str,
    workdir: str | Path,
    *,
    limits: Limits | None = None,
    stdin: str = "",
    isolation: IsolationMode = "bwrap",
    filename: str = "main.py",
) -> SandboxResult:
    """Write ``code`` to ``workdir/filename`` and run it with this interpreter in the sandbox.

    The script's directory (the workspace) is on ``sys.path``, so it can import modules written
    beside it. Same contract as :func:`run`.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / filename
    if script.resolve().parent != workdir.resolve():
        raise UserError(f"filename {filename!r} must be a plain file name, e.g. 'main.py'")
    script.write_text(code)
    return run([sys.executable, "-E", "-s", filename], workdir, limits=limits, stdin=stdin,
               isolation=isolation)
