"""``agentos tools``: list and show the tools agents can call, scaffold a plug-in package."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentos.errors import UserError

if TYPE_CHECKING:
    from agentos.runtime.registry import ToolRegistry

__all__ = ["scaffold", "tools_app"]

tools_app = typer.Typer(help="Tools agents can call.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _source(source: str) -> str:
    """``built-in`` for agentos' own entry points; other sources as the registry names them."""
    if source.startswith("entry point agentos."):
        return "built-in"
    return source


def _signature(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
        parts.append(f"{name}: {kind}" + ("" if name in required else "?"))
    return ", ".join(parts)


@contextmanager
def _registry() -> Iterator[ToolRegistry]:
    """Entry points and the tools of the settings' [[mcp_servers]] (stopped afterwards)."""
    from agentos.config import load_settings
    from agentos.runtime.registry import ToolRegistry

    registry = ToolRegistry(discover=True)
    connections = []
    settings = load_settings()
    if settings.mcp_servers:
        from agentos.interop.mcp_client import connect_servers

        connections = connect_servers(settings.mcp_servers, registry)
    try:
        yield registry
    finally:
        for connection in connections:
            connection.close()


@tools_app.command("list")
def tools_list() -> None:
    """Show every registered tool: its source (built-in, entry point, MCP server) and arguments."""
    with _registry() as registry:
        table = Table("name", "source", "arguments", "description")
        for t in sorted(registry, key=lambda t: t.name):
            table.add_row(t.name, _source(registry.source(t.name)), _signature(t.parameters),
                          t.description.split("\n")[0][:80])
        console.print(table)
        for problem in registry.plugin_errors:
            err.print(f"[yellow]{problem.entry_point} failed to load: {problem.error}[/]")


@tools_app.command("show")
def tools_show(name: Annotated[str, typer.Argument(help="The tool's name.")]) -> None:
    """Show one tool: its source, description and full JSON schema (what the LLM sees)."""
    with _registry() as registry:
        t = registry.get(name)
        console.print(f"[bold]{t.name}[/]  ({_source(registry.source(name))})")
        console.print(t.description)
        console.print_json(json.dumps(t.parameters))


@tools_app.command("new")
def tools_new(
    name: Annotated[str, typer.Argument(help="The package name, e.g. weather-tools.")],
    directory: Annotated[Optional[Path], typer.Option(
        "--dir", help="Where to create it; default: ./NAME.")] = None,
) -> None:
    """Scaffold an installable plug-in package: a tool, its entry point and a passing test."""
    target = scaffold(name, directory or Path(name))
    console.print(f"created {target}; next: pip install -e {target} && pytest {target}")


def scaffold(name: str, target: Path) -> Path:
    """Write a plug-in package named ``name`` into ``target``.

    The package has a ``pyproject.toml`` that declares an ``agentos.tools`` entry point, a
    ``src/<module>/tools.py`` with one ``@tool`` function and a ``tests/test_tools.py`` that
    calls it and runs it through an agent with a scripted LLM. Once installed
    (``pip install -e``), ``agentos tools list`` shows the tool with its entry point.

    Raises:
        UserError: ``name`` is not a valid package name, or ``target`` exists and is not empty.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]{0,50}", name):
        raise UserError(f"package name {name!r} is invalid: use letters, digits, '-' or '_', "
                        "starting with a letter (e.g. weather-tools)")
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target} exists and is not empty; choose another --dir")
    module = name.replace("-", "_").lower()
    tool_name = f"{module}_echo"
    files = {
        "pyproject.toml": f"""
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1.0"
            description = "agentos tools: {name}"
            requires-python = ">=3.11"
            dependencies = ["agentos-kit"]

            [project.entry-points."agentos.tools"]
            {tool_name} = "{module}.tools:{tool_name}"

            [tool.setuptools.packages.find]
            where = ["src"]

            [tool.pytest.ini_options]
            pythonpath = ["src"]
        """,
        f"src/{module}/__init__.py": f'''
            """agentos tools: {name}."""
        ''',
        f"src/{module}/tools.py": f'''
            """The tools of {name}; each is declared under [project.entry-points."agentos.tools"]."""

            from __future__ import annotations

            from agentos import tool


            @tool
            def {tool_name}(text: str, times: int = 1) -> str:
                """Repeat a text.

                Args:
                    text: what to repeat.
                    times: how many times.
                """
                return " ".join([text] * times)
        ''',
        "tests/test_tools.py": f'''
            from agentos import Agent, Kernel, ToolRegistry, load_settings
            from agentos.testing import ScriptedLLM, call

            from {module}.tools import {tool_name}


            def test_the_tool_runs_and_validates() -> None:
                assert {tool_name}(text="hi", times=2) == "hi hi"
                assert {tool_name}.parameters["required"] == ["text"]


            def test_an_agent_calls_it(tmp_path) -> None:
                kernel = Kernel(load_settings(env={{"AGENTOS_DATA_DIR": str(tmp_path)}}),
                                registry=ToolRegistry())
                llm = ScriptedLLM([call("{tool_name}", text="hi", times=3), "done"])
                result = Agent("a", llm=llm, tools=[{tool_name}], kernel=kernel).run("repeat")
                kernel.close()
                assert result.ok
                assert result.steps[0].tool_calls[0].output == "hi hi hi"
        ''',
    }
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return target
