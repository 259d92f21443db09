"""The LLM gateway: any model by litellm model string, or an :class:`LLM` object.

``"openai/gpt-4o-mini"``, ``"anthropic/…"``, ``"ollama/…"``, ``"hosted_vllm/…"`` go through
litellm; ``"local/qwen2.5-coder-1.5b"`` goes through litellm too, via agentos' in-process
llama.cpp provider. litellm is imported on first use, never at ``import agentos``, with its
cost-map fetch switched off so offline runs never block.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from agentos.errors import ContextLengthExceeded, ProviderError, UserError
from agentos.runtime.llm.types import LLM, Completion, Message, ToolCall

__all__ = ["ALLOW_MODEL_REQUESTS", "LiteLLMModel", "resolve_llm"]

_TRANSIENT_STATUS = {408, 409, 425, 429}

#: Test suites set this to False so nothing calls a real model by accident; requests to an
#: ``api_base`` on loopback (a test's own fake server) stay allowed.
ALLOW_MODEL_REQUESTS = True


def _check_allowed(model: str, api_base: Any) -> None:
    if ALLOW_MODEL_REQUESTS:
        return
    from urllib.parse import urlparse

    host = urlparse(str(api_base)).hostname if api_base else None
    if host in {"127.0.0.1", "localhost", "::1"}:
        return
    raise UserError(
        f"real model requests are disabled (agentos.runtime.llm.gateway.ALLOW_MODEL_REQUESTS is "
        f"False) but {model!r} was called; use a test LLM from agentos.testing, or the "
        "`allow_model_requests` fixture for tests that really need the model"
    )


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMModel:
    """An LLM reached through ``litellm.acompletion``.

    Args:
        model: a litellm model string, e.g. ``"openai/gpt-4o-mini"`` or ``"local/qwen2.5-coder-0.5b"``.
        **defaults: parameters sent with every call (``api_base``, ``temperature``, …).
    """

    def __init__(self, model: str, **defaults: Any) -> None:
        if "/" not in model:
            raise UserError(
                f"model {model!r} has no provider prefix: write it as litellm does, e.g. "
                "'openai/gpt-4o-mini', 'ollama/llama3' or 'local/qwen2.5-coder-1.5b'"
            )
        self.name = model
        self.defaults = defaults

    async def complete(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> Completion:
        """One completion through ``litellm.acompletion`` (see :meth:`LLM.complete`).

        litellm's own retries are off (the kernel's scheduler retries); the reply's cost comes
        from litellm's cost map (0 when the model is not in it). A remote model's ``energy_j``,
        ``flops`` and ``gco2`` are estimated from its tokens
        (:func:`agentos.runtime.energy.estimate_remote`); a ``local/`` model's are left for the
        kernel, which meters the call while it runs in this process.

        Raises:
            ProviderError: the provider failed; ``transient`` says whether a retry may help.
            UserError: real model requests are disabled (tests) and ``api_base`` is not loopback.
        """
        api_base = params.get("api_base") or self.defaults.get("api_base") or os.environ.get(
            "OPENAI_API_BASE"
        )
        _check_allowed(self.name, api_base)
        litellm = _litellm()
        if self.name.startswith("local/"):
            from agentos.runtime.llm.litellm_provider import register_local_provider

            register_local_provider()
        kwargs = {**self.defaults, **params}
        if not self.name.startswith("local/"):
            kwargs.setdefault("max_retries", 0)  # the kernel's scheduler owns retries
        if tools:
            kwargs["tools"] = tools
        try:
            response = await litellm.acompletion(model=self.name, messages=messages, **kwargs)
        except Exception as error:  # litellm raises many types; classify all of them
            raise _provider_error(self.name, error) from error
        return _to_completion(litellm, self.name, response, tools)


def _provider_error(model: str, error: Exception) -> ProviderError:
    status = getattr(error, "status_code", None)
    name = type(error).__name__
    transient = (
        isinstance(error, (TimeoutError, ConnectionError))
        or name in {"Timeout", "APIConnectionError", "RateLimitError", "ServiceUnavailableError",
                    "InternalServerError", "BadGatewayError"}
        or (isinstance(status, int) and (status in _TRANSIENT_STATUS or status >= 500))
    )
    if name == "ContextWindowExceededError":  # the agent loop trims its conversation on this
        return ContextLengthExceeded(f"{model}: {error}", status=400)
    hint = ""
    if name == "AuthenticationError":
        hint = " Set the provider's API key (e.g. OPENAI_API_KEY) or use a local model."
    elif name == "NotFoundError":
        hint = " Check the model name; `agentos models list` shows local models."
    return ProviderError(
        f"{model}: {name}: {error}{hint}",
        transient=transient,
        status=status if isinstance(status, int) else None,
    )


def _to_completion(
    litellm: Any, model: str, response: Any, tools: list[dict[str, Any]] | None
) -> Completion:
    """A :class:`Completion` from a litellm response; each tool call is parsed exactly once.

    ``local/`` models were parsed by the engine: its calls arrive as ``tool_calls`` and a reply
    it could not parse carries the correction in ``provider_specific_fields``. Other models'
    replies are read by the robust text parser only when they have tools but no ``tool_calls``.
    """
    choice = response.choices[0]
    message = choice.message
    calls: list[ToolCall] = []
    for raw in getattr(message, "tool_calls", None) or []:
        calls.append(_read_call(raw.id, raw.function.name, raw.function.arguments))
    content = message.content
    if model.startswith("local/"):
        from agentos.runtime.llm.litellm_provider import TOOL_ERROR_FIELD

        problem = (getattr(message, "provider_specific_fields", None) or {}).get(TOOL_ERROR_FIELD)
        if problem and not calls:
            calls = [ToolCall(f"call_{uuid.uuid4().hex[:8]}", "", {}, error=problem)]
            content = None
    elif not calls and tools and content:
        content, calls = _calls_from_text(content, tools)
    usage = getattr(response, "usage", None)
    try:
        cost = float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # model absent from the local cost map (local, custom): it costs nothing known
        cost = 0.0
    completion = Completion(
        content=content,
        tool_calls=calls,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost=cost,
        model=model,
        finish_reason=getattr(choice, "finish_reason", None),
    )
    if not model.startswith("local/"):  # the provider's hardware cannot be metered from here
        from agentos.runtime.energy import estimate_remote

        e = estimate_remote(completion.prompt_tokens, completion.completion_tokens)
        completion.energy_j, completion.flops, completion.gco2 = e.energy_j, e.flops, e.gco2
        completion.energy_method, completion.flops_method = e.energy_method, e.flops_method
    return completion


def _read_call(call_id: str | None, name: str | None, arguments: Any) -> ToolCall:
    call_id = call_id or f"call_{uuid.uuid4().hex[:8]}"
    if not name:
        return ToolCall(call_id, "", {}, error="the tool call has no function name")
    if isinstance(arguments, dict):
        return ToolCall(call_id, name, arguments)
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError as error:
        return ToolCall(
            call_id, name, {}, error=f"arguments of {name} are not valid JSON ({error}): {arguments!r}"
        )
    if not isinstance(parsed, dict):
        return ToolCall(call_id, name, {}, error=f"arguments of {name} must be a JSON object")
    return ToolCall(call_id, name, parsed)


def _calls_from_text(content: str, tools: list[dict[str, Any]]) -> tuple[str | None, list[ToolCall]]:
    """Tool calls small models write as JSON text, read by the robust parser.

    A reply that tries to call a tool but cannot be used becomes one :class:`ToolCall` with
    ``error`` set to a correction message for the model.
    """
    from agentos.runtime.llm import toolcalls

    try:
        parsed = toolcalls.parse_response(content, tools)
    except toolcalls.MalformedToolCall as error:
        return None, [ToolCall(f"call_{uuid.uuid4().hex[:8]}", "", {}, error=str(error))]
    return parsed.content, [ToolCall(c.id, c.name, dict(c.arguments)) for c in parsed.tool_calls]


def resolve_llm(model: str | LLM, **defaults: Any) -> LLM:
    """An :class:`LLM` for a model string or object.

    Raises:
        UserError: ``model`` is neither a litellm model string nor an object with ``complete``.
    """
    if isinstance(model, str):
        return LiteLLMModel(model, **defaults)
    if isinstance(model, LLM):
        return model
    raise UserError(
        f"llm must be a litellm model string or an object with async complete(), got {model!r}"
    )
