"""The local LLM engine: a GGUF model served in-process by llama.cpp (through xllamacpp).

:class:`LocalEngine` loads one model with ``n_parallel`` decoding slots (continuous batching, so
that many requests run at once), the prompt cache on, and Qwen2.5-Coder's recommended sampling
(temperature 0.7, top-p 0.8, top-k 20, repetition penalty 1.05) plus a default ``max_tokens`` cap,
so that a small model cannot run away. Each slot gets ``n_ctx`` tokens of context: by default the
context the model was trained with (read from the GGUF file), capped so that the KV caches fit in
a quarter of the memory available at load time (:func:`context_size`); ``kv_cache_type`` can
quantize the cache to q8_0 or q4_0 to fit more.

Shared prompt prefixes are reused: each slot keeps its last prompt's KV cache (``cache_prompt``), a
request goes to the slot whose cached prompt is most similar, and idle slots' caches are kept in
a host-memory prompt cache (``cache_ram_mib``), from which any slot restores a matching prefix.

Speculative decoding (``speculative``): ``"ngram"`` (the default) drafts from n-grams already in
the context (prompt lookup: edits that copy code), ``"draft"`` drafts with a smaller model of the
same tokenizer (by default the packaged 0.5B for the 1.5B). The model verifies every drafted
token, but greedy outputs are not guaranteed to be plain decoding's (llama.cpp evaluates a batch
of drafted tokens with other CPU kernels than a single token, so a near-tie can tip). In the
benchmark's 8 greedy runs n-gram outputs were identical to plain decoding's; with the 0.5B draft
model 1 of 4 was (the cause of that gap is not established).

With ``tools`` a request is decoded under a JSON schema (a llama.cpp grammar) that allows exactly
one call of a known tool (or, with ``parallel_tool_calls=True``, a list of calls), or
``{"final_answer": "..."}``; the text is parsed by
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

from agentos.errors import ContextLengthExceeded, ProviderError, UserError
from agentos.runtime.llm.gguf_meta import KV_CACHE_TYPES, kv_bytes_per_token, read_gguf
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
    "SPECULATIVE_MODES",
    "build_params",
    "close_engines",
    "context_size",
    "engine_slots",
    "get_engine",
    "loaded_engine",
]


#: Values of :attr:`EngineConfig.speculative`.
SPECULATIVE_MODES = ("off", "ngram", "draft")


@dataclass(frozen=True)
class EngineConfig:
    """How a local model is loaded and sampled.

    Attributes:
        n_ctx: context tokens per slot (the KV cache holds ``n_ctx * n_parallel`` tokens);
            ``None``: the model's trained context, capped by ``kv_memory_mib``
            (see :func:`context_size`).
        kv_cache_type: ``"f16"``, or ``"q8_0"`` / ``"q4_0"`` to quantize the KV cache (about
            half / a quarter of the memory per token, so more context fits).
        kv_memory_mib: the most memory the KV caches (all slots, and the draft model's) may
            take when ``n_ctx`` is ``None``; ``None``: a quarter of the memory available at load.
        cache_ram_mib: host memory for caching idle slots' prompts, so that a prefix computed in
            one slot is restored in another; 0 turns it off.
        speculative: ``"ngram"`` (the default: draft from n-grams already in the context),
            ``"draft"`` (draft with ``draft_model``) or ``"off"``. On 2 CPU cores n-gram drafting
            decoded code edits 1.76x faster on the 1.5B and fresh code no slower, while the 0.5B
            as draft model made the 1.5B slower (``benchmarks/local_llm.py --only spec``).
        draft_model: the model that drafts when ``speculative="draft"`` (a catalogue name or a
            .gguf path); it must use the same tokenizer.
        draft_max: the most tokens drafted per step.
        n_parallel: decoding slots, i.e. requests served at once.
        n_threads: CPU threads for decoding and prompt processing (default: all cores).
        max_tokens: default cap on generated tokens when a request does not set one.
        temperature, top_p, top_k, repeat_penalty, repeat_last_n: default sampling.
        tool_temperature: default temperature for requests with tools (calls want precision).
        metrics: keep llama.cpp's counters (tokens predicted, requests processing, ...) for
            :meth:`LocalEngine.metrics`.
    """

    n_ctx: int | None = None
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
    kv_cache_type: str = "f16"
    kv_memory_mib: int | None = None
    cache_ram_mib: int = 1024
    speculative: str = "ngram"
    draft_model: str = "qwen2.5-coder-0.5b"
    draft_max: int = 16

    def __post_init__(self) -> None:
        if self.n_ctx is not None and self.n_ctx < 256:
            raise UserError(f"n_ctx must be at least 256 tokens per slot, got {self.n_ctx}")
        if self.kv_cache_type not in KV_CACHE_TYPES:
            raise UserError(
                f"kv_cache_type must be one of {', '.join(KV_CACHE_TYPES)}, got {self.kv_cache_type!r}"
            )
        if self.kv_memory_mib is not None and self.kv_memory_mib < 16:
            raise UserError(f"kv_memory_mib must be at least 16, got {self.kv_memory_mib}")
        if self.cache_ram_mib < 0:
            raise UserError(f"cache_ram_mib must be 0 (off) or more, got {self.cache_ram_mib}")
        if self.speculative not in SPECULATIVE_MODES:
            raise UserError(
                f"speculative must be one of {', '.join(SPECULATIVE_MODES)}, got {self.speculative!r}"
            )
        if not 1 <= self.draft_max <= 64:
            raise UserError(f"draft_max must be between 1 and 64, got {self.draft_max}")
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


def _available_memory() -> int:
    """Bytes of memory available for new allocations (``MemAvailable``), or physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _draft_path(path: Path, config: EngineConfig) -> Path | None:
    """The draft model's file for ``speculative="draft"``, checked against the target's tokenizer.

    Raises:
        UserError: the draft model is missing, or its tokenizer differs from the target's.
    """
    if config.speculative != "draft":
        return None
    draft = resolve(config.draft_model)
    if draft.resolve() == path.resolve():
        raise UserError(
            f"{path.name} cannot draft for itself: set draft_model to a smaller model of the "
            'same family, or use speculative="ngram"'
        )
    if read_gguf(draft).tokenizer != read_gguf(path).tokenizer:
        raise UserError(
            f"draft model {config.draft_model} uses another tokenizer than {path.name}, so its "
            "drafts cannot be verified: pick a draft model of the same family, or "
            'speculative="ngram"'
        )
    return draft


def context_size(path: Path, config: EngineConfig) -> int:
    """Context tokens per slot: ``config.n_ctx``, else the model's trained context capped so that
    every slot's KV cache (and the draft model's) fits in ``config.kv_memory_mib``.

    Raises:
        UserError: the file's metadata cannot be read, or not even 256 tokens a slot fit.
    """
    if config.n_ctx is not None:
        return config.n_ctx
    info = read_gguf(path)
    per_token = kv_bytes_per_token(info, config.kv_cache_type)
    draft = _draft_path(path, config)
    if draft is not None:
        per_token += kv_bytes_per_token(read_gguf(draft), config.kv_cache_type)
    budget = (config.kv_memory_mib * 2**20 if config.kv_memory_mib is not None
              else _available_memory() // 4)
    fits = budget // (per_token * config.n_parallel) // 256 * 256
    if fits < 256:
        raise UserError(
            f"the KV cache of {path.name} does not fit: {budget // 2**20} MiB allow "
            f"{fits} tokens per slot for {config.n_parallel} slots; set n_ctx, fewer n_parallel, "
            'a larger kv_memory_mib or kv_cache_type="q8_0"'
        )
    return min(info.context_length, fits)


def build_params(
    path: Path,
    config: EngineConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    alias: str | None = None,
) -> xllamacpp.CommonParams:
    """xllamacpp parameters for ``path`` under ``config``; with ``port`` llama.cpp also serves HTTP.

    ``params.n_ctx`` is the whole KV cache, :func:`context_size` tokens for each slot.

    Raises:
        UserError: xllamacpp is not installed, the draft model is unusable, or the context does
            not fit (see :func:`context_size`).
    """
    xl = _import_xllamacpp()
    n_ctx = context_size(path, config)
    params = xl.CommonParams()
    params.model.path = str(path)
    params.n_parallel = config.n_parallel
    params.n_ctx = n_ctx * config.n_parallel  # llama.cpp splits it across slots
    params.n_batch = min(2048, n_ctx)
    params.cache_prompt = True
    params.cache_ram_mib = config.cache_ram_mib
    cache_type = getattr(xl.ggml_type, f"GGML_TYPE_{config.kv_cache_type.upper()}")
    params.cache_type_k = params.cache_type_v = cache_type
    if config.kv_cache_type != "f16":  # llama.cpp quantizes the V cache only with flash attention
        params.flash_attn_type = xl.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
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
    _speculative(xl, params, path, config, threads)
    if alias:
        params.model_alias = {alias}
    if port is not None:
        params.port = port
        params.hostnames = [host or "127.0.0.1"]
    return params


def _speculative(xl: Any, params: Any, path: Path, config: EngineConfig, threads: int) -> None:
    """Set llama.cpp's speculative-decoding parameters for ``config.speculative``."""
    spec = params.speculative
    kinds = xl.common_speculative_type
    if config.speculative == "ngram":
        # prompt lookup: find the last 12 tokens earlier in the context, draft what followed
        spec.types = [kinds.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
        spec.ngram_simple.size_m = config.draft_max
        spec.draft.n_max = config.draft_max
    elif config.speculative == "draft":
        draft = _draft_path(path, config)
        assert draft is not None
        spec.types = [kinds.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        spec.draft.mparams.path = str(draft)
        spec.draft.n_max = config.draft_max
        spec.draft.cache_type_k = spec.draft.cache_type_v = params.cache_type_k
        spec.draft.cpuparams.n_threads = threads
        spec.draft.cpuparams_batch.n_threads = threads


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
    parallel: bool = False,
) -> list[dict[str, Any]]:
    """Rewrite a conversation for JSON tool calling: instructions in the system message,
    earlier assistant tool calls as the JSON the model is asked to write."""
    instructions = format_instructions(tools, final_answer=final_answer and only is None,
                                       parallel=parallel and only is None)
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
    "parallel_tool_calls",
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
        params = build_params(self.path, self.config)
        self._n_ctx = params.n_ctx // self.config.n_parallel
        started = time.perf_counter()
        try:
            self._server: Any = xl.Server(params)
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
        """Context tokens available to one request (one slot's share of the KV cache)."""
        return self._n_ctx

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
        parallel = bool(req.pop("parallel_tool_calls", False))
        only: str | None = None
        if tools and tool_choice != "none":
            if isinstance(tool_choice, Mapping):
                only = tool_choice.get("function", {}).get("name")
            final = tool_choice != "required" and only is None
            try:
                schema = tool_call_schema(tools, final_answer=final, only=only,
                                          parallel=parallel and only is None)
            except (TypeError, ValueError) as exc:
                raise UserError(f"bad tools or tool_choice for the local model: {exc}") from exc
            req["messages"] = _tool_messages(messages, tools, only, final_answer=final,
                                             parallel=parallel)
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
                ``response_format``, ``logit_bias``, ``n_probs``; ``parallel_tool_calls=True``
                lets one reply hold a JSON list of calls (off by default for local models).

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

    Without ``config`` the defaults come from the settings ``local_n_ctx``,
    ``local_kv_cache_type`` and ``local_speculative`` (:func:`agentos.config.load_settings`).
    ``config`` / ``overrides`` (fields of :class:`EngineConfig`) apply when the engine is first
    loaded; asking again with a different explicit configuration is an error rather than a
    silent second copy of the weights.

    Raises:
        UserError: the engine is already loaded with another configuration (close it first with
            :func:`close_engines`), or an override is not an EngineConfig field.
        UnknownModel, ModelNotInstalled, ModelCorrupt, ProviderError: see :class:`LocalEngine`.
    """
    try:
        wanted = replace(config or _settings_config(), **overrides)
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


def _settings_config() -> EngineConfig:
    """The default :class:`EngineConfig` with the ``local_*`` settings (agentos.toml, env)."""
    from agentos.config import load_settings

    s = load_settings()
    return EngineConfig(n_ctx=s.local_n_ctx, kv_cache_type=s.local_kv_cache_type,
                        speculative=s.local_speculative)


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
