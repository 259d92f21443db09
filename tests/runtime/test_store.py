"""The run store keeps completed syscalls when the process dies, and refuses a corrupt file."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentos.errors import UserError
from agentos.runtime.store import RunStore

_CRASHING_AGENT = textwrap.dedent(
    """
    import os, signal, sys
    from agentos import Agent, Kernel, load_settings, tool
    from agentos.testing import FunctionLLM, call

    calls = 0

    @tool
    def step(n: int) -> int:
        '''Count.'''
        global calls
        calls += 1
        if calls == 4:
            os.kill(os.getpid(), signal.SIGKILL)  # die mid-run, no cleanup
        return n

    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": sys.argv[1]}))
    llm = FunctionLLM(lambda m, t: call("step", n=len(m)))
    Agent("doomed", llm=llm, tools=[step], max_steps=50).run("count", kernel=kernel)
    """
)


def test_killed_process_keeps_completed_syscalls(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _CRASHING_AGENT, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = RunStore(tmp_path / "runs.sqlite")
    [run] = store.list_runs()
    assert run.status == "running"  # nobody ended it
    rows = store.syscalls(run.id)
    # 4 LLM turns and 3 tool calls completed before the 4th tool call killed the process.
    assert [(r.kind, r.outcome) for r in rows] == [("llm", "ok"), ("tool", "ok")] * 3 + [("llm", "ok")]
    assert store.mark_abandoned() == 1
    assert store.get_run(run.id).status == "abandoned"  # type: ignore[union-attr]


def test_run_lookup_by_prefix(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.start_run("x", "task")
    store.end_run(run_id, "succeeded", "answer", usage={"tokens": 3})
    record = store.get_run(run_id[:6])
    assert record is not None and record.result == "answer" and record.usage == {"tokens": 3}


def test_corrupt_store_file_is_refused_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="not a usable agentos run store.*AGENTOS_DATA_DIR"):
        RunStore(path)
    assert path.read_bytes().startswith(b"this is not sqlite")  # left as it was
