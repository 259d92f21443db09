"""The real Qwen2.5-Coder-0.5B model: in-process engine, litellm provider and HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentos.runtime.llm.engine import ContextLengthExceeded, LocalEngine, get_engine
from agentos.runtime.llm.litellm_provider import register_local_provider
from agentos.runtime.llm.models import install
from agentos.runtime.llm.server import LocalServer, serve

pytestmark = pytest.mark.slow

MODEL = "qwen2.5-coder-0.5b"
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers and return the sum.",
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
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
]


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    install(MODEL, progress=False)  # a no-op when the verified file is already there
    return get_engine(MODEL)


def test_chat_completion(engine: LocalEngine) -> None:
    result = engine.chat(
        [{"role": "user", "content": "Reply with the single word: pong"}], max_tokens=8, temperature=0
    )
    assert result["object"] == "chat.completion"
    assert "pong" in result["choices"][0]["message"]["content"].lower()
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 8
    assert engine.n_parallel >= 1


def test_streaming_and_parallel_slots(engine: LocalEngine) -> None:
    chunks = list(engine.chat_stream([{"role": "user", "content": "Count from 1 to 5."}], max_tokens=24))
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    assert "3" in text and len(chunks) > 3
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                engine.chat([{"role": "user", "content": "Name a fruit."}], max_tokens=8)
            )
        )
        for _ in range(engine.n_parallel + 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == engine.n_parallel + 1


def test_over_context_is_a_clear_error(engine: LocalEngine) -> None:
    with pytest.raises(ContextLengthExceeded, match="larger n_ctx"):
        engine.chat([{"role": "user", "content": "hello " * (engine.n_ctx + 100)}])
    assert engine.chat([{"role": "user", "content": "hi"}], max_tokens=4)["choices"]


def _run_tool(name: str, args: dict[str, Any]) -> str:
    if name == "add":
        return str(args["a"] + args["b"])
    return json.dumps({"city": args["city"], "forecast": "sunny", "celsius": 21})


def test_tool_call_to_a_correct_answer_through_litellm(engine: LocalEngine) -> None:
    import litellm

    register_local_provider()
    register_local_provider()  # idempotent

    async def agent() -> tuple[list[str], str]:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "Use the tools. Answer with the number only."},
            {"role": "user", "content": "What is 1234 plus 4321?"},
        ]
        called: list[str] = []
        for _ in range(4):
            resp = await litellm.acompletion(
                model=f"local/{MODEL}", messages=messages, tools=TOOLS, temperature=0, seed=1
            )
            msg = resp.choices[0].message
            if not msg.tool_calls:
                return called, msg.content or ""
            assert resp.choices[0].finish_reason == "tool_calls"
            messages.append(msg.model_dump(exclude_none=True))
            for tc in msg.tool_calls:
                called.append(tc.function.name)
                out = _run_tool(tc.function.name, json.loads(tc.function.arguments))
                messages.append({"role": "tool", "tool_call_id": tc.id, "content": out})
        raise AssertionError(f"no final answer after 4 turns: {messages}")

    called, answer = asyncio.run(agent())
    assert called[0] == "add"
    assert "5555" in answer.replace(",", "")


def test_tool_call_streams_through_litellm(engine: LocalEngine) -> None:
    import litellm

    register_local_provider()
    chunks = list(
        litellm.completion(
            model=f"local/{MODEL}",
            messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
            tools=TOOLS,
            temperature=0,
            stream=True,
        )
    )
    msg = litellm.stream_chunk_builder(chunks).choices[0].message
    assert msg.tool_calls[0].function.name == "get_weather"
    assert json.loads(msg.tool_calls[0].function.arguments)["city"].lower() == "oslo"


@pytest.fixture(scope="module")
def http_server(engine: LocalEngine) -> Iterator[LocalServer]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = serve(MODEL, port=port, n_parallel=2, n_ctx=2048, block=False)
    yield server
    server.close()


def test_http_server_with_the_openai_client(http_server: LocalServer) -> None:
    import openai

    client = openai.OpenAI(base_url=http_server.base_url, api_key="none")
    assert [m.id for m in client.models.list().data] == [MODEL]
    resp = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
    )
    assert resp.choices[0].message.content and resp.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count to 5."}], max_tokens=16, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text


def test_http_server_with_litellm(http_server: LocalServer) -> None:
    import litellm

    resp = litellm.completion(
        model=f"openai/{MODEL}",
        api_base=http_server.base_url,
        api_key="none",
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=8,
    )
    assert resp.choices[0].message.content
    chunks = list(
        litellm.completion(
            model=f"openai/{MODEL}",
            api_base=http_server.base_url,
            api_key="none",
            messages=[{"role": "user", "content": "Count to 5."}],
            max_tokens=16,
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_http_over_context_fails_clearly_and_the_server_keeps_serving(http_server: LocalServer) -> None:
    import openai

    client = openai.OpenAI(base_url=http_server.base_url, api_key="none", max_retries=0)
    ok: list[str] = []

    def normal() -> None:
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Write a haiku."}], max_tokens=24
        )
        ok.append(r.choices[0].message.content or "")

    worker = threading.Thread(target=normal)
    worker.start()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello " * 3000}], max_tokens=8
        )
    assert "exceeds the available context size" in str(info.value)
    worker.join()
    normal()
    assert len(ok) == 2 and all(ok)


def test_a_stream_stopped_early_cancels_decoding_and_frees_the_slot() -> None:
    import time

    from agentos.runtime.llm.engine import EngineConfig

    engine = LocalEngine(MODEL, EngineConfig(n_parallel=1, n_ctx=1024, metrics=True))
    try:
        stream = engine.chat_stream(
            [{"role": "user", "content": "Count from 1 to 500, one number per line."}], max_tokens=800
        )
        for i, _ in enumerate(stream):
            if i == 3:
                break
        stream.close()
        assert not [t for t in threading.enumerate() if t.name == "agentos-local-stream"]
        deadline = time.monotonic() + 30  # llama.cpp refreshes its counters in its own loop
        while engine.metrics()["requests_processing"] and time.monotonic() < deadline:
            time.sleep(0.2)
        counters = engine.metrics()
        assert counters["requests_processing"] == 0  # the only slot is free again
        assert counters["tokens_predicted_total"] < 100  # cancelled, not decoded to 800 tokens
    finally:
        engine.close()


def test_the_kernel_finds_the_loaded_engines_slots(
    engine: LocalEngine, tmp_path, allow_model_requests: None  # type: ignore[no-untyped-def]
) -> None:
    from agentos import Kernel, load_settings
    from agentos.runtime.llm.engine import engine_slots, loaded_engine

    assert loaded_engine(MODEL) is engine and loaded_engine(engine.path) is engine
    assert engine_slots(MODEL) == engine.n_parallel
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_MAX_CONCURRENCY": "7"}))
    run = kernel.start_run("slots")
    asyncio.run(kernel.llm(run, "a", f"local/{MODEL}", [{"role": "user", "content": "hi"}], max_tokens=2))
    assert kernel.scheduler.pool_config(f"llm:local/{MODEL}").max_concurrency == engine.n_parallel
    kernel.close()
