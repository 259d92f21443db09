"""A crew run in its own process, for the kill -9 / resume test (``python -m tests.crew._killable``).

Usage: ``run DATA_DIR LOG_DIR`` or ``resume DATA_DIR LOG_DIR RUN_ID``. Agent ``a`` (task ``first``)
and agent ``b`` (task ``second``) each call the ``side_effect`` tool once, then answer. Every
completed LLM call appends ``<label> <agent>:<turn>`` to ``LOG_DIR/llm.log``; every tool call
appends its tag to ``LOG_DIR/effects.log``. With ``CREW_HANG=1`` agent b's second LLM call
writes ``LOG_DIR/hanging`` and never returns (the test kills the process there).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from agentos import Agent, Kernel, load_settings, tool
from agentos.crew import Crew, Task
from agentos.runtime.registry import ToolRegistry
from agentos.testing import FunctionLLM, call


def build(data_dir: str, log_dir: Path, label: str) -> Crew:
    @tool
    def side_effect(tag: str) -> str:
        """Append a tag to the effects log (a side effect that must happen once)."""
        with open(log_dir / "effects.log", "a") as f:
            f.write(tag + "\n")
        return f"recorded {tag}"

    def brain(messages, tools):  # type: ignore[no-untyped-def]
        agent = "a" if messages[0]["content"].startswith("You are a,") else "b"
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if agent == "b" and turn == 1 and os.environ.get("CREW_HANG") == "1":
            (log_dir / "hanging").write_text(str(os.getpid()))
            time.sleep(3600)
        reply = call("side_effect", tag=f"{agent}1") if turn == 0 else f"{agent} done"
        with open(log_dir / "llm.log", "a") as f:
            f.write(f"{label} {agent}:{turn}\n")
        return reply

    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": data_dir}), registry=ToolRegistry())
    agents = [Agent(n, llm=FunctionLLM(brain), tools=[side_effect]) for n in ("a", "b")]
    return Crew(agents, [Task("first", agent="a"), Task("second", agent="b")], kernel=kernel)


def main() -> None:
    mode, data_dir, log_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    crew = build(data_dir, log_dir, mode)
    if mode == "run":
        result = crew.run("do both", run_id="killme")
    else:
        result = crew.resume(sys.argv[4])
    print(result.status, result.report)


if __name__ == "__main__":
    main()
