"""MCP servers' tools as agentos tools, through the official ``mcp`` SDK's client.

Each ``[[mcp_servers]]`` table in ``agentos.toml`` (see :class:`agentos.config.MCPServerConfig`)
is a process started with ``command``/``args`` and spoken to over stdio, or a ``url`` spoken to
over streamable HTTP::

    [[mcp_servers]]
    name = "time"
    command = "python"
    args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]

The kernel connects them when its tool registry is first used and stops them in
:meth:`Kernel.aclose <agentos.runtime.kernel.Kernel.aclose>`. A connection lives on its own event
loop in a daemon thread, so it outlives the ``asyncio.run`` of each ``Agent.run``. When a server
dies, the next call starts it again (a call that was in flight fails, naming the server).

A server that does not start, does not answer in time or writes something other than MCP
JSON-RPC raises :class:`~agentos.errors.ToolSourceUnavailable` naming it; the kernel records that
in ``registry.plugin_errors`` and goes on without its tools.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from agentos.errors import ToolFailed, ToolRetry, ToolSourceUnavailable, UserError
from agentos.interop._json_tool import JSONSchemaTool

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp import types as mcp_types

    from agentos.config import MCPServerConfig
    from agentos.runtime.registry import ToolRegistry

__all__ = ["MCPConnection", "MCPTool", "connect_servers"]

log = logging.getLogger("agentos.mcp")


class MCPConnection:
    """One MCP server: its process or URL, its client session, and restarts when it dies.

    Args:
        config: the server's ``[[mcp_servers]]`` settings.

    Attributes:
        origin: ``MCP server '<name>'``, used in tool sources and error messages.
        starts: how many times the server was (re)connected.
    """

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.origin = f"MCP server {config.name!r}"
        self.starts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: ClientSession | None = None
        self._stop: asyncio.Event | None = None
        self._holder: asyncio.Task[None] | None = None
        self._protocol_error: Exception | None = None
        self._lock: asyncio.Lock | None = None
        self._stderr = tempfile.TemporaryFile("w+", prefix=f"agentos-mcp-{config.name}-")

    # --- life cycle (sync, from any thread) ---------------------------------------------------

    def start(self) -> list[mcp_types.Tool]:
        """Start (or connect to) the server and list its tools.

        Raises:
            ToolSourceUnavailable: it did not start, answer within ``startup_timeout_s``, or
                speak MCP; the message has its last stderr lines.
        """
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                            name=f"agentos-mcp-{self.config.name}")
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)
        return future.result()

    def close(self) -> None:
        """Stop the server (or close the HTTP session) and the connection's thread."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None
        self._stderr.close()

    # --- calls --------------------------------------------------------------------------------

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """Call ``tool`` on the server from any event loop; see :meth:`MCPTool.run`."""
        if self._loop is None:
            raise UserError(f"{self.origin} is not started; call start() first")
        future = asyncio.run_coroutine_threadsafe(self._call(tool, arguments), self._loop)
        return await asyncio.wrap_future(future)

    async def _call(self, tool: str, arguments: dict[str, Any]) -> Any:
        import anyio
        from mcp.shared.exceptions import McpError

        if self._session is None:
            await self._reconnect(None)
        session = self._session
        try:
            result = await self._send(tool, arguments)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # The server died since the last call; the request was never sent: restart, resend.
            await self._reconnect(session)
            result = await self._send(tool, arguments)
        except McpError as error:
            if "Connection closed" in str(error):
                await self._disconnect()
                raise ToolFailed(
                    f"{self.origin} exited during a call of {tool}{self._stderr_tail()}; it is "
                    "started again on the next call"
                ) from error
            if "Timed out" in str(error):
                raise ToolFailed(
                    f"{self.origin} did not answer {tool} within {self.config.call_timeout_s:g} s "
                    "(call_timeout_s in its [[mcp_servers]] table)"
                ) from error
            raise ToolRetry(f"{self.origin} refused the call of {tool}: {error}") from error
        return _result(result, self.origin, tool)

    async def _send(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        assert self._session is not None
        call = self._session.call_tool(
            tool, arguments, read_timeout_seconds=timedelta(seconds=self.config.call_timeout_s)
        )
        return await self._unless_garbage(call)

    async def _unless_garbage(self, work: Any) -> Any:
        """``await work``, failing early when the server writes a line that is not JSON-RPC."""
        self._protocol_error = None
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.wait([task], timeout=0.05)
            if self._protocol_error is not None and not task.done():
                task.cancel()
                error = self._protocol_error
                raise ToolSourceUnavailable(
                    f"{self.origin} wrote something that is not MCP JSON-RPC ({error}); check "
                    "that it prints nothing but protocol messages on stdout (logs go to stderr)"
                ) from None
        return task.result()

    # --- the connection (on the connection's own loop) ----------------------------------------

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _connect(self) -> list[mcp_types.Tool]:
        async with self._guard():
            return await self._open()

    async def _reconnect(self, dead: ClientSession | None) -> None:
        """Start the server again, unless another call already replaced session ``dead``."""
        async with self._guard():
            if self._session is not None and self._session is not dead:
                return
            log.warning("%s is not connected (it exited?); starting it again", self.origin)
            await self._disconnect()
            await self._open()

    async def _open(self) -> list[mcp_types.Tool]:
        ready: asyncio.Future[list[mcp_types.Tool]] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # read even if late
        self._stop = asyncio.Event()
        self._holder = asyncio.create_task(self._hold(ready, self._stop))
        try:
            tools = await asyncio.wait_for(asyncio.shield(ready), self.config.startup_timeout_s)
        except asyncio.TimeoutError:
            await self._disconnect()
            raise ToolSourceUnavailable(
                f"{self.origin} did not answer within {self.config.startup_timeout_s:g} s "
                f"(startup_timeout_s){self._stderr_tail()}; check that {self._what()} is an MCP "
                "server that starts on its own"
            ) from None
        except ToolSourceUnavailable:
            await self._disconnect()
            raise
        except Exception as group:
            await self._disconnect()
            error = _leaf(group)
            if isinstance(error, ToolSourceUnavailable):
                raise error from None
            raise ToolSourceUnavailable(
                f"{self.origin} could not be started from {self._what()}: "
                f"{type(error).__name__}: {error}{self._stderr_tail()}. Fix `command`/`args` "
                "(or `url`) in its [[mcp_servers]] table"
            ) from None
        self.starts += 1
        return tools

    async def _hold(self, ready: asyncio.Future[list[mcp_types.Tool]], stop: asyncio.Event) -> None:
        """Open the transport and session, list the tools, and keep both open until ``stop``."""
        from mcp import ClientSession

        async def on_message(message: Any) -> None:
            if isinstance(message, Exception):
                self._protocol_error = message

        try:
            async with AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(streams[0], streams[1], message_handler=on_message,
                                  read_timeout_seconds=timedelta(
                                      seconds=self.config.startup_timeout_s))
                )
                await self._unless_garbage(session.initialize())
                tools: list[mcp_types.Tool] = []
                cursor: str | None = None
                while True:
                    page = await self._unless_garbage(session.list_tools(cursor=cursor))
                    tools += page.tools
                    cursor = page.nextCursor
                    if not cursor:
                        break
                self._session = session
                ready.set_result(tools)
                await stop.wait()
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error if isinstance(error, Exception) else RuntimeError(
                    f"{type(error).__name__}"))
            if not isinstance(error, (Exception, asyncio.CancelledError)):
                raise
        finally:
            self._session = None

    async def _disconnect(self) -> None:
        holder, self._holder = self._holder, None
        if self._stop is not None:
            self._stop.set()
        self._session = None
        if holder is not None:
            try:
                await asyncio.wait_for(holder, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                holder.cancel()
            except Exception as error:  # the transport failed while closing; it is gone either way
                log.debug("%s closed with %r", self.origin, error)

    def _transport(self) -> Any:
        c = self.config
        if c.url is not None:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(c.url)  # the SDK's recommended HTTP timeouts
        from mcp.client.stdio import StdioServerParameters, stdio_client

        assert c.command is not None
        params = StdioServerParameters(command=c.command, args=list(c.args),
                                       env=dict(c.env) or None, cwd=c.cwd)
        return stdio_client(params, errlog=self._stderr)

    def _what(self) -> str:
        c = self.config
        return c.url if c.url is not None else " ".join([c.command or "", *c.args])

    def _stderr_tail(self) -> str:
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            lines = self._stderr.read().strip().splitlines()[-5:]
        except (OSError, ValueError):
            return ""
        return f"; its stderr ended with: {' | '.join(lines)}" if lines else ""


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside the exception groups anyio task groups wrap errors in."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _result(result: mcp_types.CallToolResult, origin: str, tool: str) -> Any:
    """An MCP tool result as a Python value: structured content, else the text of its blocks."""
    from mcp import types as t

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, t.TextContent):
            parts.append(block.text)
        elif isinstance(block, (t.ImageContent, t.AudioContent)):
            parts.append(f"[{block.type} {block.mimeType}, {len(block.data)} base64 chars]")
        elif isinstance(block, t.EmbeddedResource):
            res = block.resource
            parts.append(getattr(res, "text", None) or f"[resource {res.uri}]")
        else:
            parts.append(f"[{block.type}]")
    text = "\n".join(parts)
    if result.isError:
        raise ToolRetry(f"{origin} tool {tool} returned an error: {text or '(no message)'}")
    if result.structuredContent is not None:
        return result.structuredContent
    return text


class MCPTool(JSONSchemaTool):
    """An agentos tool that calls one tool of an MCP server.

    Args:
        connection: the server's connection.
        spec: the tool as the server listed it.

    Raises:
        UnsupportedToolSchema: its input schema is not a JSON object schema.
        UserError: its name (with the server's ``prefix``) is not a valid agentos tool name.
    """

    def __init__(self, connection: MCPConnection, spec: mcp_types.Tool) -> None:
        self.connection = connection
        self.remote_name = spec.name
        super().__init__(connection.config.prefix + spec.name, spec.description or "",
                         spec.inputSchema, origin=connection.origin)

    @property
    def is_async(self) -> bool:
        return True

    async def run(self, **arguments: Any) -> Any:  # type: ignore[override]
        """Call the tool on the server.

        Returns:
            Its structured content when it has some, else the text of its content blocks.

        Raises:
            ToolRetry: the server answered with ``isError`` or refused the call (a message for
                the LLM).
            ToolFailed: the server exited during the call or did not answer in time.
            ToolSourceUnavailable: it could not be restarted, or wrote non-MCP output.
        """
        return await self.connection.call(self.remote_name, arguments)


def connect_servers(configs: Iterable[MCPServerConfig], registry: ToolRegistry
                    ) -> list[MCPConnection]:
    """Start each configured server and register its tools in ``registry``.

    A server that cannot be started, and a tool whose schema or name cannot be used here (or
    whose name another source already registered), is recorded in ``registry.plugin_errors``
    naming the server, and skipped; the other servers and tools still load.

    Returns:
        The connections that started (close them with :meth:`MCPConnection.close`).
    """
    from agentos.runtime.registry import PluginError

    connections: list[MCPConnection] = []
    for config in configs:
        connection = MCPConnection(config)
        try:
            specs = connection.start()
        except ToolSourceUnavailable as error:
            connection.close()
            registry.plugin_errors.append(PluginError(connection.origin, str(error)))
            log.warning("%s", error)
            continue
        connections.append(connection)
        for spec in specs:
            if config.tools is not None and spec.name not in config.tools:
                continue
            try:
                registry.register(MCPTool(connection, spec))
            except UserError as error:
                where = f"{connection.origin} tool {spec.name!r}"
                registry.plugin_errors.append(PluginError(where, str(error)))
                log.warning("%s skipped: %s", where, error)
    return connections
