"""The tool API users write against: :func:`tool` for typed functions, :class:`Tool` for classes.

A tool has a name, a description, a JSON schema for its arguments (from type hints and the
docstring, in Google, NumPy or Sphinx style, parsed by griffe; or from a pydantic model) and
validates arguments with pydantic before it runs. Invalid arguments raise
:class:`~agentos.errors.InvalidToolCall`, which the agent loop sends back to the LLM as a
correction.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from agentos.errors import InvalidToolCall, UserError

__all__ = ["Tool", "tool"]

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_\-]{0,63}$")


class Tool:
    """A tool. Subclass it, or build one with :func:`tool`.

    Subclasses set ``name``, ``description``, an ``Args`` pydantic model, and implement
    ``run(self, **arguments)`` (sync or async)::

        class Weather(Tool):
            name = "weather"
            description = "Current temperature in a city."

            class Args(BaseModel):
                city: str

            def run(self, city: str) -> str:
                ...

    Attributes:
        name: how LLMs call it: 1-64 letters, digits, ``_`` or ``-``.
        description: what it does, for the LLM.
        Args: the pydantic model its arguments are validated with (extra keys are refused when
            the model forbids them, as :func:`tool`'s models do).
        concurrency: at most this many calls of the tool run at once: it caps the tool's
            scheduler pool ``tool:<name>``; ``None`` leaves the pool's limit as configured.
        run_in: where the kernel runs a call. ``"thread"`` (default): sync tools in a worker
            thread, async ones on the event loop. ``"process"``: a child process per call,
            killed when the syscall times out or is cancelled, so the work really stops; the
            tool (defined at module level), its arguments and its result must pickle, and
            each call pays for a fresh interpreter (about a second).

    Raises:
        UserError: (when instantiated) ``name`` or ``Args`` is missing, or ``name`` is invalid.
    """

    name: ClassVar[str] | str = ""
    description: ClassVar[str] | str = ""
    Args: ClassVar[type[BaseModel]] | type[BaseModel]
    concurrency: int | None = None
    run_in: Literal["thread", "process"] = "thread"

    def __init__(self) -> None:
        cls = type(self)
        if self.run_in not in ("thread", "process"):
            raise UserError(f"tool {cls.__name__}: run_in must be 'thread' or 'process', got {self.run_in!r}")
        if not getattr(self, "name", ""):
            raise UserError(f"tool class {cls.__name__} must set `name`")
        if not getattr(self, "Args", None):
            raise UserError(f"tool class {cls.__name__} must define an `Args` pydantic model")
        _check_name(self.name)
        self._schema = _clean_schema(self.Args.model_json_schema())

    def run(self, **arguments: Any) -> Any:
        """Do the work, with validated arguments as keywords; sync or ``async def``.

        Through the kernel a sync ``run`` executes in a worker thread, which cannot be stopped:
        if its syscall times out it is recorded as ``abandoned`` and left to finish (holding its
        ``concurrency`` slot until then). Make a long tool ``async`` (cancellable), give it
        ``run_in = "process"`` (killed on timeout), or bound its own running time.

        Returns:
            Anything; the agent loop shows it to the LLM as text (``str`` or JSON).

        Raises:
            ToolRetry: to send the LLM a correction (e.g. a value out of range).
            Exception: anything else fails the call as :class:`~agentos.errors.ToolFailed`.
        """
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments."""
        return self._schema

    def spec(self) -> dict[str, Any]:
        """The OpenAI-style function spec sent to LLMs (name, description, JSON schema)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated and coerced arguments.

        Raises:
            InvalidToolCall: the arguments do not fit the schema; the message lists each problem
                and the expected schema, written for the LLM to correct its call.
        """
        if not isinstance(arguments, dict):
            raise InvalidToolCall(
                f"arguments for {self.name} must be a JSON object, got {type(arguments).__name__}"
            )
        try:
            model = self.Args.model_validate(arguments)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in error.errors()
            )
            raise InvalidToolCall(
                f"invalid arguments for tool {self.name}: {problems}. "
                f"Expected arguments matching this JSON schema: {self.parameters}"
            ) from None
        return {k: getattr(model, k) for k in type(model).model_fields}

    @property
    def is_async(self) -> bool:
        """Whether :meth:`run` is a coroutine function (sync tools run in a worker thread)."""
        return inspect.iscoroutinefunction(self.run)

    async def ainvoke(self, values: dict[str, Any]) -> Any:
        """Run the tool with ``values`` that :meth:`validate` returned (not validated again).

        A sync tool runs in a worker thread. Whatever :meth:`run` raises propagates.
        """
        if self.is_async:
            return await self.run(**values)
        return await asyncio.to_thread(self.run, **values)

    async def acall(self, arguments: dict[str, Any]) -> Any:
        """Validate ``arguments`` and run the tool (sync tools run in a worker thread).

        Raises:
            InvalidToolCall: the arguments do not fit the schema.
        """
        return await self.ainvoke(self.validate(arguments))

    def __call__(self, **arguments: Any) -> Any:
        """Run the tool directly (sync), with validation.

        Raises:
            InvalidToolCall: the arguments do not fit the schema.
        """
        result = self.run(**self.validate(arguments))
        if inspect.isawaitable(result):
            return asyncio.run(result)  # type: ignore[arg-type]
        return result

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


class FunctionTool(Tool):
    """A tool made from a typed function by :func:`tool`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        concurrency: int | None = None,
        run_in: Literal["thread", "process"] = "thread",
    ) -> None:
        self.fn = fn
        self.run_in = run_in
        self.name = name or fn.__name__
        summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
        self.description = description or summary or self.name
        self.concurrency = concurrency
        self.Args = _args_model(fn, self.name, arg_docs)
        self._is_async = inspect.iscoroutinefunction(fn)
        super().__init__()

    def run(self, **arguments: Any) -> Any:
        return self.fn(**arguments)

    @property
    def is_async(self) -> bool:
        return self._is_async


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    concurrency: int | None = None,
    run_in: Literal["thread", "process"] = "thread",
) -> Callable[[Callable[..., Any]], FunctionTool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    concurrency: int | None = None,
    run_in: Literal["thread", "process"] = "thread",
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a tool from a typed function; its docstring becomes the spec.

    The docstring's text before its first section (all of its paragraphs) becomes the tool's
    description, and each documented parameter's text that argument's description in the JSON
    schema. Google (``Args:``), NumPy (``Parameters`` underlined) and Sphinx (``:param x:``)
    styles are read, by griffe.

    Example::

        @tool
        def add(a: int, b: int) -> int:
            '''Add two integers.

            Args:
                a: the first addend.
                b: the second addend.
            '''
            return a + b

    ``concurrency`` and ``run_in`` are :class:`Tool`'s attributes of those names.

    Raises:
        UserError: a parameter has no type hint, the name is not a valid tool name, or
            ``run_in`` is neither ``"thread"`` nor ``"process"``.
    """

    def build(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            f, name=name, description=description, concurrency=concurrency, run_in=run_in
        )

    return build(fn) if fn is not None else build


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UserError(
            f"tool name {name!r} is invalid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or '_'"
        )


def _args_model(fn: Callable[..., Any], name: str, docs: dict[str, str]) -> type[BaseModel]:
    from pydantic import Field

    signature = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except NameError as error:
        raise UserError(f"tool {name}: cannot resolve a type hint ({error})") from error
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise UserError(f"tool {name}: *args/**kwargs are not supported; name each argument")
        if param.name not in hints:
            raise UserError(
                f"tool {name}: parameter {param.name!r} needs a type hint so the LLM knows what "
                "to pass (e.g. `query: str`)"
            )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints[param.name], Field(default, description=docs.get(param.name)))
    model_name = "".join(part.capitalize() for part in re.split(r"[_\-]", name)) + "Args"
    return create_model(  # type: ignore[call-overload, no-any-return]
        model_name, __config__=ConfigDict(extra="forbid"), **fields
    )


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description and the parameter descriptions of a docstring, parsed by griffe.

    The style (Google, NumPy or Sphinx) is inferred; Google is assumed when nothing gives it
    away. The description is all the text before the first section, every paragraph of it.
    """
    if not doc.strip():
        return "", {}
    # Imported on use, so that `import agentos` stays light.
    from griffe import Docstring, DocstringSectionKind, infer_docstring_style

    docstring = Docstring(doc, lineno=1)
    style, _ = infer_docstring_style(docstring)
    description: list[str] = []
    params: dict[str, str] = {}
    in_sections = False
    for section in docstring.parse(style or "google", warnings=False):
        if section.kind is DocstringSectionKind.text and not in_sections:
            description.append(_unwrap(section.value))
            continue
        in_sections = True
        if section.kind is DocstringSectionKind.parameters:
            params.update({p.name: _unwrap(p.description) for p in section.value})
    return "\n\n".join(d for d in description if d), params


def _unwrap(text: str) -> str:
    """Paragraphs kept, the lines inside each joined: docstrings wrap at 100 columns, LLMs don't."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema)
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema
