"""CrewAI tools and agentos tools, both ways.

- :func:`to_crewai`: an agentos tool (a :class:`~agentos.Tool` or a typed function) as a CrewAI
  ``BaseTool``, for CrewAI agents;
- :func:`from_crewai`: any CrewAI ``BaseTool`` as an agentos tool. ``Agent(tools=[...])`` calls
  it for you, so CrewAI tools can be passed to an agent directly.

The description and argument schema carry over; the name too, made a valid agentos name
(CrewAI names may hold spaces: ``"Search the web"`` becomes ``search_the_web``). Sync tools stay
sync and async ones async. Errors: a CrewAI ``ToolFailure`` result (a spent ``max_usage_count``,
a tool-reported failure) becomes an agentos :class:`~agentos.errors.ToolRetry`, a message for the
LLM; any exception propagates unchanged, and the kernel's ``ToolFailed`` names the CrewAI source.
"""

from __future__ import annotations

import re
from typing import Any

from crewai.tools import BaseTool
from crewai.tools.tool_failure import ToolFailure
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentos.errors import InvalidToolCall, ToolRetry, UserError
from agentos.interop._bridge import run_sync
from agentos.interop._json_tool import JSONSchemaTool
from agentos.runtime.tool import Tool

__all__ = ["AgentosCrewAITool", "CrewAITool", "from_crewai", "to_crewai"]

ORIGIN = "CrewAI"


class AgentosCrewAITool(BaseTool):
    """A CrewAI ``BaseTool`` that runs an agentos tool (see :func:`to_crewai`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    agentos_tool: Any = Field(exclude=True, description="the agentos tool it runs")

    def _run(self, **arguments: Any) -> Any:
        t: Tool = self.agentos_tool
        if t.is_async:
            return run_sync(t.acall(arguments))
        return t(**arguments)

    async def _arun(self, **arguments: Any) -> Any:
        t: Tool = self.agentos_tool
        return await t.acall(arguments)


def to_crewai(obj: Tool | Any) -> AgentosCrewAITool:
    """A CrewAI tool that runs the agentos tool ``obj``.

    Args:
        obj: a :class:`~agentos.Tool`, a Tool subclass or a typed function.

    Returns:
        A CrewAI ``BaseTool`` with the same name, description and argument schema (the native
        tool's pydantic ``Args`` model, else a model built from its JSON schema); ``run`` is
        sync, ``arun`` async. CrewAI validates the arguments against the schema, then the
        agentos tool validates them again; whatever the tool raises propagates, and CrewAI's
        agent loop reports it to the LLM.
    """
    from agentos.runtime.registry import as_tool

    t = as_tool(obj)
    schema = getattr(t, "Args", None)
    if schema is None:
        from crewai.utilities.pydantic_schema_utils import create_model_from_schema

        schema = create_model_from_schema(t.parameters, model_name=f"{t.name}_args")
    return AgentosCrewAITool(
        name=t.name, description=t.description, args_schema=schema, agentos_tool=t
    )


class CrewAITool(JSONSchemaTool):
    """An agentos tool that runs a CrewAI ``BaseTool`` (see :func:`from_crewai`).

    Attributes:
        crewai_tool: the wrapped tool.
    """

    def __init__(self, crewai_tool: BaseTool, *, name: str | None = None) -> None:
        self.crewai_tool = crewai_tool
        args: type[BaseModel] = crewai_tool.args_schema
        super().__init__(name or crewai_name(crewai_tool.name), crewai_tool.description,
                         args.model_json_schema(), origin=ORIGIN)

    @property
    def is_async(self) -> bool:
        """True when the CrewAI tool implements ``_arun`` (or wraps a coroutine function)."""
        ct = self.crewai_tool
        func = getattr(ct, "func", None)
        if func is not None:
            import inspect

            return inspect.iscoroutinefunction(func)
        return type(ct)._arun is not BaseTool._arun

    def run(self, **arguments: Any) -> Any:
        """Run the CrewAI tool; sync, or a coroutine when :attr:`is_async`.

        Raises:
            ToolRetry: the tool returned a ``ToolFailure`` (a message for the LLM).
            InvalidToolCall: the tool's pydantic schema refused the arguments.
            Exception: anything else the tool raised, unchanged.
        """
        if self.is_async:
            return self._arun(arguments)
        try:
            result = self.crewai_tool.run(**arguments)
        except ValueError as error:
            raise self._invalid(error) from error
        return self._checked(result)

    async def _arun(self, arguments: dict[str, Any]) -> Any:
        try:
            result = await self.crewai_tool.arun(**arguments)
        except ValueError as error:
            raise self._invalid(error) from error
        return self._checked(result)

    def _invalid(self, error: ValueError) -> Exception:
        # CrewAI reports its own schema validation as ValueError(...) from a ValidationError.
        if isinstance(error.__cause__, ValidationError):
            return InvalidToolCall(
                f"invalid arguments for {ORIGIN} tool {self.name}: {error.__cause__}. Expected "
                f"arguments matching this JSON schema: {self.parameters}"
            )
        return error

    def _checked(self, result: Any) -> Any:
        if isinstance(result, ToolFailure):
            raise ToolRetry(f"{ORIGIN} tool {self.name} reported a failure: {result.message}")
        return result


def crewai_name(name: str) -> str:
    """A CrewAI tool name as an agentos tool name: lower case, runs of other characters ``_``."""
    return re.sub(r"[^a-z0-9_\-]+", "_", name.strip().lower()).strip("_")[:64] or "crewai_tool"


def from_crewai(crewai_tool: BaseTool, *, name: str | None = None) -> CrewAITool:
    """An agentos tool that runs ``crewai_tool``, with its description and schema.

    Args:
        crewai_tool: any CrewAI ``BaseTool`` (``@tool`` functions, subclasses, crewai-tools).
        name: a name to use instead of the tool's own (made valid by :func:`crewai_name`).

    Raises:
        UserError: ``crewai_tool`` is not a CrewAI tool.
        UnsupportedToolSchema: its argument schema is not a JSON object schema.
    """
    if not isinstance(crewai_tool, BaseTool):
        raise UserError(
            f"{crewai_tool!r} is not a CrewAI BaseTool; decorate the function with "
            "crewai.tools.tool or pass an agentos tool instead"
        )
    return CrewAITool(crewai_tool, name=name)
