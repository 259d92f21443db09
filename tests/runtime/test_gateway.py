"""The litellm path of the gateway against a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos import Agent, Kernel, load_settings, tool
from agentos.errors import ProviderError, UserError
from agentos.runtime.llm.gateway import LiteLLMModel
from tests.fake_openai import FakeOpenAI, Reply


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def _model(fake: FakeOpenAI) -> LiteLLMModel:
    return LiteLLMModel("openai/fake-model", api_base=fake.base_url, api_key="sk-test",
                        max_retries=0)


@tool
def square(x: int) -> int:
    """Square a number."""
    return x * x


def test_text_reply_with_usage(fake: FakeOpenAI) -> None:
    fake.queue("hello there")
    out = asyncio.run(_model(fake).complete([{"role": "user", "content": "hi"}]))
    assert out.content == "hello there"
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)
    assert fake.requests[0]["messages"] == [{"role": "user", "content": "hi"}]


def test_native_tool_calls_and_bad_json_arguments(fake: FakeOpenAI) -> None:
    fake.queue(Reply(tool_calls=[
        {"id": "c1", "type": "function", "function": {"name": "square", "arguments": '{"x": 4}'}},
        {"id": "c2", "type": "function", "function": {"name": "square", "arguments": '{"x": 4'}},
    ]))
    out = asyncio.run(_model(fake).complete([{"role": "user", "content": "hi"}], [square.spec()]))
    assert out.tool_calls[0].name == "square" and out.tool_calls[0].arguments == {"x": 4}
    assert out.tool_calls[1].error and "not valid JSON" in out.tool_calls[1].error
    assert fake.requests[0]["tools"][0]["function"]["name"] == "square"


def test_tool_call_written_as_text_is_parsed(fake: FakeOpenAI) -> None:
    fake.queue('```json\n{"name": "square", "arguments": {"x": 9}}\n```')
    out = asyncio.run(_model(fake).complete([{"role": "user", "content": "hi"}], [square.spec()]))
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("square", {"x": 9})]
    assert out.content is None


@pytest.mark.parametrize(("status", "transient"), [(429, True), (503, True), (500, True),
                                                   (401, False), (400, False)])
def test_http_errors_are_classified(fake: FakeOpenAI, status: int, transient: bool) -> None:
    fake.queue(Reply(status=status))
    with pytest.raises(ProviderError) as info:
        asyncio.run(_model(fake).complete([{"role": "user", "content": "hi"}]))
    assert info.value.transient is transient


def test_agent_over_http_retries_a_503_and_finishes(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.queue(
        Reply(status=503),
        Reply(tool_calls=[{"id": "c1", "type": "function",
                           "function": {"name": "square", "arguments": json.dumps({"x": 12})}}]),
        "144",
    )
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    kernel.retry = type(kernel.retry)(max_retries=2, base_delay=0.01)
    result = Agent("sq", llm=_model(fake), tools=[square]).run("12 squared?", kernel=kernel)
    assert result.ok and result.answer == "144"
    rows = kernel.store.syscalls(result.run_id)
    assert [(r.kind, r.attempts) for r in rows] == [("llm", 2), ("tool", 1), ("llm", 1)]
    assert rows[0].prompt_tokens == 11


def test_model_string_without_provider_is_a_user_error() -> None:
    with pytest.raises(UserError, match="provider prefix"):
        LiteLLMModel("gpt-4o")


def test_real_model_requests_are_banned_in_tests() -> None:
    with pytest.raises(UserError, match="real model requests are disabled"):
        asyncio.run(LiteLLMModel("openai/gpt-4o-mini").complete([{"role": "user", "content": "hi"}]))


def test_a_context_window_error_becomes_context_length_exceeded() -> None:
    import litellm

    from agentos.errors import ContextLengthExceeded
    from agentos.runtime.llm.gateway import _provider_error

    error = _provider_error("openai/x", litellm.ContextWindowExceededError(
        message="too long", model="x", llm_provider="openai"))
    assert isinstance(error, ContextLengthExceeded) and not error.transient
    other = _provider_error("openai/x", litellm.BadRequestError(
        message="bad", model="x", llm_provider="openai"))
    assert not isinstance(other, ContextLengthExceeded)
