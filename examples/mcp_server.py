"""An agentos agent using the tools of a real MCP server process (the reference time server).

    pip install mcp-server-time
    python examples/mcp_server.py              # the default model (local/qwen2.5-coder-1.5b)

The same server in ``agentos.toml`` makes its tools available to every agent and CLI command::

    [[mcp_servers]]
    name = "time"
    command = "python"
    args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
"""

from __future__ import annotations

import sys
from typing import Any

from agentos import Agent, AgentResult, Kernel, load_settings


def main(llm: Any = None, env: dict[str, str] | None = None) -> AgentResult:
    """Start the time server with a kernel, run an agent on its tools, stop it; print the calls."""
    server = {"name": "time", "command": sys.executable,
              "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
    kernel = Kernel(load_settings(env=env, mcp_servers=[server]))
    try:
        print("tools from MCP server 'time':",
              [n for n in kernel.registry.names() if kernel.registry.source(n) == "MCP server 'time'"])
        agent = Agent("clock", llm=llm, kernel=kernel, tools=["get_current_time"])
        result = agent.run("What time is it in Tokyo right now?")
        for step in result.steps:
            for c in step.tool_calls:
                print(f"  {c.name}({c.arguments}) -> {c.output}")
        print(result.answer, result.status)
        if result.error:
            print("error:", result.error)
        return result
    finally:
        kernel.close()


if __name__ == "__main__":
    main()
