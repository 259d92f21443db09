"""`agentos mcp serve`: the MCP SDK's own client lists and calls our tools over stdio and
streamable HTTP; each call is a kernel syscall recorded under the client's name."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from agentos.runtime.store import RunStore


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AGENTOS_DATA_DIR": str(tmp_path / "data"),
            "AGENTOS_CONFIG": str(_config(tmp_path))}


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "agentos.toml"
    path.write_text("")  # no [[mcp_servers]]: nothing is re-served
    return path


async def _exercise(session: ClientSession) -> dict[str, Any]:
    await session.initialize()
    listed = await session.list_tools()
    ok = await session.call_tool("calculator", {"expression": "6*7"})
    bad = await session.call_tool("calculator", {"expr": "1"})
    unknown = await session.call_tool("nope", {})
    return {"tools": {t.name: t for t in listed.tools}, "ok": ok, "bad": bad, "unknown": unknown}


def _check(result: dict[str, Any], store: Path, client: str) -> None:
    calc: types.Tool = result["tools"]["calculator"]
    assert list(result["tools"]) == ["calculator"]  # --tool chose it alone
    assert calc.inputSchema["properties"]["expression"]["type"] == "string"
    assert calc.description
    ok: types.CallToolResult = result["ok"]
    assert not ok.isError and "42" in ok.content[0].text
    bad: types.CallToolResult = result["bad"]
    assert bad.isError and "invalid arguments for tool calculator" in bad.content[0].text
    unknown: types.CallToolResult = result["unknown"]
    assert unknown.isError and "unknown tool 'nope'" in unknown.content[0].text
    runs = RunStore(store)
    (run,) = [r for r in runs.list_runs(10) if r.name == "mcp serve"]
    records = [(s.agent, s.name, s.outcome) for s in runs.syscalls(run.id)]
    assert records == [(f"mcp:{client}", "calculator", "ok"),
                       (f"mcp:{client}", "calculator", "invalid"),
                       (f"mcp:{client}", "nope", "invalid")]


def test_sdk_client_lists_and_calls_our_tools_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "agentos", "mcp", "serve", "--tool", "calculator"],
        env=_env(tmp_path), cwd=str(tmp_path),
    )

    async def main() -> dict[str, Any]:
        async with stdio_client(params) as (read, write):
            info = types.Implementation(name="stdio-test-client", version="1")
            async with ClientSession(read, write, client_info=info) as session:
                return await _exercise(session)

    result = asyncio.run(main())
    deadline = time.monotonic() + 20  # the server ends its run once stdin closes
    store = tmp_path / "data" / "runs.sqlite"
    while time.monotonic() < deadline:
        runs = [r for r in RunStore(store).list_runs(5) if r.name == "mcp serve"]
        if runs and runs[0].status != "running":
            break
        time.sleep(0.2)
    _check(result, store, "stdio-test-client")


def test_sdk_client_lists_and_calls_our_tools_over_streamable_http(
    tmp_path: Path, free_port: int
) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "agentos", "mcp", "serve", "--tool", "calculator",
         "--transport", "http", "--port", str(free_port)],
        env=_env(tmp_path), cwd=str(tmp_path), stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{free_port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {server.stderr.read()}")
                time.sleep(0.2)

        async def main() -> dict[str, Any]:
            async with streamable_http_client(url) as (read, write, _):
                info = types.Implementation(name="http-test-client", version="1")
                async with ClientSession(read, write, client_info=info) as session:
                    return await _exercise(session)

        result = asyncio.run(main())
    finally:
        server.terminate()
        server.wait(timeout=20)
    _check(result, tmp_path / "data" / "runs.sqlite", "http-test-client")


def test_unknown_tool_to_serve_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agentos", "mcp", "serve", "--tool", "no_such_tool"],
        env=_env(tmp_path), cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "unknown tool 'no_such_tool'" in out.stderr


def test_an_mcp_server_url_in_settings_imports_its_tools_over_http(
    tmp_path: Path, free_port: int
) -> None:
    """agentos serving agentos: the client side of [[mcp_servers]] with `url`."""
    from agentos.config import MCPServerConfig
    from agentos.interop.mcp_client import connect_servers
    from agentos.runtime.registry import ToolRegistry

    server = subprocess.Popen(
        [sys.executable, "-m", "agentos", "mcp", "serve", "--tool", "calculator",
         "--transport", "http", "--port", str(free_port)],
        env=_env(tmp_path), cwd=str(tmp_path), stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{free_port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {server.stderr.read()}")
                time.sleep(0.2)
        registry = ToolRegistry()
        (connection,) = connect_servers(
            [MCPServerConfig(name="remote", url=url, prefix="remote_")], registry)
        try:
            assert registry.names() == ["remote_calculator"]
            assert registry.source("remote_calculator") == "MCP server 'remote'"
            assert "42" in str(registry.get("remote_calculator")(expression="6*7"))
        finally:
            connection.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
