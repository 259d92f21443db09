"""One writer per memory store: an exclusive ``fcntl`` lock on a file beside the data.

Chroma's embedded index corrupts under concurrent writers (and two processes opening a fresh
store at once collide), so every write, and opening the store, holds this lock. It is also a
thread lock, so threads of one process take turns the same way. Readers do not take it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WriteLock"]


class WriteLock:
    """Re-entrant within a thread; exclusive across threads and processes.

    Args:
        path: the lock file (created; its content is never read).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` body; blocks until the other writer is done."""
        with self._thread_lock:
            if self._depth == 0:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None
