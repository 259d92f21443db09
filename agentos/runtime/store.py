"""The run store: runs, syscalls, messages and final results in SQLite.

Each syscall is committed when it completes, in WAL mode, so a process that dies (even by
SIGKILL) leaves every completed syscall on disk; a run that never finished reads as ``running``
until :meth:`RunStore.mark_abandoned` (called at start-up) marks it ``abandoned``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunRecord", "RunStore", "SyscallRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    task TEXT,
    status TEXT NOT NULL,          -- running | succeeded | failed | budget_exceeded | cancelled | abandoned | max_steps
    pid INTEGER,
    started_at REAL NOT NULL,
    ended_at REAL,
    result TEXT,
    error TEXT,
    usage TEXT                      -- JSON
);
CREATE TABLE IF NOT EXISTS syscalls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    agent TEXT NOT NULL,
    kind TEXT NOT NULL,             -- llm | tool | memory | publish | ...
    resource TEXT NOT NULL,
    name TEXT,
    submitted_at REAL NOT NULL,
    queue_wait_s REAL NOT NULL,
    service_s REAL NOT NULL,
    attempts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    energy_j REAL NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,          -- ok | error | budget_exceeded | cancelled | timeout | abandoned | invalid | denied
    error TEXT,
    detail TEXT,                    -- JSON: arguments, model, ...
    flops REAL NOT NULL DEFAULT 0,
    gco2 REAL NOT NULL DEFAULT 0,
    energy_method TEXT,
    flops_method TEXT
);
CREATE INDEX IF NOT EXISTS syscalls_run ON syscalls(run_id);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    topic TEXT NOT NULL,
    sender TEXT,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

#: Columns added after the first release: stores written before them get them on open.
_ADDED_COLUMNS = (
    ("syscalls", "flops", "REAL NOT NULL DEFAULT 0"),
    ("syscalls", "gco2", "REAL NOT NULL DEFAULT 0"),
    ("syscalls", "energy_method", "TEXT"),
    ("syscalls", "flops_method", "TEXT"),
)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored.

    Attributes:
        status: ``running``, ``succeeded``, ``failed``, ``budget_exceeded``, ``cancelled``,
            ``max_steps``, or ``abandoned`` (its process died before it ended).
        started_at, ended_at: wall-clock seconds (``time.time()``); ``ended_at`` is ``None``
            while it runs.
        usage: tokens, cost, energy_j and syscalls, as :meth:`Usage.as_dict` wrote them.
    """

    id: str
    name: str
    task: str | None
    status: str
    started_at: float
    ended_at: float | None
    result: str | None
    error: str | None
    usage: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SyscallRecord:
    """One syscall as stored.

    Attributes:
        kind: ``llm``, ``tool``, ``memory``, ``publish``, ...
        resource: the scheduler pool, e.g. ``llm:openai/gpt-4o``.
        submitted_at: wall-clock seconds when it was submitted.
        queue_wait_s, service_s: seconds queued (summed over attempts) and running (last attempt).
        outcome: ``ok``, ``error``, ``timeout``, ``cancelled``, ``budget_exceeded``, ``invalid``
            (a malformed call, never run), ``denied`` (a memory namespace not granted), or
            ``abandoned`` (timed out or cancelled while a sync tool's thread, which cannot be
            stopped, still ran).
        detail: JSON facts kept with it (tool arguments, message counts, ``abandoned``).
        energy_j, flops, gco2: joules, FLOPs and grams of CO2-equivalent (0 in stores written
            before they were recorded, and for syscalls that did not complete).
        energy_method, flops_method: how each was obtained (``None`` where not recorded).
    """

    id: int
    run_id: str
    agent: str
    kind: str
    resource: str
    name: str | None
    submitted_at: float
    queue_wait_s: float
    service_s: float
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    energy_j: float
    outcome: str
    error: str | None
    detail: dict[str, Any]
    flops: float = 0.0
    gco2: float = 0.0
    energy_method: str | None = None
    flops_method: str | None = None


class RunStore:
    """SQLite-backed store; one connection shared by threads behind a lock.

    Args:
        path: the database file (created with its folder), or ``":memory:"``.

    Raises:
        UserError: the file exists but is not an agentos run store (corrupt or foreign).
    """

    def __init__(self, path: str | Path) -> None:
        from agentos.errors import UserError

        self.path = Path(path) if path != ":memory:" else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
        except sqlite3.DatabaseError as error:
            raise UserError(
                f"{path} is not a usable agentos run store ({error}). Move it aside or set "
                "AGENTOS_DATA_DIR to another folder; agentos will create a fresh one."
            ) from error

    def _add_missing_columns(self) -> None:
        """Bring a store written by an older agentos up to this schema (ALTER TABLE ADD COLUMN)."""
        for table, column, kind in _ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        """Close the database; later calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._db.close()

    # --- runs ---------------------------------------------------------------------------------

    def start_run(self, name: str, task: str | None = None, run_id: str | None = None) -> str:
        """Insert a ``running`` run owned by this process; returns its id (12 hex digits if new).

        Raises:
            sqlite3.IntegrityError: ``run_id`` is already taken.
        """
        import os

        run_id = run_id or uuid.uuid4().hex[:12]
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (id, name, task, status, pid, started_at, usage) "
                "VALUES (?, ?, ?, 'running', ?, ?, '{}')",
                (run_id, name, task, os.getpid(), time.time()),
            )
        return run_id

    def end_run(
        self,
        run_id: str,
        status: str,
        result: str | None = None,
        error: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        """Record how a run ended (an unknown ``run_id`` changes nothing)."""
        with self._lock:
            self._db.execute(
                "UPDATE runs SET status=?, ended_at=?, result=?, error=?, usage=? WHERE id=?",
                (status, time.time(), result, error, json.dumps(usage or {}), run_id),
            )

    def reopen_run(self, run_id: str) -> None:
        """Mark a stopped run ``running`` again in this process (a crew resuming it)."""
        import os

        with self._lock:
            self._db.execute(
                "UPDATE runs SET status='running', pid=?, ended_at=NULL WHERE id=?",
                (os.getpid(), run_id),
            )

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement under the store's lock, committed at once; returns its rows.

        For tables other modules own in this database (the crew journal and checkpoint index).
        """
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def mark_abandoned(self) -> int:
        """Mark runs left ``running`` by processes that no longer exist as ``abandoned``."""
        with self._lock:
            rows = self._db.execute("SELECT id, pid FROM runs WHERE status='running'").fetchall()
            dead = [run_id for run_id, pid in rows if pid is None or not _alive(pid)]
            self._db.executemany(
                "UPDATE runs SET status='abandoned' WHERE id=?", [(d,) for d in dead]
            )
        return len(dead)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with id ``run_id``, or the newest whose id starts with it; ``None`` if none."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, task, status, started_at, ended_at, result, error, usage "
                "FROM runs WHERE id=? OR id LIKE ? ORDER BY started_at DESC LIMIT 1",
                (run_id, run_id + "%"),
            ).fetchone()
        return _run(row) if row else None

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` newest runs, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, task, status, started_at, ended_at, result, error, usage "
                "FROM runs ORDER BY started_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_run(r) for r in rows]

    # --- syscalls -----------------------------------------------------------------------------

    def record_syscall(
        self,
        run_id: str,
        agent: str,
        kind: str,
        resource: str,
        name: str | None,
        submitted_at: float,
        queue_wait_s: float,
        service_s: float,
        attempts: int,
        outcome: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        energy_j: float = 0.0,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
        *,
        flops: float = 0.0,
        gco2: float = 0.0,
        energy_method: str | None = None,
        flops_method: str | None = None,
    ) -> None:
        """Append one syscall; committed before this returns (a crash right after keeps it).

        The fields are those of :class:`SyscallRecord`; ``detail`` is stored as JSON (values
        JSON cannot hold are written with ``str``).
        """
        with self._lock:
            self._db.execute(
                "INSERT INTO syscalls (run_id, agent, kind, resource, name, submitted_at, "
                "queue_wait_s, service_s, attempts, prompt_tokens, completion_tokens, cost, "
                "energy_j, outcome, error, detail, flops, gco2, energy_method, flops_method) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, agent, kind, resource, name, submitted_at, queue_wait_s, service_s,
                    attempts, prompt_tokens, completion_tokens, cost, energy_j, outcome, error,
                    json.dumps(detail, default=str) if detail else None,
                    flops, gco2, energy_method, flops_method,
                ),
            )

    def syscalls(self, run_id: str) -> list[SyscallRecord]:
        """Every syscall of run ``run_id`` (exact id) in the order they were recorded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, run_id, agent, kind, resource, name, submitted_at, queue_wait_s, "
                "service_s, attempts, prompt_tokens, completion_tokens, cost, energy_j, outcome, "
                "error, detail, flops, gco2, energy_method, flops_method FROM syscalls "
                "WHERE run_id=? ORDER BY id",
                (run_id,),
            ).fetchall()
        return [SyscallRecord(*r[:16], json.loads(r[16]) if r[16] else {}, *r[17:]) for r in rows]

    # --- messages -----------------------------------------------------------------------------

    def record_message(
        self, run_id: str | None, topic: str, sender: str | None, payload: dict[str, Any]
    ) -> None:
        """Keep a copy of a published message with the run.

        Raises:
            TypeError: ``payload`` is not JSON-serialisable.
        """
        with self._lock:
            self._db.execute(
                "INSERT INTO messages (run_id, topic, sender, payload, created_at) "
                "VALUES (?,?,?,?,?)",
                (run_id, topic, sender, json.dumps(payload), time.time()),
            )

    def messages(self, run_id: str) -> list[dict[str, Any]]:
        """The run's messages, oldest first: ``topic``, ``sender``, ``payload``, ``created_at``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT topic, sender, payload, created_at FROM messages WHERE run_id=? "
                "ORDER BY id",
                (run_id,),
            ).fetchall()
        return [
            {"topic": t, "sender": s, "payload": json.loads(p), "created_at": c}
            for t, s, p, c in rows
        ]


def _run(row: tuple[Any, ...]) -> RunRecord:
    *head, usage = row
    return RunRecord(*head, json.loads(usage) if usage else {})


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
