"""Fixtures of the memory contract suite: the real embedding model (loaded once), a real
``chroma run`` server on a free port (stopped by its PID), and a `Memory` factory per backend."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentos.runtime.memory import CachedEmbedder, Memory, SentenceTransformerEmbedder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChromaServer:
    """``chroma run`` (the chromadb package's server) on a free port with its own data folder."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
        if not Path(binary).exists():
            pytest.fail("the `chroma` command is missing: pip install 'agentos-kit[memory]'",
                        pytrace=False)
        self.binary, self.workdir, self.port = binary, workdir, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.workdir / "chroma.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "run", "--path", str(self.workdir / "data"), "--host", "127.0.0.1",
             "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = (self.workdir / "chroma.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"chroma run did not start:\n{tail}", pytrace=False)
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL by PID (no shutdown of any kind), and wait until the process is gone."""
        proc, self.proc = self.proc, None
        assert proc is not None and proc.poll() is None, "the server is not running"
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedder() -> CachedEmbedder:
    """The packaged all-MiniLM-L6-v2, loaded once per session (an in-process cache over it)."""
    return CachedEmbedder(SentenceTransformerEmbedder(), None)


MemoryFactory = Callable[..., Memory]


@pytest.fixture(params=["embedded", "server"])
def make_memory(request: pytest.FixtureRequest, tmp_path: Path,
                embedder: CachedEmbedder) -> Iterator[MemoryFactory]:
    """``make_memory(**kwargs)``: a fresh `Memory` on one backend (embedded Chroma in a temp
    folder, or the session's Chroma server with a fresh local folder)."""
    made: list[Memory] = []
    url = request.getfixturevalue("chroma_server").url if request.param == "server" else None

    def factory(**kwargs: Any) -> Memory:
        kwargs.setdefault("embedder", embedder)
        memory = Memory(tmp_path / f"memory{len(made)}", url=url, **kwargs)
        made.append(memory)
        return memory

    yield factory
    for memory in made:
        if url is not None:  # the server is shared by the session: leave it empty
            for namespace in memory.namespaces():
                memory.drop(namespace)
        memory.close()
