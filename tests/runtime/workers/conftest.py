"""Fixtures: a clean Redis database per test, and ``agentos worker`` processes stopped by PID."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos.runtime.workers._protocol import WORKERS_KEY

ROOT = Path(__file__).resolve().parents[3]
_dbs = itertools.cycle(range(1, 16))


def clean_db_url(server_url: str) -> str:
    """``server_url`` with the next database number (1-15), flushed: tests share nothing."""
    import redis

    url = server_url.rpartition("/")[0] + f"/{next(_dbs)}"
    r = redis.Redis.from_url(url)
    r.flushdb()
    r.close()
    return url


@pytest.fixture
def db_url(redis_url: str) -> str:
    """A flushed database of the session's redis-server."""
    return clean_db_url(redis_url)


class Workers:
    """Starts ``agentos worker`` processes serving `tests.runtime.workers.programs`."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, url: str, *, lease: float = 1.0, attempts: int = 3, concurrency: int = 2,
              wait: bool = True, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start one worker on ``url`` (``env``: extra environment variables, e.g. settings);
        with ``wait``, return once its heartbeat is in Redis."""
        import os

        log = (self.tmp / f"worker-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentos", "worker", "--url", url, "--lease", str(lease),
             "--attempts", str(attempts), "--concurrency", str(concurrency),
             "--tools", "tests.runtime.workers.programs:TOOLS",
             "--llm", "test/echo=tests.runtime.workers.programs:ECHO"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})},
        )
        self.procs.append(proc)
        if wait:
            self.wait_ready(url, proc)
        return proc

    def wait_ready(self, url: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
        import redis

        r = redis.Redis.from_url(url, decode_responses=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                beats = [json.loads(b) for b in r.hgetall(WORKERS_KEY).values()]
                if any(b["pid"] == proc.pid for b in beats):
                    return
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"worker {proc.pid} did not start:\n{self.output()}")
                time.sleep(0.05)
        finally:
            r.close()

    def output(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp.glob("worker-*.log")))

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` to every worker still running and wait for them (SIGKILL after 10 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(sig)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """`Workers`; every process it started is stopped (SIGTERM, then SIGKILL) by its PID."""
    made = Workers(tmp_path)
    try:
        yield made
    finally:
        made.stop()
