"""Crew checkpoints in the run store's SQLite file: the saver, what each run needs to resume,
a retention policy, and the format check on load.

LangGraph's own SQLite checkpointer (``langgraph-checkpoint-sqlite``'s ``AsyncSqliteSaver``)
writes the graph's checkpoints into the run store database (tables ``checkpoints`` and
``writes``), one LangGraph thread per run id. Beside them, ``crew_runs`` keeps per run the
checkpoint format, the agentos version that wrote it and the crew's definition (a built-in
crew's name and options, or a YAML crew's text) so ``agentos runs resume`` can rebuild the crew.

LangGraph's saver keeps every checkpoint forever; :class:`Retention` prunes them: a finished
run keeps only its latest checkpoint (its final state), an unfinished one its newest few, and
only the newest ``max_finished_runs`` finished runs keep any.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentos.errors import CheckpointVersionError, RunNotResumable

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from agentos.runtime.store import RunStore

__all__ = ["CHECKPOINT_FORMAT", "CrewRunRecord", "Retention", "checkpointer", "count", "load_record",
           "prune", "save_record"]

CHECKPOINT_FORMAT = 1
"""Bumped whenever a checkpoint written by an older agentos could not be resumed by this one."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS crew_runs ("
    " run_id TEXT PRIMARY KEY, format INTEGER NOT NULL, agentos_version TEXT NOT NULL,"
    " crew TEXT NOT NULL, created_at REAL NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Retention:
    """How many checkpoints the run store keeps.

    Attributes:
        keep_finished: checkpoints kept per finished run (the newest; 1 keeps its final state).
        keep_unfinished: checkpoints kept per run that is waiting, failed or was killed.
        max_finished_runs: finished runs that keep checkpoints at all (the newest ones); older
            finished runs lose theirs (their runs, syscalls and results stay in the run store).
    """

    keep_finished: int = 1
    keep_unfinished: int = 5
    max_finished_runs: int = 200

    def __post_init__(self) -> None:
        if self.keep_finished < 0 or self.keep_unfinished < 1 or self.max_finished_runs < 0:
            raise ValueError(
                "Retention needs keep_finished >= 0, keep_unfinished >= 1 (a run must keep a "
                "checkpoint to resume from) and max_finished_runs >= 0"
            )


@dataclass(frozen=True, slots=True)
class CrewRunRecord:
    """What a crew run needs to be rebuilt for resuming."""

    run_id: str
    format: int
    agentos_version: str
    crew: dict[str, Any]


@asynccontextmanager
async def checkpointer(store: RunStore) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """LangGraph's SQLite saver on the run store's file (in memory for an in-memory store)."""
    if store.path is None:
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    # Autocommit: the run store writes synchronously on the event loop's thread, so a
    # transaction left open across an ``await`` (between LangGraph's INSERT and its commit)
    # would deadlock it.
    async with aiosqlite.connect(str(store.path), timeout=30, isolation_level=None) as conn:
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver


def save_record(store: RunStore, run_id: str, crew: dict[str, Any]) -> None:
    """Remember how to rebuild the crew of ``run_id`` (JSON), with this checkpoint format."""
    from agentos import __version__

    store.execute(_SCHEMA)
    store.execute(
        "INSERT OR REPLACE INTO crew_runs (run_id, format, agentos_version, crew, created_at) "
        "VALUES (?,?,?,?,?)",
        (run_id, CHECKPOINT_FORMAT, __version__, json.dumps(crew), time.time()),
    )


def load_record(store: RunStore, run_id: str) -> CrewRunRecord:
    """The crew record of ``run_id`` (a unique prefix is enough).

    Raises:
        RunNotResumable: no such run, or it is not a crew run.
        CheckpointVersionError: its checkpoints were written in another format.
    """
    run = store.get_run(run_id)
    if run is None:
        raise RunNotResumable(f"no run {run_id!r}; `agentos runs list` shows the recent ones")
    store.execute(_SCHEMA)
    rows = store.execute(
        "SELECT run_id, format, agentos_version, crew FROM crew_runs WHERE run_id=?", (run.id,)
    )
    if not rows:
        raise RunNotResumable(
            f"run {run.id} ({run.name}) is not a crew run: only crews (`agentos crew run`) "
            "checkpoint their steps and can be resumed; start it again instead"
        )
    rid, fmt, version, crew = rows[0]
    if fmt != CHECKPOINT_FORMAT:
        from agentos import __version__

        raise CheckpointVersionError(
            f"run {rid} was checkpointed by agentos {version} in checkpoint format {fmt}; this "
            f"agentos ({__version__}) reads format {CHECKPOINT_FORMAT}. Resume it with agentos "
            f"{version} (`pip install agentos-kit=={version}`), or start the task again with "
            "`agentos crew run`"
        )
    return CrewRunRecord(rid, fmt, version, json.loads(crew))


def prune(store: RunStore, retention: Retention, run_id: str, finished: bool) -> int:
    """Apply ``retention`` after run ``run_id`` stopped; returns how many checkpoints were deleted."""
    if store.path is None or not store.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='checkpoints'"
    ):
        return 0
    keep = retention.keep_finished if finished else retention.keep_unfinished
    before = store.execute("SELECT COUNT(*) FROM checkpoints")[0][0]
    store.execute(
        "DELETE FROM checkpoints WHERE thread_id=? AND checkpoint_id NOT IN (SELECT checkpoint_id "
        "FROM checkpoints WHERE thread_id=? ORDER BY checkpoint_id DESC LIMIT ?)",
        (run_id, run_id, keep),
    )
    # Finished runs beyond the newest max_finished_runs lose all their checkpoints.
    finished_threads = [r[0] for r in store.execute(
        "SELECT c.run_id FROM crew_runs c JOIN runs r ON r.id = c.run_id WHERE r.status NOT IN "
        "('running', 'waiting', 'abandoned', 'failed') ORDER BY r.started_at DESC LIMIT -1 OFFSET ?",
        (retention.max_finished_runs,),
    )]
    for thread in finished_threads:
        store.execute("DELETE FROM checkpoints WHERE thread_id=?", (thread,))
    store.execute(
        "DELETE FROM writes WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE "
        "c.thread_id = writes.thread_id AND c.checkpoint_ns = writes.checkpoint_ns AND "
        "c.checkpoint_id = writes.checkpoint_id)"
    )
    return before - store.execute("SELECT COUNT(*) FROM checkpoints")[0][0]


def count(store: RunStore, run_id: str) -> int:
    """How many checkpoints run ``run_id`` has in the store."""
    if store.path is None or not store.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='checkpoints'"
    ):
        return 0
    return store.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id=?", (run_id,))[0][0]
