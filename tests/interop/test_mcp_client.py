"""MCP servers' tools as agentos tools: the reference servers (mcp-server-time, mcp-server-git)
as real processes, and small real servers written for the failure cases."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos import Agent, Kernel, load_settings
from agentos.config import MCPServerConfig
from agentos.errors import ToolFailed, ToolRetry
from agentos.interop.mcp_client import MCPConnection, connect_servers
from agentos.runtime.registry import ToolRegistry
from agentos.testing import ScriptedLLM, call

pytest.importorskip("mcp_server_time")
pytest.importorskip("mcp_server_git")

PY = sys.executable


def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return [str(path)]


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "notes.txt").write_text("hello\n")
    subprocess.run(["git", "-C", str(repo), "add", "notes.txt"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "first note"], check=True,
                   env=env)
    (repo / "draft.txt").write_text("wip\n")
    return repo


@pytest.fixture
def mcp_kernel(tmp_path: Path, git_repo: Path) -> Iterator[Kernel]:
    servers = [
        {"name": "time", "command": PY, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]},
        {"name": "git", "command": PY, "args": ["-m", "mcp_server_git", "--repository", str(git_repo)]},
    ]
    settings = load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / "data")}, mcp_servers=servers)
    k = Kernel(settings, registry=ToolRegistry())
    yield k
    k.close()


def test_an_agent_uses_the_tools_of_the_reference_mcp_servers(mcp_kernel: Kernel,
                                                              git_repo: Path) -> None:
    registry = mcp_kernel.registry
    assert {"get_current_time", "convert_time", "git_status", "git_log"} <= set(registry.names())
    assert registry.source("git_status") == "MCP server 'git'"
    assert registry.get("get_current_time").parameters["required"] == ["timezone"]
    llm = ScriptedLLM([
        call("get_current_time", timezone="Asia/Tokyo"),
        call("git_status", repo_path=str(git_repo)),
        call("git_log", repo_path=str(git_repo)),
        call("get_current_time", timezone="Mars/Olympus"),
        "done",
    ])
    agent = Agent("ops", llm=llm, kernel=mcp_kernel,
                  tools=["get_current_time", "git_status", "git_log"])
    result = agent.run("what time is it in Tokyo and what is in the repo?")
    assert result.ok
    tokyo, status, log, mars = [c for s in result.steps for c in s.tool_calls]
    assert tokyo.ok and '"timezone": "Asia/Tokyo"' in tokyo.output and "+09:00" in tokyo.output
    assert status.ok and "draft.txt" in status.output
    assert log.ok and "first note" in log.output
    assert not mars.ok
    assert "MCP server 'time' tool get_current_time returned an error" in mars.output
    records = [r for r in mcp_kernel.store.syscalls(result.run_id) if r.kind == "tool"]
    assert [(r.name, r.outcome) for r in records] == [
        ("get_current_time", "ok"), ("git_status", "ok"), ("git_log", "ok"),
        ("get_current_time", "error")]


def test_mcp_servers_stop_with_the_kernel(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    cmd = _script(tmp_path, "pidserver", f"""
        import os
        from mcp.server.fastmcp import FastMCP
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        app = FastMCP("p")

        @app.tool()
        def ping() -> str:
            return "pong"

        app.run()
    """)
    settings = load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / "d")},
                             mcp_servers=[{"name": "p", "command": PY, "args": cmd}])
    k = Kernel(settings, registry=ToolRegistry())
    assert k.registry.get("ping")() == {"result": "pong"}  # FastMCP wraps scalars
    pid = int(pidfile.read_text())
    assert Path(f"/proc/{pid}").exists()
    k.close()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_server_that_dies_is_started_again(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "mortal", """
        import os
        from mcp.server.fastmcp import FastMCP
        app = FastMCP("mortal")

        @app.tool()
        def pid() -> int:
            return os.getpid()

        @app.tool()
        def die() -> str:
            os._exit(3)

        app.run()
    """)
    registry = ToolRegistry()
    (conn,) = connect_servers([MCPServerConfig(name="mortal", command=PY, args=cmd)], registry)
    try:
        first = registry.get("pid")()["result"]
        with pytest.raises(ToolFailed, match="MCP server 'mortal' exited during a call of die"):
            registry.get("die")()
        second = registry.get("pid")()["result"]
        assert second != first and conn.starts == 2
        # Killed between calls: the next call restarts it and goes through.
        import os
        import signal

        os.kill(int(second), signal.SIGKILL)
        import time

        time.sleep(0.5)
        assert registry.get("pid")()["result"] not in (first, second)
        assert conn.starts == 3
    finally:
        conn.close()


def test_bad_servers_are_reported_by_name_and_the_good_ones_still_load(tmp_path: Path) -> None:
    hang = _script(tmp_path, "hang", "import time\ntime.sleep(600)\n")
    garbage = _script(tmp_path, "garbage", """
        import sys
        for line in sys.stdin:
            print("this is not json", flush=True)
    """)
    odd = _script(tmp_path, "odd", """
        import anyio
        from mcp import types
        from mcp.server.lowlevel import Server
        from mcp.server.stdio import stdio_server

        server = Server("odd")

        @server.list_tools()
        async def tools():
            return [
                types.Tool(name="scalar", description="takes a bare string",
                           inputSchema={"type": "string"}),
                types.Tool(name="broken", description="invalid schema",
                           inputSchema={"type": "object", "properties": {"a": {"type": 5}}}),
                types.Tool(name="get_current_time", description="clashes with the time server",
                           inputSchema={"type": "object", "properties": {}}),
                types.Tool(name="fine", description="ok", inputSchema={"type": "object"}),
            ]

        @server.call_tool()
        async def call(name, arguments):
            return [types.TextContent(type="text", text="fine!")]

        async def main():
            async with stdio_server() as (r, w):
                await server.run(r, w, server.create_initialization_options())

        anyio.run(main)
    """)
    registry = ToolRegistry()
    configs = [
        MCPServerConfig(name="time", command=PY, args=["-m", "mcp_server_time"]),
        MCPServerConfig(name="missing", command=str(tmp_path / "no-such-server")),
        MCPServerConfig(name="hang", command=PY, args=hang, startup_timeout_s=2),
        MCPServerConfig(name="garbage", command=PY, args=garbage, startup_timeout_s=20),
        MCPServerConfig(name="odd", command=PY, args=odd),
    ]
    connections = connect_servers(configs, registry)
    try:
        errors = {e.entry_point: e.error for e in registry.plugin_errors}
        assert "could not be started" in errors["MCP server 'missing'"]
        assert "did not answer within 2 s" in errors["MCP server 'hang'"]
        assert "not MCP JSON-RPC" in errors["MCP server 'garbage'"]
        assert "type 'string'" in errors["MCP server 'odd' tool 'scalar'"]
        assert "not valid JSON Schema" in errors["MCP server 'odd' tool 'broken'"]
        clash = errors["MCP server 'odd' tool 'get_current_time'"]
        assert "MCP server 'time'" in clash and "MCP server 'odd'" in clash
        assert registry.source("get_current_time") == "MCP server 'time'"
        assert registry.get("fine")() == "fine!"
    finally:
        for c in connections:
            c.close()


def test_a_call_that_hangs_times_out_naming_the_server(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "slow", """
        import time
        from mcp.server.fastmcp import FastMCP
        app = FastMCP("slow")

        @app.tool()
        def nap() -> str:
            time.sleep(60)
            return "late"

        app.run()
    """)
    conn = MCPConnection(MCPServerConfig(name="slow", command=PY, args=cmd, call_timeout_s=1))
    registry = ToolRegistry()
    try:
        from agentos.interop.mcp_client import MCPTool

        (spec,) = conn.start()
        registry.register(MCPTool(conn, spec))
        with pytest.raises(ToolFailed, match="MCP server 'slow' did not answer nap within 1 s"):
            registry.get("nap")()
    finally:
        conn.close()


def test_invalid_arguments_are_corrected_before_reaching_the_server(mcp_kernel: Kernel) -> None:
    from agentos.errors import InvalidToolCall

    t = mcp_kernel.registry.get("get_current_time")
    with pytest.raises(InvalidToolCall, match="'timezone' is a required property"):
        t()
    assert isinstance(InvalidToolCall("x"), ToolRetry)
