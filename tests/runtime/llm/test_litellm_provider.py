"""The ``local/`` litellm provider: each tool call is parsed once, streams stop with their reader.

The engine is replaced by one that answers with fixed llama.cpp text, so these need no model;
the tool-call handling on that text is the real :class:`LocalEngine` code. The same paths with
the real model are in ``test_local_slow.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentos.runtime.llm import engine as engine_module
from agentos.runtime.llm import gateway, litellm_provider, toolcalls
from agentos.runtime.llm.engine import LocalEngine
from agentos.runtime.llm.gateway import LiteLLMModel

ADD = {
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
}


class CannedEngine:
    """Replies with fixed text, handled by LocalEngine's own tool-call code."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.closed_streams = 0

    def chat(self, messages: Any, *, tools: Any = None, tool_choice: Any = None, **options: Any) -> dict[str, Any]:
        result = {
            "id": "x", "created": 0, "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        if tools:
            LocalEngine._apply_tools(result, tools)
        return result

    def chat_stream(self, messages: Any, **options: Any) -> Iterator[dict[str, Any]]:
        try:
            for word in self.text.split():
                yield {"id": "x", "created": 0, "model": "m", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
        finally:
            self.closed_streams += 1


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the tool-call parser reads, wherever it is called from."""
    seen: list[str] = []
    real = toolcalls.parse_response

    def counting(text: str, tools: Any) -> Any:
        seen.append(text)
        return real(text, tools)

    monkeypatch.setattr(toolcalls, "parse_response", counting)
    monkeypatch.setattr(engine_module, "parse_response", counting)
    return seen


def _complete(monkeypatch: pytest.MonkeyPatch, text: str) -> Any:
    monkeypatch.setattr(gateway, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setattr(litellm_provider, "get_engine", lambda model: CannedEngine(text))
    model = LiteLLMModel("local/canned")
    return asyncio.run(model.complete([{"role": "user", "content": "add 2 and 3"}], [ADD]))


def test_a_tool_call_is_parsed_once(monkeypatch: pytest.MonkeyPatch, parses: list[str]) -> None:
    completion = _complete(monkeypatch, '{"name": "add", "arguments": {"a": 2, "b": 3}}')
    assert [(c.name, c.arguments, c.error) for c in completion.tool_calls] == [("add", {"a": 2, "b": 3}, None)]
    assert len(parses) == 1


def test_a_final_answer_that_looks_like_a_call_stays_an_answer(
    monkeypatch: pytest.MonkeyPatch, parses: list[str]
) -> None:
    answer = '{"name": "add", "arguments": {"a": 1, "b": 1}}'
    completion = _complete(monkeypatch, json.dumps({"final_answer": answer}))
    assert completion.content == answer and completion.tool_calls == []
    assert len(parses) == 1  # parsing the answer's text again would have turned it into a call


def test_an_unparsable_call_comes_back_as_the_engines_correction(
    monkeypatch: pytest.MonkeyPatch, parses: list[str]
) -> None:
    completion = _complete(monkeypatch, '{"name": "add", "arguments": {"a": 2')  # cut off
    [call] = completion.tool_calls
    assert call.error is not None and call.error.startswith("Your tool call could not be used")
    assert completion.content is None
    assert len(parses) == 1  # read from provider_specific_fields, not parsed again


def test_a_stream_read_partly_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    canned = CannedEngine("one two three four five six")
    monkeypatch.setattr(litellm_provider, "get_engine", lambda model: canned)

    async def read_two() -> list[str]:
        words = []
        chunks = litellm_provider.LocalProvider().astreaming(
            model="canned", messages=[{"role": "user", "content": "count"}], optional_params={}
        )
        async for chunk in chunks:
            words.append(chunk["text"])
            if len(words) == 2:
                break
        await chunks.aclose()
        return words

    assert asyncio.run(read_two()) == ["one ", "two "]
    assert canned.closed_streams == 1  # the engine's stream was closed, so its decoding stops


def test_provider_takes_named_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litellm_provider, "get_engine", lambda model: CannedEngine("hello"))
    response = litellm_provider.LocalProvider().completion(
        model="canned", messages=[{"role": "user", "content": "hi"}],
        optional_params={"max_tokens": 5, "user": "dropped"}, api_base=None, timeout=3,
    )
    assert response.choices[0].message.content == "hello"
    assert response.model == "local/canned"
