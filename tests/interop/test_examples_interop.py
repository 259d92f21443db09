"""examples/langchain_tool.py, crewai_tool.py and mcp_server.py run against scripted LLMs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agentos import Kernel
from agentos.runtime.registry import ToolRegistry
from agentos.testing import ScriptedLLM, call

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_langchain_tool_example(kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    llm = ScriptedLLM([call("shout", text="hello plug-ins"), call("word_count", text="hello plug-ins"),
                       "HELLO PLUG-INS has 2 words."])
    result = _load("langchain_tool").main(llm=llm, kernel=kernel)
    assert result.ok
    outputs = [c.output for s in result.steps for c in s.tool_calls]
    assert outputs == ["HELLO PLUG-INS", "2"]
    assert "LangChain sees: word_count 3" in capsys.readouterr().out


def test_crewai_tool_example(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("to_fahrenheit", celsius=21.5), "70.7 °F"])
    result = _load("crewai_tool").main(llm=llm, kernel=kernel)
    assert result.ok
    assert result.steps[0].tool_calls[0].output == "70.7"


def test_mcp_server_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mcp_server_time")
    llm = ScriptedLLM([call("get_current_time", timezone="Asia/Tokyo"), "It is evening in Tokyo."])
    result = _load("mcp_server").main(llm=llm, env={"AGENTOS_DATA_DIR": str(tmp_path)})
    assert result.ok
    output = result.steps[0].tool_calls[0].output
    assert '"timezone": "Asia/Tokyo"' in output and "+09:00" in output
    assert "get_current_time" in capsys.readouterr().out


def _discover_from(package: Path, registry: ToolRegistry) -> int:
    """registry.discover() as if ``package`` were installed: its declared entry points only."""
    import importlib
    import tomllib
    from importlib import metadata
    from unittest import mock

    declared = tomllib.loads((package / "pyproject.toml").read_text())
    points = declared["project"]["entry-points"]["agentos.tools"]

    class EntryPoint:
        def __init__(self, name: str, value: str) -> None:
            self.name, self.value = name, value

        def load(self):  # type: ignore[no-untyped-def]
            module, attr = self.value.split(":")
            return getattr(importlib.import_module(module), attr)

    with mock.patch.object(metadata, "entry_points",
                           lambda group: [EntryPoint(n, v) for n, v in points.items()]):
        return registry.discover()


def test_plugin_package_example(tmp_path: Path) -> None:
    import subprocess

    from agentos import Agent, load_settings
    from agentos.runtime.registry import ToolRegistry

    package = EXAMPLES / "plugin_units"
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=package, capture_output=True, text=True, timeout=180)
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout + tests.stderr
    sys.path.insert(0, str(package / "src"))
    try:
        registry = ToolRegistry()
        assert _discover_from(package, registry) == 1
        assert registry.source("convert_length") == (
            "entry point agentos_units.tools:convert_length")
        kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}), registry=registry)
        llm = ScriptedLLM([call("convert_length", value=42.195, from_unit="km", to_unit="mi"),
                           "About 26.2 miles."])
        result = Agent("runner", llm=llm, tools=["convert_length"], kernel=kernel).run("miles?")
        kernel.close()
        assert result.ok and result.steps[0].tool_calls[0].output == "26.218757"
    finally:
        sys.path.remove(str(package / "src"))
