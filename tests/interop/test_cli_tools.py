"""`agentos tools list/show/new`: sources and schemas, a scaffolded plug-in whose test passes."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agentos._cli_tools import scaffold
from agentos.errors import UserError
from agentos.runtime.registry import ToolRegistry


def _agentos(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTOS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "agentos", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=180)


def test_tools_list_shows_sources_and_arguments_including_mcp_servers(tmp_path: Path) -> None:
    (tmp_path / "agentos.toml").write_text(
        f'[[mcp_servers]]\nname = "time"\ncommand = "{sys.executable}"\n'
        'args = ["-m", "mcp_server_time"]\n'
        '[[mcp_servers]]\nname = "broken"\ncommand = "/no/such/server"\n'
    )
    out = _agentos(tmp_path, "tools", "list")
    assert out.returncode == 0, out.stderr
    lines = {line.split("│")[1].strip(): line for line in out.stdout.splitlines()
             if line.count("│") >= 4}
    assert "built-in" in lines["calculator"] and "expression: string" in lines["calculator"]
    assert "MCP server 'time'" in lines["get_current_time"]
    assert "timezone: string" in lines["get_current_time"]
    assert "MCP server 'broken'" in out.stderr and "could not be started" in out.stderr


def test_tools_show_prints_the_schema_and_unknown_names_fail_clearly(tmp_path: Path) -> None:
    out = _agentos(tmp_path, "tools", "show", "calculator")
    assert out.returncode == 0, out.stderr
    assert "built-in" in out.stdout and '"expression"' in out.stdout
    missing = _agentos(tmp_path, "tools", "show", "nope")
    assert missing.returncode == 2 and "unknown tool 'nope'" in missing.stderr


def test_tools_new_scaffolds_a_package_whose_test_passes(tmp_path: Path) -> None:
    out = _agentos(tmp_path, "tools", "new", "weather-tools")
    assert out.returncode == 0, out.stderr
    package = tmp_path / "weather-tools"
    project = tomllib.loads((package / "pyproject.toml").read_text())
    (entry,) = project["project"]["entry-points"]["agentos.tools"].items()
    assert entry == ("weather_tools_echo", "weather_tools.tools:weather_tools_echo")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=package, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    # The entry point resolves to a tool the registry accepts (as it would once installed).
    sys.path.insert(0, str(package / "src"))
    try:
        registry = ToolRegistry()

        class EntryPoint:
            name, value = entry

            def load(self):  # type: ignore[no-untyped-def]
                import importlib

                module, attr = self.value.split(":")
                return getattr(importlib.import_module(module), attr)

        from importlib import metadata
        from unittest import mock

        with mock.patch.object(metadata, "entry_points", lambda group: [EntryPoint()]):
            assert registry.discover() == 1
        assert registry.source("weather_tools_echo") == f"entry point {entry[1]}"
    finally:
        sys.path.remove(str(package / "src"))


def test_tools_new_refuses_bad_names_and_non_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="invalid"):
        scaffold("9 lives", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    with pytest.raises(UserError, match="not empty"):
        scaffold("ok", tmp_path / "full")


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


def _run_env(tmp_path: Path, fake) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"AGENTOS_MODEL": "openai/fake-model", "OPENAI_API_BASE": fake.base_url,
            "OPENAI_API_KEY": "sk-test", "AGENTOS_CONFIG": str(tmp_path / "agentos.toml")}


def _tool_call(name: str, arguments: str):  # type: ignore[no-untyped-def]
    from tests.fake_openai import Reply

    return Reply(tool_calls=[{"id": "c1", "type": "function",
                              "function": {"name": name, "arguments": arguments}}])


def test_agentos_run_uses_an_mcp_server_from_agentos_toml(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "agentos.toml").write_text(
        f'[[mcp_servers]]\nname = "time"\ncommand = "{sys.executable}"\n'
        'args = ["-m", "mcp_server_time"]\n')
    fake.queue(_tool_call("get_current_time", '{"timezone": "Asia/Tokyo"}'), "It is late in Tokyo.")
    env = {**os.environ, "AGENTOS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
           **_run_env(tmp_path, fake)}
    out = subprocess.run([sys.executable, "-m", "agentos", "run", "Time in Tokyo?", "--tool",
                          "get_current_time"], capture_output=True, text=True, env=env,
                         timeout=180, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert "✓ get_current_time" in out.stderr and "+09:00" in out.stderr
    assert "It is late in Tokyo." in out.stdout


def test_agentos_run_asks_approval_for_tools_that_need_it(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "agentos.toml").write_text("[tool_permissions.calculator]\napproval = true\n")
    env = {**os.environ, "AGENTOS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
           **_run_env(tmp_path, fake)}

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        fake.queue(_tool_call("calculator", '{"expression": "17*23"}'), "done")
        return subprocess.run([sys.executable, "-m", "agentos", "run", "17*23?", "--tool",
                               "calculator", *flags], capture_output=True, text=True, env=env,
                              timeout=180, stdin=subprocess.DEVNULL)

    refused = run()  # no terminal, no --approve: refused, and the agent is told why
    assert refused.returncode == 0, refused.stderr
    assert "✗ calculator" in refused.stderr and "no approver is set" in refused.stderr
    approved = run("--approve")
    assert "approved by --approve" in approved.stderr
    assert "✓ calculator" in approved.stderr and "391" in approved.stderr
