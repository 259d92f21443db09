"""The tool API: schemas from type hints and docstrings, validation, plug-in discovery."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import pytest

from agentos import ToolRegistry, tool
from agentos.errors import InvalidToolCall, UnknownTool, UserError


@tool
def search(query: str, limit: int = 5, mode: Literal["fast", "deep"] = "fast") -> list[str]:
    """Search the notes.

    Args:
        query: what to look for.
        limit: how many hits,
            at most.
    """
    return [query] * limit


def test_schema_from_hints_and_docstring() -> None:
    spec = search.spec()["function"]
    assert spec["name"] == "search" and spec["description"] == "Search the notes."
    params = spec["parameters"]
    assert params["required"] == ["query"]
    assert params["properties"]["query"] == {"type": "string", "description": "what to look for."}
    assert params["properties"]["limit"]["description"] == "how many hits, at most."
    assert params["properties"]["mode"]["enum"] == ["fast", "deep"]
    assert params["additionalProperties"] is False


def _google(path: str, depth: int = 1) -> str:
    """List a folder.

    Hidden files are skipped; links
    are not followed.

    Args:
        path: the folder, relative to
            the workspace.
        depth: how deep to go.

    Returns:
        The names, one a line.
    """
    return path


def _numpy(path: str, depth: int = 1) -> str:
    """List a folder.

    Hidden files are skipped; links
    are not followed.

    Parameters
    ----------
    path : str
        the folder, relative to
        the workspace.
    depth : int
        how deep to go.

    Returns
    -------
    str
        The names, one a line.
    """
    return path


def _sphinx(path: str, depth: int = 1) -> str:
    """List a folder.

    Hidden files are skipped; links
    are not followed.

    :param path: the folder, relative to
        the workspace.
    :param depth: how deep to go.
    :returns: The names, one a line.
    """
    return path


@pytest.mark.parametrize("fn", [_google, _numpy, _sphinx], ids=["google", "numpy", "sphinx"])
def test_docstrings_in_each_style_give_the_same_spec(fn) -> None:  # type: ignore[no-untyped-def]
    spec = tool(name="ls")(fn).spec()["function"]
    # Every paragraph before the first section is the description; sections are not.
    assert spec["description"] == "List a folder.\n\nHidden files are skipped; links are not followed."
    props = spec["parameters"]["properties"]
    assert props["path"]["description"] == "the folder, relative to the workspace."
    assert props["depth"]["description"] == "how deep to go."


def test_a_docstring_without_sections_is_the_description() -> None:
    def ping(host: str) -> str:
        """Ping a host
        once."""
        return host

    spec = tool(ping).spec()["function"]
    assert spec["description"] == "Ping a host once."
    assert "description" not in spec["parameters"]["properties"]["host"]


def test_validation_coerces_and_reports_every_problem() -> None:
    assert search.validate({"query": "x", "limit": "3"}) == {"query": "x", "limit": 3, "mode": "fast"}
    with pytest.raises(InvalidToolCall) as info:
        search.validate({"limit": "many", "extra": 1})
    message = str(info.value)
    assert "query: Field required" in message and "limit:" in message and "extra" in message
    with pytest.raises(InvalidToolCall, match="must be a JSON object"):
        search.validate(["x"])  # type: ignore[arg-type]


def test_sync_and_async_tools_run_the_same() -> None:
    @tool(name="double")
    async def double_async(x: float) -> float:
        """Twice x."""
        return 2 * x

    assert asyncio.run(double_async.acall({"x": "1.5"})) == 3.0
    assert double_async(x=2) == 4.0
    assert search(query="a", limit=2) == ["a", "a"]


def test_bad_tool_definitions_are_user_errors() -> None:
    with pytest.raises(UserError, match="needs a type hint"):
        @tool
        def untyped(x):  # type: ignore[no-untyped-def]
            return x

    with pytest.raises(UserError, match="tool name"):
        tool(name="has space")(_echo)


def test_registry_refuses_duplicates_and_lists_names_on_unknown() -> None:
    registry = ToolRegistry([search])
    with pytest.raises(UserError, match="already registered"):
        registry.register(tool(name="search")(_echo))
    with pytest.raises(UnknownTool, match="registered tools: search"):
        registry.get("nope")


def _echo(q: str) -> str:
    """Echo."""
    return q


def test_builtin_tools_are_discovered_through_entry_points() -> None:
    registry = ToolRegistry(discover=True)
    assert {"calculator", "run_python"} <= set(registry.names())
    assert registry.get("calculator")(expression="2**10 + sqrt(16)") == 1028.0


def test_third_party_plugin_is_discovered_and_a_broken_one_is_reported(tmp_path: Path) -> None:
    # A real installed distribution (a .dist-info with entry_points.txt) on sys.path.
    (tmp_path / "weather_plugin.py").write_text(textwrap.dedent('''
        from agentos import tool

        @tool
        def weather(city: str) -> str:
            """Weather in a city."""
            return "sunny in " + city
    '''))
    dist = tmp_path / "weather_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: weather-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[agentos.tools]\nweather = weather_plugin:weather\nbroken = missing_module:thing\n"
    )
    code = textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from agentos import ToolRegistry
        r = ToolRegistry(discover=True)
        print(r.get("weather")(city="Oslo"))
        print([e.entry_point for e in r.plugin_errors])
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "sunny in Oslo"
    assert "broken = missing_module:thing" in lines[1]
