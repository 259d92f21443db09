"""The local LLM engine: a GGUF model served in-process by llama.cpp (through xllamacpp).

:class:`LocalEngine` loads one model with ``n_parallel`` decoding slots (continuous batching, so
that many requests run at once), the prompt cache on, and Qwen2.5-Coder's recommended sampling
(temperature 0.7, top-p 0.8, top-k 20, repetition penalty 1.05) plus a default ``max_tokens`` cap,
so that a small model cannot run away. Each slot gets ``n_ctx`` tokens of context.

With ``tools`` a request is decoded under a JSON schema (a llama.cpp grammar) that allows exactly
one call of a known tool, or ``{"final_answer": "..."}``; the text is parsed by
:mod:`agentos.runtime.llm.toolcalls` and returned as OpenAI ``tool_calls``.

:func:`get_engine` keeps one engine per model file per process; :func:`loaded_engine` finds it
without loading anything. The litellm provider that makes ``local/<model>`` model strings work
lives in :mod:`agentos.runtime.llm.litellm_provider`.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.errors import ProviderError, UserError
from agentos.runtime.llm.models import CATALOGUE, resolve
from agentos.runtime.llm.toolcalls import (
    MalformedToolCall,
    format_instructions,
    parse_response,
    tool_call_schema,
)

if TYPE_CHECKING:
    import xllamacpp

__all__ = [
    "ContextLengthExceeded",
    "EngineConfig",
    "LocalEngine",
    "SAMPLING_OPTIONS",
    "build_params",
    "close_engines",
    "engine_slots",
    "get_engine",
    "loaded_engine",
]


class ContextLengthExceeded(ProviderError):
    """A request does not fit in one slot's context (not transient: retrying will not help)."""


@dataclass(frozen=True)
class EngineConfig:
    """How a local model is loaded and sampled.

    Attributes:
        n_ctx: context tokens per slot (the KV cache holds ``n_ctx * n_parallel`` tokens).
        n_parallel: decoding slots, i.e. requests served at once.
        n_threads: CPU threads for decoding and prompt processing (default: all cores).
        max_tokens: default cap on generated tokens when a request does not set one.
        temperature, top_p, top_k, repeat_penalty, repeat_last_n: default sampling.
        tool_temperature: default temperature for requests with tools (calls want precision).
        metrics: keep llama.cpp's counters (tokens predicted, requests processing, ...) for
            :meth:`LocalEngine.metrics`.
    """

    n_ctx: int = 4096
    n_parallel: int = 2
    n_threads: int | None = None
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    repeat_penalty: float = 1.05
    repeat_last_n: int = 64
    tool_temperature: float = 0.2
    metrics: bool = False

    def __post_init__(self) -> None:
        if self.n_ctx < 256:
            raise UserError(f"n_ctx must be at least 256 tokens per slot, got {self.n_ctx}")
        if self.n_parallel < 1:
            raise UserError(f"n_parallel must be at least 1, got {self.n_parallel}")
        if self.n_threads is not None and self.n_threads < 1:
            raise UserError(f"n_threads must be at least 1, got {self.n_threads}")
        if self.max_tokens < 1:
            raise UserError(f"max_tokens must be at least 1, got {self.max_tokens}")


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise UserError(
            'local models need xllamacpp: pip install "agentos-kit[local]"'
        ) from exc
    return xllamacpp


def build_params(
    path: Path,
    config: EngineConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    alias: str | None = None,
) -> xllamacpp.CommonParams:
    """xllamacpp parameters for ``path`` under ``config``; with ``port`` llama.cpp also serves HTTP.

    Raises:
        UserError: xllamacpp is not installed.
    """
    xl = _import_xllamacpp()
    params = xl.CommonParams()
    params.model.path = str(path)
    params.n_parallel = config.n_parallel
    params.n_ctx = config.n_ctx * config.n_parallel  # llama.cpp splits it across slots
    params.n_batch = min(2048, config.n_ctx)
    params.cache_prompt = True
    params.cont_batching = True
    params.ctx_shift = False  # over-long prompts fail clearly instead of silently losing text
    params.n_predict = config.max_tokens
    threads = config.n_threads or os.cpu_count() or 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.sampling.temp = config.temperature
    params.sampling.top_p = config.top_p
    params.sampling.top_k = config.top_k
    params.sampling.penalty_repeat = config.repeat_penalty
    params.sampling.penalty_last_n = config.repeat_last_n
    params.verbosity = -1 if os.environ.get("AGENTOS_LLAMA_VERBOSE") is None else 3
    params.warmup = True
    params.endpoint_metrics = config.metrics
    if alias:
        params.model_alias = {alias}
    if port is not None:
        params.port = port
        params.hostnames = [host or "127.0.0.1"]
    return params


def _raise_for_error(result: Mapping[str, Any], model: str, n_ctx: int) -> None:
    err = result.get("error")
    if not err:
        return
    if isinstance(err, str):
        err = {"message": err}
    code = err.get("code")
    message = str(err.get("message", err))
    if err.get("type") == "exceed_context_size_error":
        raise ContextLengthExceeded(
            f"local model {model}: {message}. Each request gets {n_ctx} tokens of context: "
            f"shorten the conversation or load the model with a larger n_ctx.",
            status=400,
        )
    raise ProviderError(
        f"local model {model} failed: {message}",
        status=code if isinstance(code, int) else None,
        transient=isinstance(code, int) and code >= 500,
    )


def _tool_messages(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    only: str | None,
    *,
    final_answer: bool = True,
) -> list[dict[str, Any]]:
    """Rewrite a conversation for JSON tool calling: instructions in the system message,
    earlier assistant tool calls as the JSON the model is asked to write."""
    instructions = format_instructions(tools, final_answer=final_answer and only is None)
    if only is not None:
        instructions += f"\nYou must call the tool {only} now."
    out: list[dict[str, Any]] = []
    for msg in messages:
        m = dict(msg)
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                fn = tc.get("function", tc)
                args = fn.get("arguments", {})
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError:
                        pass
                calls.append({"name": fn.get("name"), "arguments": args})
            m = {"role": "assistant", "content": json.dumps(calls[0] if len(calls) == 1 else calls)}
        elif m.get("role") == "tool":
            m = {"role": "tool", "content": _text(m.get("content"))}
        out.append(m)
    if out and out[0].get("role") == "system":
        out[0] = {"role": "system", "content": f"{_text(out[0].get('content'))}\n\n{instructions}"}
    else:
        out.insert(0, {"role": "system", "content": f"You are a helpful assistant.\n\n{instructions}"})
    return out


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return json.dumps(content)


#: The request options :meth:`LocalEngine.chat` accepts (llama.cpp's OpenAI-compatible subset).
SAMPLING_OPTIONS = (
    "max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "presence_penalty",
    "frequency_penalty", "repeat_penalty", "min_p", "response_format", "logit_bias", "n_probs",
)  # fmt: skip


class LocalEngine:
    """One GGUF model loaded in-process with ``n_parallel`` slots. Thread-safe.

    Use :func:`get_engine` to share one engine per model per process; the constructor always
    loads a new copy of the weights.
    """

    def __init__(self, model: str | os.PathLike[str], config: EngineConfig | None = None) -> None:
        """Load ``model`` (a catalogue name or a path to a .gguf file).

        Raises:
            UnknownModel, ModelNotInstalled, ModelCorrupt: see :func:`models.resolve`.
            UserError: xllamacpp is missing.
            ProviderError: llama.cpp could not load the file.
        """
        self.config = config or EngineConfig()
        self.path = resolve(model)
        text = os.fspath(model)
        self.name = text if text in CATALOGUE else self.path.stem
        xl = _import_xllamacpp()
        started = time.perf_counter()
        try:
            self._server: Any = xl.Server(build_params(self.path, self.config))
        except RuntimeError as exc:
            raise ProviderError(f"llama.cpp could not load {self.path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self._closed = False

    @property
    def n_parallel(self) -> int:
        """How many requests this engine decodes at once (one scheduler slot each)."""
        return self.config.n_parallel

    @property
    def n_ctx(self) -> int:
        """Context tokens available to one request."""
        return self.config.n_ctx

    def metrics(self) -> dict[str, float]:
        """llama.cpp's counters, e.g. ``requests_processing``, ``tokens_predicted_total``.

        They are refreshed by llama.cpp's own loop, so they may lag a request by a moment.

        Raises:
            UserError: the engine was loaded without ``EngineConfig(metrics=True)``, or closed.
        """
        text = self._server_or_raise().handle_metrics()
        if text.lstrip().startswith("{"):
            raise UserError(f"{self!r} keeps no metrics: load it with EngineConfig(metrics=True)")
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("llamacpp:"):
                name, _, value = line.removeprefix("llamacpp:").partition(" ")
                values[name] = float(value)
        return values

    def __repr__(self) -> str:
        return f"LocalEngine({self.name!r}, n_parallel={self.n_parallel}, n_ctx={self.n_ctx})"

    # ------------------------------------------------------------------------------------
    # requests

    def _request(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: Any,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Build the llama.cpp request (schema-constrained when tools are in use)."""
        unknown = set(options) - set(SAMPLING_OPTIONS)
        if unknown:
            raise UserError(
                f"unsupported option(s) for the local model: {', '.join(sorted(unknown))}; "
                f"supported: {', '.join(SAMPLING_OPTIONS)}"
            )
        req: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        req.setdefault("max_tokens", self.config.max_tokens)
        only: str | None = None
        if tools and tool_choice != "none":
            if isinstance(tool_choice, Mapping):
                only = tool_choice.get("function", {}).get("name")
            final = tool_choice != "required" and only is None
            try:
                schema = tool_call_schema(tools, final_answer=final, only=only)
            except (TypeError, ValueError) as exc:
                raise UserError(f"bad tools or tool_choice for the local model: {exc}") from exc
            req["messages"] = _tool_messages(messages, tools, only, final_answer=final)
            req["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tool_call", "schema": schema},
            }
            req.setdefault("temperature", self.config.tool_temperature)
        else:
            req["messages"] = [dict(m) for m in messages]
        return req

    def _server_or_raise(self) -> Any:
        if self._closed:
            raise UserError(f"{self!r} was closed; get a new one with get_engine()")
        return self._server

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """One chat completion, as an OpenAI ``chat.completion`` dict (with ``usage``).

        With ``tools`` (and ``tool_choice`` not ``"none"``) the reply is decoded under the
        tool-call schema; a call comes back as ``message.tool_calls`` with
        ``finish_reason="tool_calls"``, a final answer as ``message.content``. If the reply cannot
        be parsed (e.g. cut off by ``max_tokens``) the raw text is returned as content and
        ``message["agentos_tool_error"]`` holds a correction message for the model.

        Args:
            options: ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop``, ``seed``,
                ``presence_penalty``, ``frequency_penalty``, ``repeat_penalty``, ``min_p``,
                ``response_format``, ``logit_bias``, ``n_probs``.

        Raises:
            ContextLengthExceeded: the prompt does not fit in one slot's context.
            ProviderError: llama.cpp rejected or failed the request.
            UserError: an unsupported option, malformed tool specs, or the engine was closed.
        """
        req = self._request(messages, tools, tool_choice, options)
        result = self._server_or_raise().handle_chat_completions(req)
        _raise_for_error(result, self.name, self.n_ctx)
        result["model"] = self.name
        if tools and tool_choice != "none":
            self._apply_tools(result, tools)
        return result

    @staticmethod
    def _apply_tools(result: dict[str, Any], tools: Sequence[Mapping[str, Any]]) -> None:
        choice = result["choices"][0]
        message = choice["message"]
        text = message.get("content") or ""
        try:
            parsed = parse_response(text, tools)
        except MalformedToolCall as exc:
            message["agentos_tool_error"] = str(exc)
            return
        if parsed.tool_calls:
            message["content"] = None
            message["tool_calls"] = [c.to_openai() for c in parsed.tool_calls]
            choice["finish_reason"] = "tool_calls"
        else:
            message["content"] = parsed.content

    def chat_stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Iterator[dict[str, Any]]:
        """Stream a chat completion as OpenAI ``chat.completion.chunk`` dicts.

        Text streams token by token. With tools the call is decoded whole (it must be parsed
        before it can be returned) and then sent as one ``tool_calls`` delta. The last chunk
        carries ``usage``.

        Decoding runs in a worker thread. When the consumer stops early (``break``, ``close()``,
        or the generator is garbage-collected) the request is cancelled: llama.cpp stops at its
        next token, frees the slot, and the worker thread has ended when ``close()`` returns.

        Raises:
            ContextLengthExceeded, ProviderError, UserError: as :meth:`chat` (when iterated).
        """
        if tools and tool_choice != "none":
            yield from _as_chunks(self.chat(messages, tools=tools, tool_choice=tool_choice, **options))
            return
        req = self._request(messages, None, None, options)
        req["stream"] = True
        req["stream_options"] = {"include_usage": True}
        server = self._server_or_raise()
        q: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            if stop.is_set():
                return True  # xllamacpp: a true return cancels the request and frees its slot
            q.put(("chunk", chunk))
            return False

        def work() -> None:
            try:
                q.put(("done", server.handle_chat_completions(req, on_chunk)))
            except BaseException as exc:  # handed to the consumer thread and re-raised there
                q.put(("raise", exc))

        worker = threading.Thread(target=work, name="agentos-local-stream", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = q.get()
                if kind == "raise":
                    raise item
                if kind == "done":
                    if isinstance(item, Mapping):
                        _raise_for_error(item, self.name, self.n_ctx)
                    return
                if isinstance(item, Mapping) and "error" in item:
                    _raise_for_error(item, self.name, self.n_ctx)
                chunk = dict(item)
                chunk["model"] = self.name
                yield chunk
        finally:
            stop.set()
            worker.join()

    async def achat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """:meth:`chat` in a worker thread, so the event loop keeps running. Raises as chat."""
        return await asyncio.to_thread(
            self.chat, messages, tools=tools, tool_choice=tool_choice, **options
        )

    def close(self) -> None:
        """Free the model (waits for running requests). Later calls raise :class:`UserError`."""
        if not self._closed:
            self._closed = True
            server, self._server = self._server, None
            del server


def _as_chunks(result: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    base = {k: result.get(k) for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    choice = result["choices"][0]
    msg = choice["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
    if msg.get("tool_calls"):
        delta["tool_calls"] = [dict(tc, index=i) for i, tc in enumerate(msg["tool_calls"])]
    yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield {
        **base,
        "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason")}],
        "usage": result.get("usage"),
    }


# ----------------------------------------------------------------------------------------------
# one engine per model per process

_ENGINES: dict[Path, LocalEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(model: str | os.PathLike[str], config: EngineConfig | None = None, **overrides: Any) -> LocalEngine:
    """The process's engine for ``model``, loaded on first use.

    ``config`` / ``overrides`` (fields of :class:`EngineConfig`) apply when the engine is first
    loaded; asking again with a different explicit configuration is an error rather than a
    silent second copy of the weights.

    Raises:
        UserError: the engine is already loaded with another configuration (close it first with
            :func:`close_engines`), or an override is not an EngineConfig field.
        UnknownModel, ModelNotInstalled, ModelCorrupt, ProviderError: see :class:`LocalEngine`.
    """
    try:
        wanted = replace(config or EngineConfig(), **overrides)
    except TypeError as exc:
        raise UserError(f"bad local engine option: {exc}") from exc
    path = resolve(model)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(path)
        if engine is not None and not engine._closed:
            explicit = config is not None or overrides
            if explicit and engine.config != wanted:
                raise UserError(
                    f"{engine!r} is already loaded with {engine.config}; close it with "
                    "agentos.runtime.llm.engine.close_engines() before loading it differently"
                )
            return engine
        engine = LocalEngine(model, wanted)
        _ENGINES[path] = engine
        return engine


def loaded_engine(model: str | os.PathLike[str]) -> LocalEngine | None:
    """The open engine for ``model`` (a catalogue name or a .gguf path), or ``None``.

    Loads and hashes nothing: it only looks at the engines :func:`get_engine` opened.
    """
    text = os.fspath(model)
    path = None if text in CATALOGUE else Path(text).expanduser().resolve()
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            if not engine._closed and (engine.name == text or engine.path == path):
                return engine
    return None


def engine_slots(model: str | os.PathLike[str]) -> int:
    """Requests the engine for ``model`` decodes at once: the open engine's ``n_parallel``, else
    the default :class:`EngineConfig`'s (what :func:`get_engine` will load it with)."""
    engine = loaded_engine(model)
    return engine.n_parallel if engine is not None else EngineConfig().n_parallel


def close_engines() -> None:
    """Close and forget every cached engine (tests, shutdown)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.close()
