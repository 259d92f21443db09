"""Durability: a crew killed with SIGKILL resumes without repeating completed work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentos import Agent, Kernel, load_settings
from agentos.crew import Crew, Task
from agentos.crew import checkpoint as ckpt
from agentos.errors import CheckpointVersionError, RunNotResumable
from agentos.runtime.registry import ToolRegistry
from agentos.testing import ScriptedLLM

ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str, hang: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "CREW_HANG": "1" if hang else "0", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.crew._killable", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_repeats_no_completed_llm_call_or_tool_call(tmp_path: Path) -> None:
    data, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    proc = _spawn("run", str(data), str(logs), hang=True)
    deadline = time.monotonic() + 120
    while not (logs / "hanging").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the crew never reached agent b's second LLM call"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Killed after: a's two calls and tool call, b's first call and tool call.
    assert (logs / "effects.log").read_text().split() == ["a1", "b1"]
    assert (logs / "llm.log").read_text().splitlines() == ["run a:0", "run a:1", "run b:0"]

    resumed = _spawn("resume", str(data), str(logs), "killme", hang=False)
    out, errors = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, errors
    assert out.startswith("succeeded") and "b done" in out
    # Nothing completed was done again: the side effects happened once each, task `first` did
    # not run again, and in task `second` only the call in flight when killed was made again.
    assert (logs / "effects.log").read_text().split() == ["a1", "b1"]
    assert (logs / "llm.log").read_text().splitlines() == [
        "run a:0", "run a:1", "run b:0", "resume b:1"]
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(data)}), registry=ToolRegistry())
    calls = [(s.agent, s.kind, s.outcome) for s in kernel.store.syscalls("killme")]
    assert calls == [
        ("a", "llm", "ok"), ("a", "tool", "ok"), ("a", "llm", "ok"), ("a", "publish", "ok"),
        ("b", "llm", "ok"), ("b", "tool", "ok"),  # first process, killed during b's next call
        ("b", "llm", "replayed"), ("b", "tool", "replayed"), ("b", "llm", "ok"),  # resumed
    ]
    assert kernel.store.get_run("killme").status == "succeeded"
    with pytest.raises(RunNotResumable, match="already finished"):
        Crew([Agent("a", llm=ScriptedLLM([]))], [Task("first", agent="a")], kernel=kernel).resume("killme")
    kernel.close()


@pytest.fixture
def kernel(tmp_path: Path) -> Kernel:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}), registry=ToolRegistry())
    yield k
    k.close()


def _two_step(kernel: Kernel, llm: ScriptedLLM) -> Crew:
    return Crew([Agent("a", llm=llm)], [Task("one", agent="a"), Task("two", agent="a")], kernel=kernel)


def test_resume_of_unknown_or_non_crew_run_says_why(kernel: Kernel) -> None:
    crew = _two_step(kernel, ScriptedLLM([]))
    with pytest.raises(RunNotResumable, match="no run 'nope'"):
        crew.resume("nope")
    result = Agent("solo", llm=ScriptedLLM(["hi"])).run("hello", kernel=kernel)
    with pytest.raises(RunNotResumable, match="not a crew run"):
        crew.resume(result.run_id)


def test_checkpoint_from_another_format_fails_with_what_to_do(kernel: Kernel) -> None:
    result = _two_step(kernel, ScriptedLLM(["1", "2"])).run("go")
    kernel.store.execute("UPDATE crew_runs SET format=0, agentos_version='0.0.1' WHERE run_id=?",
                         (result.run_id,))
    kernel.store.execute("UPDATE runs SET status='abandoned' WHERE id=?", (result.run_id,))
    with pytest.raises(CheckpointVersionError, match=r"agentos 0\.0\.1 in checkpoint format 0.*"
                                                      r"pip install agentos-kit==0\.0\.1"):
        _two_step(kernel, ScriptedLLM([])).resume(result.run_id)


def test_retention_keeps_only_the_final_checkpoint_of_finished_runs(kernel: Kernel) -> None:
    result = _two_step(kernel, ScriptedLLM(["1", "2"])).run("go")
    assert ckpt.count(kernel.store, result.run_id) == 1
    crew = Crew([Agent("a", llm=ScriptedLLM(["1", "2"]))],
                [Task("one", agent="a"), Task("two", agent="a")], kernel=kernel,
                retention=ckpt.Retention(keep_finished=3))
    kept = crew.run("go")
    # One checkpoint per step: input, one, two, plus the final one; 3 newest kept.
    assert ckpt.count(kernel.store, kept.run_id) == 3
    assert kernel.store.execute("SELECT COUNT(*) FROM writes WHERE thread_id NOT IN "
                                "(SELECT thread_id FROM checkpoints)")[0][0] == 0


def test_retention_drops_checkpoints_of_old_finished_runs(kernel: Kernel) -> None:
    retention = ckpt.Retention(max_finished_runs=2)
    ids = [Crew([Agent("a", llm=ScriptedLLM(["1"]))], [Task("one", agent="a")], kernel=kernel,
                retention=retention).run("go").run_id for _ in range(4)]
    assert [ckpt.count(kernel.store, i) for i in ids] == [0, 0, 1, 1]
    # The runs themselves stay in the run store.
    assert all(kernel.store.get_run(i).status == "succeeded" for i in ids)
