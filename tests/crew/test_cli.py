"""`agentos crew run` and `agentos runs resume` as a user runs them: real processes, an HTTP model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply

CREW = """
name: calc-crew
agents:
  planner: {role: a planner}
  worker: {role: a worker, tools: [calculator]}
tasks:
  - {name: plan, agent: planner, description: "Plan: {goal}"}
  - name: work
    agent: worker
    description: Do the plan.
    check: {contains: ["391"]}
approve_tools: [calculator]
"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def _agentos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentos", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **env}, timeout=180, stdin=subprocess.DEVNULL)


def _env(fake: FakeOpenAI, tmp_path: Path) -> dict[str, str]:
    return {"AGENTOS_DATA_DIR": str(tmp_path / "data"), "AGENTOS_MODEL": "openai/fake-model",
            "OPENAI_API_BASE": fake.base_url, "OPENAI_API_KEY": "sk-test"}


def test_yaml_crew_waits_for_approval_then_resume_approve_finishes(fake: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "crew.yaml").write_text(CREW)
    fake.queue(
        "Compute 17*23 with the calculator.",
        Reply(tool_calls=[{"id": "c1", "type": "function",
                           "function": {"name": "calculator", "arguments": '{"expression": "17*23"}'}}]),
        "17*23 = 391",
    )
    env = _env(fake, tmp_path)
    out = _agentos("crew", "run", "multiply 17 by 23", "--crew", str(tmp_path / "crew.yaml"),
                   "--json", env=env)
    assert out.returncode == 3, out.stderr
    waiting = json.loads(out.stdout)
    assert waiting["status"] == "waiting" and waiting["waiting"]["tool"] == "calculator"
    assert f"agentos runs resume {waiting['run_id']} --approve" in out.stderr
    assert len(fake.requests) == 2  # the plan, then the worker's tool call; the tool has not run

    done = _agentos("runs", "resume", waiting["run_id"], "--approve", "--out", str(tmp_path / "out"),
                    "--json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert (tmp_path / "out" / "report.md").read_text() == "17*23 = 391"
    # The resumed process made one new request: the worker's answer after the real calculator ran.
    assert len(fake.requests) == 3 and fake.requests[2]["messages"][-1]["content"] == "391"
    shown = _agentos("runs", "show", waiting["run_id"], env=env)
    assert "replayed" in shown.stdout and "calculator" in shown.stdout and "publish" in shown.stdout

    again = _agentos("runs", "resume", waiting["run_id"], env=env)
    assert again.returncode == 2 and "already finished (succeeded)" in again.stderr


def test_resume_unknown_run_and_bad_crew_file(fake: FakeOpenAI, tmp_path: Path) -> None:
    env = _env(fake, tmp_path)
    out = _agentos("runs", "resume", "nope", env=env)
    assert out.returncode == 2 and "no run 'nope'" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "bad.yaml").write_text(CREW.replace("tools: [calculator]", "tools: [teleport]"))
    bad = _agentos("crew", "run", "x", "--crew", str(tmp_path / "bad.yaml"), env=env)
    assert bad.returncode == 2 and "unknown tool 'teleport'" in bad.stderr
    assert fake.requests == []


def _call(name: str, **arguments: str) -> Reply:
    return Reply(tool_calls=[{"id": f"c_{name}", "type": "function",
                              "function": {"name": name, "arguments": json.dumps(arguments)}}])


DOC = Path(__file__).resolve().parents[2] / "examples" / "crew_tasks" / "docs" / "kivu_calendar.md"


@pytest.mark.slow  # ~40-90 s: a CLI process that loads the embedder, Chroma and the sandbox
def test_builtin_crew_ingests_docs_researches_codes_and_writes_to_out(fake: FakeOpenAI, tmp_path: Path) -> None:
    answer = {"answer": "A Kivu year is a leap year when divisible by 5, except by 40, but by 200.",
              "claims": [{"claim": "leap years are divisible by 5", "source": "S1",
                          "quote": "a leap year when its number is divisible by 5"}]}
    code = ("def kivu_days(year):\n    leap = year % 5 == 0 and (year % 40 != 0 or year % 200 == 0)\n"
            "    return 371 if leap else 364\n")
    fake.queue(
        '["kivu leap year rule"]',                                      # researcher: plan
        json.dumps(answer),                                             # researcher: cited answer
        _call("write_file", path="solution.py", content=code),          # coder
        _call("write_file", path="test_solution.py",
              content="from solution import kivu_days\n\ndef test_days():\n    assert kivu_days(1995) == 371\n"),
        _call("run_tests"),                                             # in the bubblewrap sandbox
        "kivu_days is written and its test passes.",                    # the Coder re-checks itself
        "APPROVED: correct",                                            # reviewer
    )
    env = _env(fake, tmp_path)
    out = _agentos("crew", "run", "write kivu_days(year)", "--docs", str(DOC),
                   "--out", str(tmp_path / "out"), env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "memory: 1 files added" in out.stderr
    assert "✓ research (researcher, visit 1)" in out.stderr and "tokens" in out.stderr
    assert "✓ code (coder, visit 1)" in out.stderr
    # The researcher answered from the ingested document, shown to it as source S1.
    assert "[S1] (kivu_calendar.md, part 0)" in fake.requests[1]["messages"][-1]["content"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# Report: write kivu_days(year)") and "APPROVED: correct" in report
    assert "### Citations" in report and "kivu_calendar.md#0" in report
    # What the command prints is the report as written, brackets and line breaks included.
    assert out.stdout == report and "[kivu_calendar.md, part 0]" in out.stdout
    assert "## Tests\n\npassed" in report and "### `solution.py`" in report
    assert (tmp_path / "out" / "solution.py").read_text() == code
    assert "def test_days" in (tmp_path / "out" / "test_solution.py").read_text()
    # The pytest output the model saw came from a real test run.
    tool_result = fake.requests[5]["messages"][-1]["content"]
    assert '"passed": true' in tool_result and "1 passed" in tool_result
