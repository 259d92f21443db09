"""What the test workers serve (``agentos worker --tools ...:TOOLS --llm test/echo=...:ECHO``).

``record`` leaves a trace of every start and finish in a log file, so a test can count how
often a syscall's work started and how often it completed, and in which process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agentos.testing import FunctionLLM

__all__ = ["ECHO", "TOOLS", "crash", "record"]


def record(log: str, tag: str, hold_s: float = 0.0, hold_once: bool = False) -> str:
    """Append "start TAG PID", wait ``hold_s`` seconds, append "done TAG PID"; return "TAG PID".

    Args:
        log: the log file.
        tag: names the call in the log.
        hold_s: seconds to wait between start and done.
        hold_once: wait only the first time this tag starts (a redelivery finishes at once).
    """
    path = Path(log)
    pid = os.getpid()
    first = f"start {tag} " not in (path.read_text() if path.exists() else "")
    with path.open("a") as f:
        f.write(f"start {tag} {pid}\n")
    if hold_s and (first or not hold_once):
        time.sleep(hold_s)
    with path.open("a") as f:
        f.write(f"done {tag} {pid}\n")
    return f"{tag} {pid}"


def crash(log: str) -> str:
    """Append "start crash PID" and kill this process at once (a poison syscall).

    Args:
        log: the log file.
    """
    with Path(log).open("a") as f:
        f.write(f"start crash {os.getpid()}\n")
    os._exit(1)


TOOLS = [record, crash]

ECHO = FunctionLLM(lambda messages, tools: f"echo {messages[-1]['content']} {os.getpid()}",
                   name="echo")
