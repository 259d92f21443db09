"""The examples run as users run them, against scripted LLMs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agentos import Kernel, load_settings
from agentos.testing import FunctionLLM, ScriptedLLM, call

EXAMPLES = Path(__file__).parent.parent / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def kernel(tmp_path: Path) -> Kernel:
    return Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))


def test_quickstart(kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    llm = ScriptedLLM([
        call("word_count", text="the quick brown fox jumps over the lazy dog"),
        call("calculator", expression="9 * 7"),
        "63",
    ])
    result = _load("quickstart").main(llm=llm, kernel=kernel)
    assert result.ok and result.answer == "63"
    assert [c.output for s in result.steps for c in s.tool_calls] == ["9", "63"]
    assert "succeeded in 3 steps" in capsys.readouterr().out


def test_governed_agents(kernel: Kernel) -> None:
    def brain(messages, tools):  # type: ignore[no-untyped-def]
        if messages[-1]["role"] == "tool":
            return "7006652"
        if tools:
            return call("calculator", expression="1234 * 5678")
        return "An OS shares a machine fairly."

    statuses = _load("governed_agents").main(llm=FunctionLLM(brain, name="fn"), kernel=kernel)
    assert statuses == {"analyst": "succeeded", "writer": "succeeded", "intern": "budget_exceeded"}
