"""agentos tools served to any MCP client, through the official ``mcp`` SDK's server.

``agentos mcp serve`` (or :func:`serve`) lists the chosen tools with their JSON schemas and runs
every call as a kernel tool syscall: validated, scheduled on the tool's pool, bounded by the
kernel's timeout and recorded in the run store under the agent ``mcp:<client name>`` (the name
the MCP client gave in its ``initialize`` request), inside one run named ``mcp serve`` that lasts
as long as the server. Invalid arguments, unknown tools and tool failures come back as MCP tool
results with ``isError`` set and the kernel's message, so the client's LLM can correct itself.

Transports: ``stdio`` (the client starts ``agentos mcp serve``) and streamable HTTP (``http``,
at ``http://HOST:PORT/mcp``).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from mcp import types
from mcp.server.lowlevel import Server

from agentos.errors import AgentosError

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.registry import ToolRegistry

__all__ = ["build_server", "serve"]

RUN_NAME = "mcp serve"


def build_server(kernel: Kernel, registry: ToolRegistry, run: Run, *,
                 name: str = "agentos") -> Server[Any, Any]:
    """An MCP server (the SDK's low-level ``Server``) whose tools are ``registry``'s.

    Args:
        kernel: runs each call as a syscall.
        registry: the tools served.
        run: the run the calls are recorded in.
        name: the server name clients see.
    """
    server: Server[Any, Any] = Server(name)

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [types.Tool(name=t.name, description=t.description, inputSchema=t.parameters)
                for t in sorted(registry, key=lambda t: t.name)]

    # The kernel validates (and records invalid calls), so the SDK does not validate first.
    @server.call_tool(validate_input=False)
    async def call_tool(tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        caller = _caller(server)
        try:
            value = await kernel.call_tool(run, caller, tool, arguments, registry=registry)
        except AgentosError as error:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(error))], isError=True
            )
        return _result(value)

    return server


def _caller(server: Server[Any, Any]) -> str:
    """``mcp:<client name>`` from the session's initialize request."""
    params = server.request_context.session.client_params
    client = params.clientInfo.name if params is not None else "unknown"
    return f"mcp:{client}"


def _result(value: Any) -> types.CallToolResult:
    if isinstance(value, dict):
        text = json.dumps(value, default=str)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structuredContent=value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


async def serve(kernel: Kernel, registry: ToolRegistry, *, transport: str = "stdio",
                host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve ``registry``'s tools until the client disconnects (stdio) or the process is stopped.

    Args:
        kernel: runs and records the calls.
        registry: the tools served.
        transport: ``stdio`` or ``http`` (streamable HTTP at ``http://host:port/mcp``).
        host, port: where the HTTP transport listens.

    Raises:
        UserError: an unknown transport.
    """
    from agentos.errors import UserError

    if transport not in ("stdio", "http"):
        raise UserError(f"unknown MCP transport {transport!r}; use stdio or http")
    run = kernel.start_run(RUN_NAME, f"serving {len(registry)} tools over {transport}")
    server = build_server(kernel, registry, run)
    status = "succeeded"
    try:
        if transport == "stdio":
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        else:
            await _serve_http(server, host, port)
    except BaseException:
        status = "cancelled"
        raise
    finally:
        kernel.end_run(run, status)


async def _serve_http(server: Server[Any, Any], host: str, port: int) -> None:
    import contextlib
    from collections.abc import AsyncIterator

    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette
    from starlette.routing import Route

    manager = StreamableHTTPSessionManager(app=server)

    class Endpoint:  # an ASGI app (a class instance), so Starlette's Route passes it the scope
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            print(f"agentos MCP server at http://{host}:{port}/mcp", file=sys.stderr, flush=True)
            yield

    app = Starlette(routes=[Route("/mcp", endpoint=Endpoint())], lifespan=lifespan)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    await uvicorn.Server(config).serve()
