"""The litellm provider ``local``: ``local/<model>`` model strings run on the in-process engine.

After :func:`register_local_provider`, ``litellm.acompletion(model="local/qwen2.5-coder-0.5b",
messages=..., tools=...)`` runs on the process's :func:`~agentos.runtime.llm.engine.get_engine`
for that model (engines load on first use). :class:`LocalProvider` maps litellm's calls onto
:class:`~agentos.runtime.llm.engine.LocalEngine` and the engine's errors onto litellm's, so that
litellm's retry and error classification see what happened.

A tool call the engine could not parse comes back as text content with
``message.provider_specific_fields["agentos_tool_error"]`` holding the correction for the model;
the gateway reads it from there rather than parsing the text again.

This module imports litellm; :mod:`agentos.runtime.llm.gateway` imports it only when a
``local/`` model is first called.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeVar

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the cost map

import litellm  # noqa: E402
from litellm import CustomLLM  # noqa: E402
from litellm.llms.custom_llm import CustomLLMError  # noqa: E402

from agentos.errors import ProviderError, UserError  # noqa: E402
from agentos.runtime.llm.engine import (  # noqa: E402
    SAMPLING_OPTIONS,
    ContextLengthExceeded,
    get_engine,
)

__all__ = ["PROVIDER", "TOOL_ERROR_FIELD", "LocalProvider", "register_local_provider"]

#: The litellm provider name: model strings ``local/<catalogue name or .gguf path>``.
PROVIDER = "local"
#: Key in ``message.provider_specific_fields`` for a tool call that could not be parsed.
TOOL_ERROR_FIELD = "agentos_tool_error"

_REGISTER_LOCK = threading.Lock()
T = TypeVar("T")


class LocalProvider(CustomLLM):  # type: ignore[misc]
    """litellm's handler for ``local/<catalogue name or .gguf path>``, backed by LocalEngine.

    litellm calls these methods with keyword arguments; only ``model``, ``messages`` and
    ``optional_params`` (the request's tools, tool choice and sampling options) are used.
    Options llama.cpp does not take (provider extras litellm passes through) are dropped.

    Every method raises:
        litellm.ContextWindowExceededError: the conversation does not fit in one slot.
        CustomLLMError: status 400 for misuse (bad options or tool specs, unknown or missing
            model), the engine's status (500 if unknown) for llama.cpp failures.
    """

    def completion(  # type: ignore[override]
        self,
        model: str,
        messages: list[Any],
        optional_params: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> litellm.ModelResponse:
        """One completion as a ``litellm.ModelResponse``."""
        tools, tool_choice, options = _split(optional_params or {})
        result = _translate_errors(
            model,
            lambda: get_engine(model).chat(messages, tools=tools, tool_choice=tool_choice, **options),
        )
        return _to_response(model, result)

    async def acompletion(  # type: ignore[override]
        self,
        model: str,
        messages: list[Any],
        optional_params: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> litellm.ModelResponse:
        """:meth:`completion` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.completion, model, messages, optional_params)

    def streaming(  # type: ignore[override]
        self,
        model: str,
        messages: list[Any],
        optional_params: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> Iterator[dict[str, Any]]:
        """The completion as litellm ``GenericStreamingChunk`` dicts; closing it cancels decoding."""
        yield from _generic_stream(model, messages, optional_params or {})

    async def astreaming(  # type: ignore[override]
        self,
        model: str,
        messages: list[Any],
        optional_params: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """:meth:`streaming` driven from a worker thread; a consumer that stops early cancels it."""
        chunks = _generic_stream(model, messages, optional_params or {})
        done = object()
        try:
            while True:
                item = await asyncio.to_thread(next, chunks, done)
                if item is done:
                    return
                yield item
        finally:
            await asyncio.to_thread(chunks.close)  # stops the engine's decoding thread


def _split(optional_params: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """``(tools, tool_choice, sampling options)`` from litellm's ``optional_params``."""
    options = dict(optional_params)
    tools = options.pop("tools", None)
    tool_choice = options.pop("tool_choice", None)
    return tools, tool_choice, {k: v for k, v in options.items() if k in SAMPLING_OPTIONS}


def _translate_errors(model: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ContextLengthExceeded as exc:
        raise litellm.ContextWindowExceededError(
            message=str(exc), model=model, llm_provider=PROVIDER
        ) from exc
    except ProviderError as exc:
        raise CustomLLMError(status_code=exc.status or 500, message=str(exc)) from exc
    except UserError as exc:
        raise CustomLLMError(status_code=400, message=str(exc)) from exc


def _to_response(model: str, result: dict[str, Any]) -> litellm.ModelResponse:
    result = copy.deepcopy(result)
    result["model"] = f"{PROVIDER}/{model}"
    for choice in result.get("choices", []):
        problem = choice["message"].pop("agentos_tool_error", None)
        if problem:  # the agent loop sends it back to the model as a correction
            choice["message"]["provider_specific_fields"] = {TOOL_ERROR_FIELD: problem}
    return litellm.ModelResponse(**result)


def _to_generic(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAI chunk as a litellm ``GenericStreamingChunk`` (at most one tool call)."""
    choice = (chunk.get("choices") or [{}])[0]
    delta = choice.get("delta") or {}
    finish = choice.get("finish_reason")
    usage = chunk.get("usage")
    tool_calls = delta.get("tool_calls") or []
    out: dict[str, Any] = {
        "text": delta.get("content") or "",
        "tool_use": None,
        "is_finished": finish is not None,
        "finish_reason": finish or "",
        "usage": (
            {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
            if usage
            else None
        ),
        "index": 0,
    }
    if tool_calls:
        tc = tool_calls[0]
        out["tool_use"] = {
            "id": tc["id"],
            "type": "function",
            "function": tc["function"],
            "index": tc.get("index", 0),
        }
    return out


def _generic_stream(
    model: str, messages: list[Any], optional_params: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    tools, tool_choice, options = _split(optional_params)
    engine = _translate_errors(model, lambda: get_engine(model))
    chunks = engine.chat_stream(messages, tools=tools, tool_choice=tool_choice, **options)
    held: dict[str, Any] | None = None  # the finish chunk, waiting for the usage chunk
    try:
        while True:
            chunk = _translate_errors(model, lambda: next(chunks, None))
            if chunk is None:
                break
            if held is not None:
                if not chunk.get("choices") and chunk.get("usage"):
                    chunk = {**held, "usage": chunk["usage"]}
                else:
                    yield _to_generic(held)
                held = None
            choice = (chunk.get("choices") or [{}])[0]
            if choice.get("finish_reason") and not chunk.get("usage"):
                held = chunk
                continue
            calls = (choice.get("delta") or {}).get("tool_calls") or []
            yield _to_generic(chunk)
            for tc in calls[1:]:  # one tool call per generic chunk; litellm assembles them
                one = {"index": 0, "delta": {"tool_calls": [tc]}, "finish_reason": None}
                yield _to_generic({**chunk, "choices": [one], "usage": None})
        if held is not None:
            yield _to_generic(held)
    finally:
        chunks.close()  # a consumer that stopped early cancels the engine's request


def register_local_provider() -> None:
    """Register the ``local`` litellm provider (idempotent, thread-safe).

    Afterwards ``litellm.completion/acompletion(model="local/qwen2.5-coder-0.5b", ...)`` runs on
    the process's :func:`~agentos.runtime.llm.engine.get_engine` for that model.
    """
    with _REGISTER_LOCK:
        if any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
            return
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": PROVIDER, "custom_handler": LocalProvider()},
        ]
        from litellm.utils import custom_llm_setup

        custom_llm_setup()
