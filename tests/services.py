"""Real services the tests start on free ports, and stop by their own PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["REDIS_MISSING", "RedisServer", "redis_url", "running_redis"]

REDIS_MISSING = (
    "redis-server is not on PATH; the bus contract suite needs the real binary: "
    "apt-get install redis-server (CI installs it)"
)


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
    """

    def __init__(self, workdir: Path, *, persist: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(REDIS_MISSING, pytrace=False)
        self.binary = binary
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
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 *persistence, "--dir", str(self.workdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10.0
        while not _answers_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(
                    f"redis-server did not start on port {self.port}:\n{output}", pytrace=False
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
def running_redis(workdir: Path, *, persist: bool = False) -> Iterator[RedisServer]:
    """A started `RedisServer`, stopped on exit whatever happened."""
    server = RedisServer(workdir, persist=persist)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free port; stopped by its own PID."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url
