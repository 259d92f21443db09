"""``agentos mcp``: serve agentos tools to MCP clients."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from agentos.errors import UserError

__all__ = ["mcp_app"]

mcp_app = typer.Typer(help="Model Context Protocol: serve agentos tools to MCP clients.",
                      no_args_is_help=True)


@mcp_app.command("serve")
def serve_command(
    tool: Annotated[Optional[list[str]], typer.Option(
        "--tool", "-t", help="A tool to serve (repeatable); default: every registered tool.")] = None,
    transport: Annotated[str, typer.Option(help="stdio, or http (streamable HTTP).")] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP transport: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP transport: port.")] = 8765,
) -> None:
    """Serve tools over MCP; each call is a kernel syscall recorded under the client's name.

    Nothing but MCP messages is written to stdout (the stdio transport's channel).
    """
    import asyncio

    from agentos.interop.mcp_server import serve
    from agentos.runtime.kernel import Kernel
    from agentos.runtime.registry import ToolRegistry

    if transport not in ("stdio", "http"):
        raise UserError(f"unknown --transport {transport!r}; use stdio or http")
    kernel = Kernel()
    available = kernel.registry
    if tool:
        registry = ToolRegistry()
        for name in tool:
            registry.register(available.get(name), source=available.source(name))
    else:
        registry = available

    async def main() -> None:
        try:
            await serve(kernel, registry, transport=transport, host=host, port=port)
        finally:
            await kernel.aclose()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
