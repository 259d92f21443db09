"""LangChain tools and agentos tools, both ways.

- :func:`to_langchain`: an agentos tool (a :class:`~agentos.Tool` or a typed function) as a
  LangChain ``StructuredTool``, for LangChain and LangGraph apps;
- :func:`from_langchain`: any LangChain ``BaseTool`` as an agentos tool. ``Agent(tools=[...])``
  calls it for you, so LangChain tools can be passed to an agent directly::

      from langchain_core.tools import tool as lc_tool

      @lc_tool
      def shout(text: str) -> str:
          '''Upper-case the text.'''
          return text.upper()

      Agent("a", tools=[shout])      # runs as a kernel syscall like any agentos tool

The name, description and argument schema carry over, sync tools stay sync and async tools
async. Errors: a call the LLM should correct stays a correction on both sides (agentos
:class:`~agentos.errors.ToolRetry` and LangChain ``ToolException``); any other exception
propagates unchanged, and the kernel's ``ToolFailed`` names the LangChain source.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import ValidationError

from agentos.errors import InvalidToolCall, ToolRetry, UserError
from agentos.interop._bridge import run_sync
from agentos.interop._json_tool import JSONSchemaTool
from agentos.runtime.tool import _NAME, Tool

__all__ = ["LangChainTool", "from_langchain", "to_langchain"]

ORIGIN = "LangChain"


def to_langchain(obj: Tool | Any) -> StructuredTool:
    """A LangChain ``StructuredTool`` that runs the agentos tool ``obj``.

    Args:
        obj: a :class:`~agentos.Tool`, a Tool subclass or a typed function.

    Returns:
        A tool with the same name, description and argument schema (the pydantic ``Args`` model
        of a native tool, else its JSON schema). ``invoke`` runs it sync, ``ainvoke`` async (a
        sync agentos tool in a worker thread). The agentos tool validates the arguments; a
        :class:`~agentos.errors.ToolRetry` (invalid arguments included) becomes a
        ``ToolException``, which LangChain's ``handle_tool_error`` and LangGraph's ``ToolNode``
        turn into a message for the LLM. Anything else the tool raises propagates unchanged.
    """
    from agentos.runtime.registry import as_tool

    t = as_tool(obj)

    def run(**arguments: Any) -> Any:
        try:
            if t.is_async:
                return run_sync(t.acall(arguments))
            return t(**arguments)
        except ToolRetry as error:
            raise ToolException(str(error)) from error

    async def arun(**arguments: Any) -> Any:
        try:
            return await t.acall(arguments)
        except ToolRetry as error:
            raise ToolException(str(error)) from error

    schema = getattr(t, "Args", None) or t.parameters
    return StructuredTool(
        name=t.name, description=t.description, args_schema=schema, func=run, coroutine=arun
    )


class LangChainTool(JSONSchemaTool):
    """An agentos tool that runs a LangChain ``BaseTool`` (see :func:`from_langchain`).

    Attributes:
        langchain_tool: the wrapped tool.
    """

    def __init__(self, langchain_tool: BaseTool, *, name: str | None = None) -> None:
        self.langchain_tool = langchain_tool
        schema = langchain_tool.tool_call_schema
        if not isinstance(schema, dict):
            schema = (
                schema.model_json_schema() if hasattr(schema, "model_json_schema")
                else schema.schema()  # a pydantic v1 model
            )
        super().__init__(name or langchain_tool.name, langchain_tool.description, schema,
                         origin=ORIGIN)

    @property
    def is_async(self) -> bool:
        """True when the LangChain tool has its own coroutine (else it runs in a worker thread)."""
        lc = self.langchain_tool
        if isinstance(lc, StructuredTool):
            return lc.coroutine is not None
        return type(lc)._arun is not BaseTool._arun

    def run(self, **arguments: Any) -> Any:
        """Run the LangChain tool; sync, or a coroutine when :attr:`is_async`.

        Raises:
            ToolRetry: the tool raised ``ToolException`` (a message for the LLM).
            InvalidToolCall: the tool's own pydantic validation refused the arguments.
            Exception: anything else the tool raised, unchanged.
        """
        if self.is_async:
            return self._arun(arguments)
        try:
            return self.langchain_tool.invoke(arguments)
        except (ToolException, ValidationError) as error:
            raise self._correction(error) from error

    async def _arun(self, arguments: dict[str, Any]) -> Any:
        try:
            return await self.langchain_tool.ainvoke(arguments)
        except (ToolException, ValidationError) as error:
            raise self._correction(error) from error

    def _correction(self, error: Exception) -> ToolRetry:
        if isinstance(error, ValidationError):
            return InvalidToolCall(
                f"invalid arguments for {ORIGIN} tool {self.name}: {error}. Expected arguments "
                f"matching this JSON schema: {self.parameters}"
            )
        return ToolRetry(f"{ORIGIN} tool {self.name} reported: {error}")


def from_langchain(langchain_tool: BaseTool, *, name: str | None = None) -> LangChainTool:
    """An agentos tool that runs ``langchain_tool``, with its name, description and schema.

    Args:
        langchain_tool: any LangChain ``BaseTool`` (``@tool`` functions, ``StructuredTool``,
            subclasses, community tools).
        name: a name to use instead of the tool's own.

    Raises:
        UserError: ``langchain_tool`` is not a LangChain tool, or its name is not a valid
            agentos tool name (pass ``name=``).
        UnsupportedToolSchema: its argument schema is not a JSON object schema.
    """
    if not isinstance(langchain_tool, BaseTool):
        raise UserError(
            f"{langchain_tool!r} is not a LangChain BaseTool; decorate the function with "
            "langchain_core.tools.tool or pass an agentos tool instead"
        )
    if name is None and not _NAME.match(langchain_tool.name):
        raise UserError(
            f"the {ORIGIN} tool name {langchain_tool.name!r} is not a valid agentos tool name "
            "(1-64 letters, digits, '_' or '-'); pass from_langchain(tool, name=...)"
        )
    return LangChainTool(langchain_tool, name=name)
