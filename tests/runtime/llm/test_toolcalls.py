from __future__ import annotations

import json
from typing import Any

import pytest

from agentos.runtime.llm.toolcalls import (
    MalformedToolCall,
    parse_response,
    parse_tool_calls,
    tool_call_schema,
)

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query"],
            },
        },
    },
    {"type": "function", "function": {"name": "now", "description": "Current time."}},
]


def one(text: str) -> tuple[str, dict[str, Any]]:
    calls = parse_tool_calls(text, TOOLS)
    assert len(calls) == 1, calls
    return calls[0].name, calls[0].arguments


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "add", "arguments": {"a": 2, "b": 3}}',
        '  {"name":"add","arguments":{"a":2,"b":3}}  ',
        '```json\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n```',
        '```\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n```\nThis adds the numbers.',
        'Sure! I will call the tool.\n{"name": "add", "arguments": {"a": 2, "b": 3}}\nDone.',
        '{"tool": "add", "args": {"a": 2, "b": 3}}',
        '{"tool_name": "add", "parameters": {"a": 2, "b": 3}}',
        '{"name": "add", "arguments": "{\\"a\\": 2, \\"b\\": 3}"}',
        '{"type": "function", "function": {"name": "add", "arguments": "{\\"a\\": 2, \\"b\\": 3}"}}',
        '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
        '{"name": "add", "a": 2, "b": 3}',
        '{"name": "add", "arguments": {"a": "2", "b": 3.0}}',
        '{"name": "Add", "arguments": {"a": 2, "b": 3}}',
        '{"name": "functions.add", "arguments": {"a": 2, "b": 3}}',
        '[{"name": "add", "arguments": {"a": 2, "b": 3}}]',
        '{"tool_calls": [{"function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]}',
    ],
)
def test_accepts_common_shapes(text: str) -> None:
    assert one(text) == ("add", {"a": 2, "b": 3})


def test_list_of_calls_keeps_order() -> None:
    text = '[{"name": "search", "arguments": {"query": "x"}}, {"name": "add", "arguments": {"a": 1, "b": 2}}]'
    calls = parse_tool_calls(text, TOOLS)
    assert [c.name for c in calls] == ["search", "add"]
    assert calls[0].arguments == {"query": "x"}
    assert calls[0].id != calls[1].id


def test_tool_without_parameters_and_empty_argument_string() -> None:
    assert one('{"name": "now", "arguments": ""}') == ("now", {})
    assert one('{"name": "now"}') == ("now", {})


def test_openai_entry_roundtrip() -> None:
    (call,) = parse_tool_calls('{"id": "call_1", "name": "add", "arguments": {"a": 1, "b": 2}}', TOOLS)
    entry = call.to_openai()
    assert entry["id"] == "call_1" and entry["type"] == "function"
    assert json.loads(entry["function"]["arguments"]) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 5.",
        "",
        'Use JSON like {"a": 1} to configure it.',
        "```python\nprint({'x': 1})\n```",
    ],
)
def test_prose_is_content(text: str) -> None:
    resp = parse_response(text, TOOLS)
    assert resp.tool_calls == [] and resp.content == text


def test_final_answer_object_is_content() -> None:
    resp = parse_response('{"final_answer": "5"}', TOOLS)
    assert resp == parse_response('```json\n{"final_answer": "5"}\n```', TOOLS)
    assert resp.content == "5" and resp.tool_calls == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"name": "add", "arguments": {"a": 2, "b": 3}', "not valid"),
        ('```json\n{"name": "add", "arguments": {a: 2}}\n```', "not valid"),
        ('{"name": "multiply", "arguments": {"a": 2, "b": 3}}', "no tool named 'multiply'"),
        ('{"name": "add", "arguments": {"a": 2}}', "missing required argument(s): b"),
        ('{"name": "add", "arguments": [2, 3]}', "must be a JSON object"),
        ('{"name": "add", "arguments": "a=2, b=3"}', "string that is not valid JSON"),
        ('{"name": "add", "arguments": {"a": "two", "b": 3}}', "must be of type integer"),
        ('{"name": "add", "arguments": {"a": 2.5, "b": 3}}', "must be of type integer"),
        ('{"name": "search", "arguments": {"query": {"q": "x"}}}', "must be of type string"),
        ('{"arguments": {"a": 2, "b": 3}}', 'no "name"'),
        ('{"name": 42, "arguments": {}}', 'no "name"'),
        ('<tool_call>\n{"name": "add", "arguments": {"a": 2,\n', "not valid"),
        ('[{"name": "add", "arguments": {"a": 1, "b": 2}}, "oops"]', "expected a JSON object"),
    ],
)
def test_malformed_calls_raise_a_correction(text: str, fragment: str) -> None:
    with pytest.raises(MalformedToolCall) as info:
        parse_tool_calls(text, TOOLS)
    message = str(info.value)
    assert fragment in message
    assert message.startswith("Your tool call could not be used:")
    assert '{"name": "<tool name>", "arguments"' in message  # says the expected format
    assert "add(a: integer, b: integer)" in message  # lists the tools
    assert fragment in info.value.problem


def test_schema_alternatives() -> None:
    schema = tool_call_schema(TOOLS)
    alts = schema["anyOf"]
    assert [a["properties"].get("name", {}).get("const") for a in alts[:3]] == ["add", "search", "now"]
    assert alts[0]["properties"]["arguments"]["required"] == ["a", "b"]
    assert alts[-1]["required"] == ["final_answer"]
    only = tool_call_schema(TOOLS, only="search")
    assert only["properties"]["name"] == {"const": "search"}
    assert len(tool_call_schema(TOOLS, final_answer=False, parallel=True)["anyOf"]) == 4
    with pytest.raises(ValueError, match="not among the tools"):
        tool_call_schema(TOOLS, only="nope")
    with pytest.raises(ValueError, match="allow nothing"):
        tool_call_schema([], final_answer=False)
    with pytest.raises(TypeError, match="tool spec"):
        tool_call_schema([{"type": "function"}])


def test_schema_compiles_to_a_grammar() -> None:
    xllamacpp = pytest.importorskip("xllamacpp")
    grammar = xllamacpp.json_schema_to_grammar(json.dumps(tool_call_schema(TOOLS, parallel=True)))
    assert grammar.strip()
