"""An agentos tool described by a JSON schema: the shape every foreign tool takes here.

LangChain, CrewAI and MCP tools describe their arguments with a JSON schema (or a pydantic model
that gives one). :class:`JSONSchemaTool` validates arguments against that schema with
``jsonschema`` before the foreign tool runs, so a wrong call comes back to the LLM as an
:class:`~agentos.errors.InvalidToolCall` listing each problem, as for native tools.
"""

from __future__ import annotations

from typing import Any

from agentos.errors import InvalidToolCall, UnsupportedToolSchema
from agentos.runtime.tool import Tool, _check_name

__all__ = ["JSONSchemaTool", "check_schema"]


def check_schema(schema: Any, where: str) -> dict[str, Any]:
    """``schema`` as a tool-argument schema: a valid JSON schema of an object.

    Args:
        schema: the schema the foreign tool declares.
        where: names the tool and its source for the error message.

    Raises:
        UnsupportedToolSchema: not a JSON object schema, or not valid JSON Schema.
    """
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise UnsupportedToolSchema(
            f"{where}: its argument schema must be a JSON object schema, got "
            f"{type(schema).__name__}; agentos passes tool arguments as one JSON object"
        )
    kind = schema.get("type", "object")
    if kind != "object":
        raise UnsupportedToolSchema(
            f"{where}: its argument schema has type {kind!r}; agentos can only express tools "
            "whose arguments are one JSON object (type 'object'). Wrap the value in an object "
            "property on the tool's side."
        )
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as error:
        raise UnsupportedToolSchema(
            f"{where}: its argument schema is not valid JSON Schema ({error.message} at "
            f"{'/'.join(str(p) for p in error.path) or 'the top level'})"
        ) from None
    clean = dict(schema)
    clean.setdefault("type", "object")
    clean.setdefault("properties", {})
    clean.pop("title", None)
    return clean


class JSONSchemaTool(Tool):
    """A tool whose arguments are given by a JSON schema; subclasses implement ``run``.

    Args:
        name: the tool's name (1-64 letters, digits, ``_`` or ``-``).
        description: what the LLM reads about it.
        schema: the JSON schema of its arguments (an object schema).
        origin: where it comes from, e.g. ``"LangChain"`` or ``"MCP server 'git'"``; shown by
            ``agentos tools list`` and in error messages.

    Raises:
        UserError: the name is invalid.
        UnsupportedToolSchema: the schema is not an object schema agentos can express.
    """

    def __init__(self, name: str, description: str, schema: Any, *, origin: str) -> None:
        from jsonschema.validators import validator_for

        self.name = name
        self.description = description or name
        self.origin = origin
        _check_name(name)
        self._schema = check_schema(schema, f"{origin} tool {name!r}")
        self._validator = validator_for(self._schema)(self._schema)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` unchanged when they fit the schema.

        Raises:
            InvalidToolCall: they do not; the message lists each problem and the schema.
        """
        if not isinstance(arguments, dict):
            raise InvalidToolCall(
                f"arguments for {self.name} must be a JSON object, got {type(arguments).__name__}"
            )
        errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.path) or '(arguments)'}: {e.message}" for e in errors
            )
            raise InvalidToolCall(
                f"invalid arguments for tool {self.name}: {problems}. "
                f"Expected arguments matching this JSON schema: {self.parameters}"
            )
        return dict(arguments)

    def __repr__(self) -> str:
        return f"<Tool {self.name} from {self.origin}>"
