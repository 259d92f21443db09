"""The command line, run as a user would: a real process, a real HTTP model endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def _agentos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentos", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **env}, timeout=120)


def test_run_then_inspect_the_run(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.queue(
        Reply(tool_calls=[{"id": "c1", "type": "function",
                           "function": {"name": "calculator", "arguments": '{"expression": "17*23"}'}}]),
        "17 times 23 is 391.",
    )
    env = {"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_MODEL": "openai/fake-model",
           "OPENAI_API_BASE": fake.base_url, "OPENAI_API_KEY": "sk-test"}
    out = _agentos("run", "What is 17*23?", "--tool", "calculator", "--json", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "succeeded" and result["answer"] == "17 times 23 is 391."
    assert "model: openai/fake-model" in out.stderr
    # The tool result the model saw came from the real calculator tool.
    assert fake.requests[1]["messages"][-1]["content"] == "391"

    listed = _agentos("runs", "list", env=env)
    assert result["run_id"] in listed.stdout and "succeeded" in listed.stdout
    shown = _agentos("runs", "show", result["run_id"][:8], env=env)
    assert shown.returncode == 0
    assert shown.stdout.count("llm") >= 2 and "calculator" in shown.stdout and "11/7" in shown.stdout


def test_invalid_setting_fails_at_start_with_the_fix(tmp_path: Path) -> None:
    out = _agentos("config", "show", env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_MAX_STEPS": "-3"})
    assert out.returncode == 2
    assert "AGENTOS_MAX_STEPS" in out.stderr and "Fix the value" in out.stderr
    assert "Traceback" not in out.stderr


def test_runs_show_unknown_id(tmp_path: Path) -> None:
    out = _agentos("runs", "show", "nope", env={"AGENTOS_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2 and "agentos runs list" in out.stderr


def test_tools_list_shows_builtins(tmp_path: Path) -> None:
    out = _agentos("tools", "list", env={"AGENTOS_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0 and "calculator" in out.stdout and "run_python" in out.stdout
