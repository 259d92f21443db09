"""Tool calls written as JSON text by small models: a tolerant parser and an output schema.

Small local models do not emit structured tool calls; they write JSON in their reply. This
module turns that text into :class:`ParsedToolCall` objects, accepting the shapes models actually
produce (fenced blocks, ``{"name", "arguments"}``, ``{"tool", "args"}``, OpenAI-style
``{"function": {...}}``, lists of calls, arguments given as a JSON string, ``<tool_call>`` tags,
prose before or after). When a reply *tries* to call a tool but gets it wrong, it raises
:class:`MalformedToolCall`, whose message is written to be sent back to the model as a correction.

:func:`tool_call_schema` builds the JSON schema used for schema-constrained (grammar) decoding:
exactly one call of a known tool with its parameters, or ``{"final_answer": "..."}``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentos.errors import InvalidToolCall

__all__ = [
    "FINAL_ANSWER_KEY",
    "MalformedToolCall",
    "ParsedResponse",
    "ParsedToolCall",
    "describe_tools",
    "format_instructions",
    "parse_response",
    "parse_tool_calls",
    "tool_call_schema",
]

FINAL_ANSWER_KEY = "final_answer"

_NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action")
_ARG_KEYS = ("arguments", "args", "parameters", "input", "action_input", "tool_input", "params")
_FINAL_KEYS = (FINAL_ANSWER_KEY, "answer", "final")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)```", re.S)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)

ToolSpec = Mapping[str, Any]


class MalformedToolCall(InvalidToolCall, ValueError):
    """A reply that tries to call a tool but cannot be used (an :class:`InvalidToolCall`).

    ``str(err)`` is a correction message for the model: what was wrong, and the expected format
    with the available tools. ``err.problem`` holds only the first part.
    """

    def __init__(self, problem: str, tools: Sequence[ToolSpec] = ()) -> None:
        self.problem = problem
        self.tools = list(tools)
        super().__init__(f"Your tool call could not be used: {problem}\n{format_instructions(tools)}")


@dataclass(frozen=True)
class ParsedToolCall:
    """One tool call: the tool's name and its arguments as a dict."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry (arguments JSON-encoded, as OpenAI sends them)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


@dataclass(frozen=True)
class ParsedResponse:
    """A reply split into tool calls, or plain content (a final answer or prose)."""

    content: str | None
    tool_calls: list[ParsedToolCall]


# --------------------------------------------------------------------------------------------
# tool specs


def _function(tool: ToolSpec) -> Mapping[str, Any]:
    fn = tool.get("function", tool)
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise TypeError(
            "a tool spec must look like {'type': 'function', 'function': {'name': ..., "
            f"'description': ..., 'parameters': {{...}}}}, got {tool!r}"
        )
    return fn


def _parameters(fn: Mapping[str, Any]) -> dict[str, Any]:
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return dict(params)


def _signature(fn: Mapping[str, Any]) -> str:
    params = _parameters(fn)
    required = set(params.get("required", ()))
    parts = []
    for pname, pschema in (params.get("properties") or {}).items():
        ptype = pschema.get("type", "any") if isinstance(pschema, Mapping) else "any"
        if isinstance(pschema, Mapping) and "enum" in pschema:
            ptype = "|".join(json.dumps(v) for v in pschema["enum"])
        parts.append(f"{pname}{'' if pname in required else '?'}: {ptype}")
    return f"{fn['name']}({', '.join(parts)})"


def describe_tools(tools: Sequence[ToolSpec]) -> str:
    """One line per tool: ``name(arg: type, opt?: type): description``."""
    lines = []
    for tool in tools:
        fn = _function(tool)
        desc = str(fn.get("description") or "").strip().replace("\n", " ")
        lines.append(f"- {_signature(fn)}" + (f": {desc}" if desc else ""))
    return "\n".join(lines)


def format_instructions(
    tools: Sequence[ToolSpec], *, final_answer: bool = True, parallel: bool = False
) -> str:
    """The reply format a model must follow to call one of ``tools`` (several at once with
    ``parallel``)."""
    names = ", ".join(_function(t)["name"] for t in tools) or "(none)"
    text = (
        'To call a tool, reply with only one JSON object: {"name": "<tool name>", '
        '"arguments": {<argument name>: <value>, ...}}. '
        f"Available tools: {names}."
    )
    if parallel:
        text += (" To make several calls that do not need each other's results, reply with a "
                 "JSON list of such objects; they run at once.")
    if tools:
        text += "\n" + describe_tools(tools)
    if final_answer:
        text += (
            "\nUse a tool for anything a tool can do (calculations, lookups, searches, files, "
            "code): do not work out tool results yourself. When the tool results you need are "
            f'in, or no tool fits, reply with {{"{FINAL_ANSWER_KEY}": "<your answer>"}}.'
        )
    return text


def tool_call_schema(
    tools: Sequence[ToolSpec],
    *,
    final_answer: bool = True,
    only: str | None = None,
    parallel: bool = False,
) -> dict[str, Any]:
    """JSON schema for one tool call (or a final answer) from OpenAI-style ``tools``.

    Args:
        tools: ``{"type": "function", "function": {"name", "description", "parameters"}}``.
        final_answer: also allow ``{"final_answer": "<text>"}``.
        only: restrict to this one tool (``tool_choice`` naming a function).
        parallel: also allow a JSON list of calls.

    Raises:
        TypeError: a tool spec is not in the OpenAI function format.
        ValueError: ``only`` names no tool, or nothing at all would be allowed.
    """
    alternatives: list[dict[str, Any]] = []
    for tool in tools:
        fn = _function(tool)
        if only is not None and fn["name"] != only:
            continue
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": _parameters(fn)},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    if only is not None and not alternatives:
        raise ValueError(f"tool_choice names {only!r}, which is not among the tools")
    calls = list(alternatives)
    if parallel and calls:
        alternatives.append({"type": "array", "items": {"anyOf": calls}, "minItems": 1})
    if final_answer and only is None:
        alternatives.append(
            {
                "type": "object",
                # Not only strings: a small model that wants to answer 395 writes a number, and a
                # grammar that forbids it makes llama.cpp sample garbage from the leftovers.
                "properties": {FINAL_ANSWER_KEY: {"type": ["string", "number", "boolean"]}},
                "required": [FINAL_ANSWER_KEY],
                "additionalProperties": False,
            }
        )
    if not alternatives:
        raise ValueError("no tools and no final answer: the schema would allow nothing")
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


# --------------------------------------------------------------------------------------------
# parsing


def _candidates(text: str) -> list[str]:
    """Text spans that may hold the JSON of a call, most explicit first."""
    spans = [m.group(2) for m in _FENCE.finditer(text)]
    spans += [m.group(1) for m in _TAGGED.finditer(text)]
    spans.append(text)
    return [s.strip() for s in spans if s.strip()]


def _decode_first(span: str) -> tuple[Any, bool]:
    """The first JSON object or list in ``span``; (value, found)."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(span):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(span, i)
            except json.JSONDecodeError:
                continue
            if isinstance(value, (dict, list)):
                return value, True
    return None, False


def _looks_like_call(obj: Any) -> bool:
    if isinstance(obj, list):
        return any(_looks_like_call(o) for o in obj)
    if not isinstance(obj, dict):
        return False
    if "tool_calls" in obj or isinstance(obj.get("function"), dict):
        return True
    return any(k in obj for k in _NAME_KEYS) or any(k in obj for k in _ARG_KEYS)


def _final_answer(obj: Any) -> str | None:
    if isinstance(obj, dict) and len(obj) == 1:
        (key, value), = obj.items()
        if key in _FINAL_KEYS:
            return value if isinstance(value, str) else json.dumps(value)
    return None


def _flatten(obj: Any) -> list[Any]:
    if isinstance(obj, list):
        return [c for item in obj for c in _flatten(item)]
    if isinstance(obj, dict) and isinstance(obj.get("tool_calls"), list):
        return _flatten(obj["tool_calls"])
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
        return [obj["function"]]
    return [obj]


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _coerce(value: Any, schema: Any, where: str, tools: Sequence[ToolSpec]) -> Any:
    """Check a top-level argument's JSON type; convert numeric strings and "true"/"false"."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("type"), str):
        return value
    want = schema["type"]
    allowed = _TYPES.get(want)
    if allowed is None:
        return value
    if isinstance(value, allowed) and not (want in ("integer", "number") and isinstance(value, bool)):
        if want == "integer" and isinstance(value, float) and not value.is_integer():
            raise MalformedToolCall(f"{where} must be an integer, got {value!r}.", tools)
        return value
    if isinstance(value, float) and want == "integer" and value.is_integer():
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        try:
            if want == "integer":
                return int(s)
            if want == "number":
                return float(s) if any(c in s for c in ".eE") else int(s)
        except ValueError:
            pass
        if want == "boolean" and s.lower() in ("true", "false"):
            return s.lower() == "true"
    if want == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise MalformedToolCall(f"{where} must be of type {want}, got {json.dumps(value)}.", tools)


def _to_call(obj: Any, tools: Sequence[ToolSpec], by_name: Mapping[str, Mapping[str, Any]]) -> ParsedToolCall:
    if not isinstance(obj, dict):
        raise MalformedToolCall(f"expected a JSON object for each call, got {json.dumps(obj)}.", tools)
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if name is None:
        raise MalformedToolCall('the JSON object has no "name" naming the tool to call.', tools)
    name = name.strip()
    fn = by_name.get(name)
    if fn is None:  # tolerate case and a "functions." prefix, nothing fuzzier
        key = name.lower().removeprefix("functions.")
        fn = next((f for n, f in by_name.items() if n.lower() == key), None)
    if fn is None:
        raise MalformedToolCall(f"there is no tool named {name!r}.", tools)
    raw_args: Any = next((obj[k] for k in _ARG_KEYS if k in obj), None)
    if raw_args is None:
        extra = {k: v for k, v in obj.items() if k not in _NAME_KEYS and k != "id" and k != "type"}
        raw_args = extra  # {"name": "add", "a": 1, "b": 2}
    if isinstance(raw_args, str):
        text = raw_args.strip()
        if not text:
            raw_args = {}
        else:
            try:
                raw_args = json.loads(text)
            except json.JSONDecodeError as exc:
                raise MalformedToolCall(
                    f'"arguments" of {fn["name"]} is a string that is not valid JSON ({exc.msg}); '
                    "give the arguments as a JSON object.",
                    tools,
                ) from None
    if not isinstance(raw_args, dict):
        raise MalformedToolCall(
            f'"arguments" of {fn["name"]} must be a JSON object, got {json.dumps(raw_args)}.', tools
        )
    params = _parameters(fn)
    props: Mapping[str, Any] = params.get("properties") or {}
    missing = [p for p in params.get("required", ()) if p not in raw_args]
    if missing:
        raise MalformedToolCall(
            f"{fn['name']} is missing required argument(s): {', '.join(missing)}.", tools
        )
    if params.get("additionalProperties") is False:
        unknown = [k for k in raw_args if k not in props]
        if unknown:
            raise MalformedToolCall(f"{fn['name']} has no argument(s) {', '.join(unknown)}.", tools)
    args = {
        k: _coerce(v, props.get(k), f"argument {k!r} of {fn['name']}", tools)
        for k, v in raw_args.items()
    }
    call_id = obj.get("id") if isinstance(obj.get("id"), str) and obj.get("id") else None
    return ParsedToolCall(fn["name"], args, call_id) if call_id else ParsedToolCall(fn["name"], args)


def parse_response(text: str, tools: Sequence[ToolSpec]) -> ParsedResponse:
    """Split a model reply into tool calls or content.

    Returns content (and no calls) for prose, for ``{"final_answer": ...}`` and for JSON that is
    not shaped like a call; returns the calls when the reply holds one or more valid calls.

    Raises:
        MalformedToolCall: the reply tries to call a tool but the JSON is broken, names an
            unknown tool, or has missing or mistyped arguments. ``str(err)`` is a correction
            message for the model.
        TypeError: a tool spec is not in the OpenAI function format.
    """
    by_name = {}
    for tool in tools:
        fn = _function(tool)
        by_name[fn["name"]] = fn
    stripped = text.strip()
    for span in _candidates(stripped):
        value, found = _decode_first(span)
        if not found:
            continue
        final = _final_answer(value)
        if final is not None:
            return ParsedResponse(final, [])
        if _looks_like_call(value):
            calls = [_to_call(obj, tools, by_name) for obj in _flatten(value)]
            return ParsedResponse(None, calls)
    # No usable JSON. A reply that is (or fences, or tags) broken JSON was meant as a call.
    attempt = stripped.startswith(("{", "[")) or "<tool_call>" in stripped
    for m in _FENCE.finditer(stripped):
        if m.group(1).lower() in ("json", "tool_call", "") and m.group(2).strip().startswith("{"):
            attempt = True
    if attempt and any(k in stripped for k in ('"name"', '"tool"', '"arguments"', '"args"')):
        raise MalformedToolCall(_json_problem(stripped), tools)
    return ParsedResponse(text, [])


def _json_problem(text: str) -> str:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=0)
    try:
        json.loads(text[start:])
    except json.JSONDecodeError as exc:
        return f"the JSON is not valid ({exc.msg} at line {exc.lineno} column {exc.colno})."
    return "the JSON is not valid."


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> list[ParsedToolCall]:
    """The tool calls in a model reply; an empty list when the reply is an answer or prose.

    Raises:
        MalformedToolCall: see :func:`parse_response`.
        TypeError: a tool spec is not in the OpenAI function format.
    """
    return parse_response(text, tools).tool_calls
