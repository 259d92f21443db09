"""Per-call overhead of an MCP tool over stdio against a direct call of the same function.

One trivial tool (``add(a, b)``) is called four ways, interleaved, ``--calls`` times each:

- ``direct``: the Python function;
- ``kernel``: the same function as an agentos tool through ``Kernel.call_tool`` (validation,
  scheduling, run-store record);
- ``sdk``: the same function served by a FastMCP server process (the official SDK), called
  with the SDK's own ``ClientSession`` over stdio (the floor for any MCP client);
- ``mcp``: a second such server process called through agentos' MCP client (``MCPTool``:
  argument validation, a hop to the connection's own event-loop thread, stdio JSON-RPC);
- ``kernel+mcp``: that MCP tool through ``Kernel.call_tool``, as an agent calls it.

Prints a table of median and p95 microseconds per call and the added cost against ``direct``,
and writes benchmarks/results/mcp_overhead.json.

    python benchmarks/mcp_overhead.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentos import Kernel, ToolRegistry, load_settings, tool
from agentos.config import MCPServerConfig
from agentos.interop.mcp_client import connect_servers

RESULTS = Path(__file__).parent / "results" / "mcp_overhead.json"
QUIET = {"FASTMCP_LOG_LEVEL": "WARNING"}  # no log line per call in either server

SERVER = """
from mcp.server.fastmcp import FastMCP

app = FastMCP("bench")


@app.tool()
def add(a: int, b: int) -> int:
    return a + b


app.run()
"""


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first.
        b: second.
    """
    return a + b


async def _measure(calls: int, tmp: Path) -> dict[str, list[float]]:
    script = tmp / "server.py"
    script.write_text(textwrap.dedent(SERVER))
    mcp_registry = ToolRegistry()
    connections = await asyncio.to_thread(
        connect_servers, [MCPServerConfig(name="bench", command=sys.executable,
                                          args=[str(script)], prefix="mcp_", env=QUIET)], mcp_registry)
    native = tool(add)
    registry = ToolRegistry([native, mcp_registry.get("mcp_add")])
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp / "data")}), registry=registry)
    run = kernel.start_run("bench")
    mcp_tool = registry.get("mcp_add")
    from contextlib import AsyncExitStack

    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    stack = AsyncExitStack()
    read, write = await stack.enter_async_context(stdio_client(
        StdioServerParameters(command=sys.executable, args=[str(script)], env=QUIET),
        errlog=open(os.devnull, "w")))  # noqa: SIM115  (closed with the process)
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()

    async def sdk() -> object:
        result = await session.call_tool("add", {"a": 2, "b": 3})
        return result.structuredContent

    ways = {
        "direct": lambda: _sync(add(a=2, b=3)),
        "kernel": lambda: kernel.call_tool(run, "bench", "add", {"a": 2, "b": 3}),
        "sdk": sdk,
        "mcp": lambda: mcp_tool.acall({"a": 2, "b": 3}),
        "kernel+mcp": lambda: kernel.call_tool(run, "bench", "mcp_add", {"a": 2, "b": 3}),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for name, make in ways.items():  # warm-up, and a check that every way gives the answer
        value = await make()
        assert value in (5, {"result": 5}), (name, value)
    for _ in range(calls):
        for name, make in ways.items():
            start = time.perf_counter()
            await make()
            times[name].append((time.perf_counter() - start) * 1e6)
    await stack.aclose()
    kernel.end_run(run, "succeeded")
    await kernel.aclose()
    for connection in connections:
        await asyncio.to_thread(connection.close)
    return times


async def _sync(value: int) -> int:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per way")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentos-bench-mcp-") as tmp:
        times = asyncio.run(_measure(args.calls, Path(tmp)))
    base = statistics.median(times["direct"])
    rows = []
    for name, samples in times.items():
        samples.sort()
        median = statistics.median(samples)
        rows.append({"way": name, "median_us": round(median, 1),
                     "p95_us": round(samples[int(0.95 * (len(samples) - 1))], 1),
                     "added_us": round(median - base, 1)})
    table = Table("way", "median µs", "p95 µs", "added vs direct µs")
    for r in rows:
        table.add_row(r["way"], f"{r['median_us']:.1f}", f"{r['p95_us']:.1f}",
                      f"{r['added_us']:.1f}")
    Console().print(table)
    result = {"benchmark": "mcp_overhead", "calls": args.calls, "rows": rows,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_1min": os.getloadavg()[0]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
