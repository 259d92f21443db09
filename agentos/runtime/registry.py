"""The tool registry: tools by name, and discovery of plug-ins through entry points.

A plug-in package declares tools in its ``pyproject.toml``::

    [project.entry-points."agentos.tools"]
    weather = "my_pkg.tools:weather"      # a Tool, a typed function, or a list of them

agentos' own built-in tools are declared the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agentos.errors import UnknownTool, UserError
from agentos.runtime.tool import Tool, tool

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "ToolRegistry", "as_tool"]

ENTRY_POINT_GROUP = "agentos.tools"


@dataclass(frozen=True, slots=True)
class PluginError:
    """A plug-in entry point that could not be loaded (shown by ``agentos tools list``)."""

    entry_point: str
    error: str


def as_tool(obj: Any) -> Tool:
    """A :class:`Tool` from a Tool, a Tool subclass, or a typed function.

    Raises:
        UserError: ``obj`` is none of those.
    """
    if isinstance(obj, Tool):
        return obj
    if isinstance(obj, type) and issubclass(obj, Tool):
        return obj()
    foreign = _from_framework(obj)
    if foreign is not None:
        return foreign
    if callable(obj):
        return tool(obj)
    raise UserError(
        f"{obj!r} is not a tool: pass a Tool, a Tool subclass, a typed function, or a LangChain "
        "or CrewAI tool"
    )


def _from_framework(obj: Any) -> Tool | None:
    """A LangChain or CrewAI tool converted, found by class name so neither is imported here."""
    for cls in type(obj).__mro__:
        key = f"{cls.__module__}.{cls.__qualname__}"
        if key == "langchain_core.tools.base.BaseTool":
            from agentos.interop.langchain_tools import from_langchain

            return from_langchain(obj)
        if key == "crewai.tools.base_tool.BaseTool":
            from agentos.interop.crewai_tools import from_crewai

            return from_crewai(obj)
    return None


class ToolRegistry:
    """Tools by name.

    Args:
        tools: tools to register now.
        discover: also load every ``agentos.tools`` entry point.
    """

    def __init__(self, tools: Iterable[Any] = (), *, discover: bool = False) -> None:
        self._tools: dict[str, Tool] = {}
        self._sources: dict[str, str] = {}
        self.plugin_errors: list[PluginError] = []
        for t in tools:
            self.register(t)
        if discover:
            self.discover()

    def register(self, obj: Any, *, replace: bool = False, source: str = "user") -> Tool:
        """Add a tool (a Tool, a Tool subclass or a typed function, see :func:`as_tool`).

        Returns:
            The registered :class:`Tool`.

        Raises:
            UserError: another tool already has that name and ``replace`` is false.
        """
        t = as_tool(obj)
        origin = getattr(t, "origin", None)  # a LangChain, CrewAI or MCP tool says where from
        if origin:
            source = origin if source == "user" else f"{origin} via {source}"
        if t.name in self._tools and not replace and self._tools[t.name] is not t:
            raise UserError(
                f"a tool named {t.name!r} is already registered (from {self._sources[t.name]}); "
                f"the one from {source} cannot share its name: rename one of them or pass "
                "replace=True"
            )
        self._tools[t.name] = t
        self._sources[t.name] = source
        return t

    def get(self, name: str) -> Tool:
        """The tool called ``name``.

        Raises:
            UnknownTool: no such tool; the message lists the registered ones.
        """
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "none"
            raise UnknownTool(
                f"unknown tool {name!r}; registered tools: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        """The registered tool names, sorted."""
        return sorted(self._tools)

    def source(self, name: str) -> str:
        """Where tool ``name`` came from: ``user``, ``entry point <module:attr>``, or a foreign
        tool's origin (``LangChain``, ``CrewAI``, ``MCP server '<name>'``), with ``via entry
        point <module:attr>`` when a plug-in exported it.

        Raises:
            KeyError: no tool has that name.
        """
        return self._sources[name]

    def discover(self, load: Callable[[Any], Any] | None = None) -> int:
        """Load every entry point of the ``agentos.tools`` group; returns how many tools it added.

        A broken plug-in is recorded in :attr:`plugin_errors` and skipped, so one bad package
        cannot take the others down.
        """
        from importlib.metadata import entry_points

        added = 0
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = (load or (lambda e: e.load()))(ep)
                items = obj if isinstance(obj, (list, tuple)) else [obj]
                for item in items:
                    t = as_tool(item)
                    if t.name not in self._tools:
                        self.register(t, source=f"entry point {ep.value}")
                        added += 1
            except Exception as error:  # a plug-in's import or construction failed
                self.plugin_errors.append(PluginError(f"{ep.name} = {ep.value}", repr(error)))
        return added
