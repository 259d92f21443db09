"""``agentos energy report`` on a scripted run: the table and the HTML report match the run store."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from agentos import Agent, Kernel, load_settings, tool
from agentos.testing import ScriptedLLM, call


@tool
def crunch(seconds: float) -> str:
    """Keep one CPU busy for a while.

    Args:
        seconds: CPU seconds to burn.
    """
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return "done"


def _agentos(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentos", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "250", "AGENTOS_DATA_DIR": str(data_dir)},
                          timeout=120)


def test_energy_report_table_and_html_match_the_run_store(tmp_path: Path) -> None:
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    try:
        first = Agent("cruncher", llm=ScriptedLLM([call("crunch", seconds=0.2), "ok"], name="scripted-a"),
                      tools=[crunch]).run("crunch", kernel=kernel)
        rows = kernel.store.syscalls(first.run_id)
    finally:
        kernel.close()
    total = sum(r.energy_j for r in rows)

    out = _agentos("energy", "report", first.run_id[:6], "--html", str(tmp_path / "r.html"),
                   data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"total {total:.3f} J" in out.stdout
    for name in ("cruncher", "scripted-a", "crunch", "modelled: process CPU time"):
        assert name in out.stdout
    tool_j = next(r.energy_j for r in rows if r.kind == "tool")
    assert re.search(rf"tool\s+│\s+crunch\s+│\s+1\s+│\s+{tool_j:.3f}.*energy \[1\]; FLOPs \[2\]",
                     out.stdout), out.stdout
    assert "[2] not counted" in out.stdout  # a tool's FLOPs are not counted, and it says so

    page = (tmp_path / "r.html").read_text()
    assert f"<b>{total:.3f} J</b>" in page
    assert '<ol id="methods"><li>modelled: process CPU time' in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4  # over time, per agent, per model, FLOPs against joules
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page and "https://" not in page  # self-contained

    newest = _agentos("energy", "report", data_dir=tmp_path)  # no RUN: the newest run
    assert newest.returncode == 0 and first.run_id in newest.stdout


def test_energy_report_of_an_unknown_run_says_how_to_find_one(tmp_path: Path) -> None:
    out = _agentos("energy", "report", "nope", data_dir=tmp_path)
    assert out.returncode == 2 and "agentos runs list" in out.stderr
