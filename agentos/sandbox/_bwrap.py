"""The bubblewrap command line of a sandboxed run, and the check that bubblewrap works here.

Two shapes, one view from inside:

- agentos runs as **root**: bubblewrap (privileged, as root) makes the mount, PID, network,
  IPC, UTS and cgroup namespaces and the bind mounts (root can read the interpreter's prefix even
  under ``/root``); then ``setpriv`` drops to uid/gid 65534 with no capabilities, no supplementary
  groups and ``no_new_privs``, and a second, unprivileged bubblewrap makes the user namespace
  (uid 65534 outside, 65534 inside) and forbids further user namespaces. A user namespace alone
  would leave the program root outside it, able to read root's files.
- agentos runs as **another user**: one unprivileged bubblewrap makes every namespace; the
  program runs as that user outside (and 65534 inside).

Inside: ``/usr`` (and the ``/bin``, ``/lib*`` links), the interpreter's prefixes read-only at
their own paths, a minimal ``/etc`` (dynamic-linker cache, timezone, generated passwd/group/hosts),
``/dev`` (null, zero, random, ...), ``/proc`` of the new PID namespace, a private size-capped
``/tmp`` and ``/dev/shm``, and the workspace read-write at ``/workspace``. Never the host's
home, the agentos data dir (other than the workspace) or anything else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from agentos.errors import SandboxUnavailable

__all__ = [
    "SANDBOX_UID",
    "WORKSPACE",
    "Command",
    "build",
    "check_available",
    "interpreter_roots",
]

SANDBOX_UID = 65534
WORKSPACE = "/workspace"
_INSTALL = (
    "Install bubblewrap: `bash system-packages.sh` from the agentos checkout, or "
    "`sudo apt-get install bubblewrap` (Debian/Ubuntu), `sudo dnf install bubblewrap` (Fedora)."
)
_USERNS = (
    "Unprivileged user namespaces are disabled on this machine. Enable them with "
    "`sudo sysctl -w kernel.unprivileged_userns_clone=1` (Debian), "
    "`sudo sysctl -w user.max_user_namespaces=15000`, or on Ubuntu 24.04+ "
    "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; inside a container, run it "
    "with user namespaces allowed (e.g. docker --security-opt seccomp=unconfined)."
)
_WEAKER = ('Or run with less isolation, by name: isolation="rlimits-only" (no namespaces: the '
           "program can read your files and use the network).")
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives")
_PASSWD = f"root:x:0:0::/:/usr/sbin/nologin\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}::/tmp:/usr/sbin/nologin\n"
_GROUP = f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\n"
_HOSTS = "127.0.0.1 localhost sandbox\n::1 localhost\n"


@dataclass(slots=True)
class Command:
    """A bubblewrap invocation with ``@name`` placeholders for file descriptors.

    ``opts`` go to bubblewrap through ``--args @args`` (so the sandbox's ``/proc/1/cmdline``
    shows no host paths); each ``data`` entry becomes a pipe bubblewrap reads; each
    ``status_keys`` entry a pipe bubblewrap writes its JSON status to.
    """

    argv: list[str]
    opts: list[str]
    data: dict[str, bytes]
    status_keys: list[str] = field(default_factory=list)
    as_root: bool = False


def _bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "the sandbox needs bubblewrap (`bwrap`), which is not on PATH. " + _INSTALL + " "
            + _WEAKER
        )
    return path


def interpreter_roots() -> list[Path]:
    """The directories the interpreter needs, outside ``/usr``: its prefixes (venv and base)."""
    roots: list[Path] = []
    for raw in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}:
        path = Path(raw).resolve()
        if path == Path("/usr") or Path("/usr") in path.parents:
            continue
        roots.append(path)
    roots.sort(key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in roots:
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return kept


def _sensitive(data_dir: Path | None) -> list[Path]:
    home = Path.home()
    paths = [home / name for name in (".ssh", ".gnupg", ".aws", ".netrc", ".config", ".docker")]
    if data_dir is not None:
        paths.append(data_dir)
    return [p.resolve() for p in paths]


def _check_roots(roots: list[Path], workdir: Path, data_dir: Path | None) -> None:
    guarded_paths = [Path.home().resolve()] + ([data_dir.resolve()] if data_dir else [])
    for root in [*roots, workdir]:
        for guarded in guarded_paths:
            if root == guarded or root in guarded.parents:
                what = "workspace" if root == workdir else "interpreter prefix"
                raise SandboxUnavailable(
                    f"the sandbox would expose {guarded} because the {what} {root} contains it. "
                    + ("Give the sandbox a directory of its own (e.g. under the data dir's "
                       "workspaces/)." if root == workdir else
                       "Use a Python installed in a prefix of its own (a venv, pyenv or /usr).")
                )


def _ro_binds(binds: list[tuple[Path, Path]], made: set[Path]) -> list[str]:
    """Read-only binds, each destination's parents made first as 0755 directories (bubblewrap
    would make them 0700 as root, which the sandbox user could not traverse)."""
    opts: list[str] = []
    for source, dest in binds:
        for parent in reversed(dest.parents):
            if parent not in made:
                opts += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        opts += ["--ro-bind", str(source), str(dest)]
        made.add(dest)
    return opts


def build(
    argv: list[str],
    workdir: Path,
    *,
    env: dict[str, str],
    tmp_mb: int,
    ro_binds: list[Path],
    data_dir: Path | None,
) -> Command:
    """The bubblewrap command that runs ``argv`` in ``workdir`` (as ``/workspace``).

    Raises:
        SandboxUnavailable: bubblewrap (or, as root, setpriv) is missing, or a bind would expose
            the home or data dir.
    """
    bwrap = _bwrap()
    as_root = os.geteuid() == 0
    workdir = workdir.resolve()
    roots = interpreter_roots()
    _check_roots(roots, workdir, data_dir)
    opts: list[str] = [
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", "sandbox", "--die-with-parent", "--new-session",
        "--ro-bind", "/usr", "/usr",
    ]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            opts += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            opts += ["--ro-bind", str(host), str(host)]
    opts += ["--perms", "0755", "--dir", "/etc"]
    for name in _ETC_FILES:
        opts += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    data = {"@passwd": _PASSWD.encode(), "@group": _GROUP.encode(), "@hosts": _HOSTS.encode()}
    for key in ("passwd", "group", "hosts"):
        opts += ["--ro-bind-data", f"@{key}", f"/etc/{key}"]
    made: set[Path] = {Path("/"), Path("/usr"), Path("/etc")}
    binds = [(root, root) for root in roots]
    extra = [(p.resolve(), p.resolve()) for p in ro_binds]
    opts += [
        "--bind", str(workdir), WORKSPACE,
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
        "--perms", "1777", "--size", str(min(tmp_mb, 64) * 1024 * 1024), "--tmpfs", "/dev/shm",
    ]
    made |= {Path("/tmp"), Path("/dev"), Path("/proc")}
    # After /tmp, which would hide binds below it (an interpreter or venv under /tmp, as in a
    # checkout cloned there).
    opts += _ro_binds(binds + extra, made)
    for secret in _sensitive(data_dir):  # only matters when a bind above contains one
        if secret.exists() and any(src in secret.parents for src, _ in binds + extra):
            opts += (["--tmpfs", str(secret)] if secret.is_dir()
                     else ["--ro-bind", "/dev/null", str(secret)])
    opts += ["--remount-ro", "/", "--chdir", WORKSPACE, "--clearenv"]
    for key, value in env.items():
        opts += ["--setenv", key, value]
    opts += ["--json-status-fd", "@status"]
    status = ["@status"]
    if as_root:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise SandboxUnavailable(
                "running as root, the sandbox drops to uid 65534 with `setpriv` (util-linux), "
                "which is not on PATH: `apt-get install util-linux`. " + _WEAKER
            )
        u = str(SANDBOX_UID)
        tail = [
            setpriv, f"--reuid={u}", f"--regid={u}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--",
            bwrap, "--unshare-user", "--uid", u, "--gid", u, "--disable-userns",
            "--die-with-parent", "--json-status-fd", "@inner", "--dev-bind", "/", "/",
            "--chdir", WORKSPACE, "--", *argv,
        ]
        status.append("@inner")
    else:
        opts += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                 "--disable-userns"]
        tail = ["--", *argv]
    return Command([bwrap, "--args", "@args", *tail], opts, data, status, as_root)


def check_available() -> None:
    """Run ``true`` in the full sandbox once per process (per bwrap path and uid).

    Raises:
        SandboxUnavailable: bubblewrap is missing or cannot make its namespaces here; the message
            says how to fix it.
    """
    _probe(_bwrap(), os.geteuid())


@lru_cache(maxsize=8)
def _probe(bwrap: str, euid: int) -> None:
    from agentos.sandbox._supervise import open_fds

    with tempfile.TemporaryDirectory(prefix="agentos-sandbox-probe-") as tmp:
        workdir = Path(tmp)
        if euid == 0:
            os.chown(workdir, SANDBOX_UID, SANDBOX_UID)
        command = build(["true"], workdir, env={"PATH": "/usr/bin:/bin"}, tmp_mb=1, ro_binds=[],
                        data_dir=None)
        with open_fds(command) as (argv, fds, _status):
            proc = subprocess.run(argv, pass_fds=fds, capture_output=True, timeout=30)
    if proc.returncode == 0:
        return
    message = proc.stderr.decode(errors="replace").strip()
    lowered = message.lower()
    hint = _USERNS if any(s in lowered for s in (
        "namespace", "uid map", "operation not permitted", "permission denied")) else _INSTALL
    raise SandboxUnavailable(
        f"bubblewrap cannot make the sandbox here (`{bwrap}` said: {message or proc.returncode}). "
        f"{hint} {_WEAKER}"
    )
