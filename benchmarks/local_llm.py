"""Local LLM layer: agentos (LocalEngine, litellm ``local/`` provider) against raw xllamacpp.

Measures, per model, on the same prompt (a fresh nonce per run defeats the prompt cache):
prompt and decode tokens/s and time to first token through raw ``xllamacpp.Server``, through
``LocalEngine.chat_stream`` and through ``litellm.completion(model="local/...", stream=True)``;
aggregate decode tokens/s with 1, 2 and 4 concurrent requests; peak RSS; and tool calling.

Tool calling runs the cases in ``benchmarks/data/tool_prompts.json`` through ``LocalEngine`` at
temperature 0, turn by turn (each expected call's result is fed back): prompts that need no tool
(a call there is wrong), one tool, or two tools in sequence. A case is correct when the model
makes exactly the expected calls, with the expected argument values (whether it stops after the
last one is not run). Each case
runs twice: with the JSON-schema grammar that agentos always uses for tool calls (decoding can
only produce a well-formed call or a final answer) and without it (the same prompt, free text,
the same parser), so the grammar's share of the result shows.

Speculative decoding (``--only spec``) decodes the same prompts greedily (temperature 0) with
plain decoding, n-gram (prompt-lookup) drafting and, for the 1.5B, the packaged 0.5B as draft
model, all three engines loaded at once and the requests interleaved so background load hits
them alike: code-edit prompts that copy most of their answer from the prompt, and fresh
generation. It reports llama.cpp's decode tokens/s, the drafts accepted, and whether each output
is the same text as plain decoding's.

The prefix cache (``--only prefix``) times the first token for a request whose ~2k-token prefix
(a system prompt with tool schemas, as a crew's agents share) is new (cold), was just computed in
the same slot (warm), or was computed before another agent's unrelated request started and is
still running (llama.cpp saves idle slots to its host-memory prompt cache when a task starts).

    python benchmarks/local_llm.py                 # both models, every part
    python benchmarks/local_llm.py --quick         # shorter runs, 2 tool cases of each kind
    python benchmarks/local_llm.py --model qwen2.5-coder-1.5b --only tools [--grammar on|off]
    python benchmarks/local_llm.py --only spec --only prefix
    python benchmarks/local_llm.py --only tools --parallel   # a reply may hold a list of calls

Writes ``benchmarks/results/local_llm.json``, or ``local_llm_<parts>.json`` with ``--only``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import threading
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
PROMPT = (
    "Write a Python module that implements a singly linked list class with append, prepend, "
    "find, delete, reverse and __iter__ methods, each with a docstring, followed by unit tests."
)
console = Console(width=150)
# LocalEngine's default sampling (EngineConfig), sent with every raw request so both decode alike
RAW_SAMPLING = {"top_k": 20, "top_p": 0.8, "repeat_penalty": 1.05, "repeat_last_n": 64}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"[run {uuid.uuid4().hex[:8]}] {PROMPT}"}]


def _stats(t0: float, t_first: float | None, t_end: float, prompt_tokens: int, completion_tokens: int) -> dict[str, float]:
    ttft = (t_first or t_end) - t0
    decode_s = t_end - (t_first or t_end)
    return {
        "ttft_s": ttft,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tok_s": prompt_tokens / ttft if ttft > 0 else 0.0,
        "decode_tok_s": (completion_tokens - 1) / decode_s if decode_s > 0 else 0.0,
    }


def run_raw(server: Any, max_tokens: int) -> dict[str, float]:
    first: list[float] = []
    usage: dict[str, int] = {}

    def on_chunk(chunk: dict[str, Any]) -> None:
        choices = chunk.get("choices") or []
        if choices and choices[0].get("delta", {}).get("content") and not first:
            first.append(time.perf_counter())
        if chunk.get("usage"):
            usage.update(chunk["usage"])

    req = {
        "messages": _messages(), "max_tokens": max_tokens, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}, **RAW_SAMPLING,
    }  # fmt: skip
    t0 = time.perf_counter()
    server.handle_chat_completions(req, on_chunk)
    t_end = time.perf_counter()
    return _stats(t0, first[0] if first else None, t_end, usage["prompt_tokens"], usage["completion_tokens"])


def run_engine(engine: Any, max_tokens: int) -> dict[str, float]:
    t0 = time.perf_counter()
    t_first = None
    usage: dict[str, int] = {}
    for chunk in engine.chat_stream(_messages(), max_tokens=max_tokens, temperature=0):
        choices = chunk.get("choices") or []
        if t_first is None and choices and choices[0]["delta"].get("content"):
            t_first = time.perf_counter()
        if chunk.get("usage"):
            usage = chunk["usage"]
    t_end = time.perf_counter()
    return _stats(t0, t_first, t_end, usage["prompt_tokens"], usage["completion_tokens"])


def run_litellm(model: str, max_tokens: int) -> dict[str, float]:
    import litellm

    t0 = time.perf_counter()
    t_first = None
    usage = None
    for chunk in litellm.completion(
        model=f"local/{model}", messages=_messages(), max_tokens=max_tokens, temperature=0,
        stream=True, stream_options={"include_usage": True},
    ):  # fmt: skip
        if t_first is None and chunk.choices and chunk.choices[0].delta.content:
            t_first = time.perf_counter()
        if getattr(chunk, "usage", None):
            usage = chunk.usage
    t_end = time.perf_counter()
    assert usage is not None
    return _stats(t0, t_first, t_end, usage.prompt_tokens, usage.completion_tokens)


def run_whole(kind: str, target: Any, model: str, max_tokens: int) -> dict[str, float]:
    """One non-streaming request; end-to-end completion tokens per wall second."""
    t0 = time.perf_counter()
    if kind == "raw":
        req = {"messages": _messages(), "max_tokens": max_tokens, "temperature": 0, **RAW_SAMPLING}
        usage = target.handle_chat_completions(req)["usage"]
        tokens = usage["completion_tokens"]
    elif kind == "engine":
        tokens = target.chat(_messages(), max_tokens=max_tokens, temperature=0)["usage"]["completion_tokens"]
    else:
        import litellm

        resp = litellm.completion(model=f"local/{model}", messages=_messages(), max_tokens=max_tokens, temperature=0)
        tokens = resp.usage.completion_tokens
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "completion_tokens": tokens, "e2e_tok_s": tokens / wall}


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median of each metric over the repetitions."""
    out = {}
    for key in runs[0]:
        vals = sorted(r[key] for r in runs)
        out[key] = vals[len(vals) // 2]
    return out


def concurrency(engine: Any, n: int, max_tokens: int) -> dict[str, float]:
    results: list[dict[str, Any]] = []

    def one() -> None:
        results.append(engine.chat(_messages(), max_tokens=max_tokens, temperature=0))

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["usage"]["completion_tokens"] for r in results)
    return {"concurrent": n, "completion_tokens": tokens, "wall_s": wall, "aggregate_tok_s": tokens / wall}


def _squash(text: Any) -> str:
    return "".join(str(text).split()).casefold()


def _value_matches(want: Any, have: Any) -> bool:
    """One argument against its expected value (see ``_about`` in the data file)."""
    if isinstance(want, dict):
        text = _squash(have)
        return (all(_squash(n) in text for n in want.get("contains", ()))
                and (not want.get("contains_any")
                     or any(_squash(n) in text for n in want["contains_any"])))
    if isinstance(want, bool) or not isinstance(want, (int, float)):
        return isinstance(have, str) and have.strip().casefold() == str(want).casefold()
    return (isinstance(have, (int, float)) and not isinstance(have, bool)
            and abs(float(have) - float(want)) <= 1e-6)


def _args_match(want: dict[str, Any], have: dict[str, Any], swap: list[str] | None) -> bool:
    """The expected arguments are there with the expected values; others are not checked."""
    if all(k in have and _value_matches(v, have[k]) for k, v in want.items()):
        return True
    if swap and all(k in want for k in swap):  # a commutative tool: a and b the other way round
        a, b = swap
        return _args_match({**want, a: want[b], b: want[a]}, have, None)
    return False


def _tool_turn(engine: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               grammar: bool, parallel: bool = False,
               ) -> tuple[list[dict[str, Any]] | None, str | None, str | None]:
    """One model turn: (calls, answer, malformed-call error); exactly one of them is set.

    Both modes send the request the engine builds for ``tools`` (the conversation rewritten with
    the tool-call instructions, ``engine._tool_messages``) and parse the reply with the same
    parser; the only difference is the JSON-schema grammar that constrains decoding, which is
    what ``LocalEngine.chat(tools=...)`` always sends. ``parallel`` allows a list of calls in one
    reply, as ``LocalEngine.chat(parallel_tool_calls=True)`` does.
    """
    from agentos.runtime.llm.engine import _tool_messages
    from agentos.runtime.llm.toolcalls import MalformedToolCall, parse_response, tool_call_schema

    options: dict[str, Any] = {"temperature": 0, "max_tokens": 160}
    if grammar:
        options["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "tool_call",
                            "schema": tool_call_schema(tools, parallel=parallel)},
        }
    result = engine.chat(_tool_messages(messages, tools, None, parallel=parallel), **options)
    text = result["choices"][0]["message"].get("content") or ""
    try:
        parsed = parse_response(text, tools)
    except MalformedToolCall as error:
        return None, None, f"{error} (reply: {text[:200]!r})"
    if parsed.tool_calls:
        return [{"name": c.name, "arguments": c.arguments} for c in parsed.tool_calls], None, None
    return None, parsed.content or "", None


def _run_case(engine: Any, case: dict[str, Any], tools: list[dict[str, Any]],
              commutative: dict[str, list[str]], grammar: bool, parallel: bool = False,
              ) -> dict[str, Any]:
    """Drive one case turn by turn, feeding back each expected call's result, until the model
    answers, goes wrong, or has made every expected call (what it does after that is not run:
    one turn fewer per case). A case without calls gets one turn."""
    expected = case["calls"]
    left = list(range(len(expected)))  # expected calls not made yet
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an assistant that uses tools."},
        {"role": "user", "content": case["prompt"]},
    ]
    made: list[dict[str, Any]] = []
    row: dict[str, Any] = {"prompt": case["prompt"], "expected": [c["tool"] for c in expected],
                           "calls": made, "answer": None, "malformed": None, "wrong_call": None}
    for _ in range(max(1, len(expected))):
        calls, answer, malformed = _tool_turn(engine, messages, tools, grammar, parallel)
        if malformed is not None:
            row["malformed"] = malformed
            break
        if calls is None:
            row["answer"] = answer
            break
        for call in calls:
            made.append(call)
            candidates = left if case.get("any_order") else left[:1]
            hit = next((i for i in candidates if expected[i]["tool"] == call["name"]
                        and _args_match(expected[i]["args"], call["arguments"],
                                        commutative.get(call["name"]))), None)
            if hit is None:
                row["wrong_call"] = call
                break
            left.remove(hit)
            call_id = f"call_{len(made)}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": expected[hit]["result"]})
        if row["wrong_call"] is not None or not left:
            break
    names = [c["name"] for c in made]
    row["right_tools"] = names == row["expected"] or (
        bool(case.get("any_order")) and sorted(names) == sorted(row["expected"]))
    if expected:
        row["correct"] = not left and row["wrong_call"] is None and row["malformed"] is None
    else:
        row["correct"] = not made and row["malformed"] is None
    return row


def tool_accuracy(engine: Any, limit: int | None, grammar: bool,
                  parallel: bool = False) -> dict[str, Any]:
    """Tool-calling accuracy on ``benchmarks/data/tool_prompts.json``.

    A case is correct when the model makes exactly the expected calls (none, one or two), each
    with the expected argument values. ``limit`` keeps that many cases of each kind (none, one,
    two calls).
    """
    data = json.loads((HERE / "data" / "tool_prompts.json").read_text())
    tools, commutative = data["tools"], data.get("commutative", {})
    kinds = {"no tool": [], "one tool": [], "two tools": []}  # type: dict[str, list[dict[str, Any]]]
    for case in data["cases"]:
        kinds[("no tool", "one tool", "two tools")[len(case["calls"])]].append(case)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"grammar": grammar, "parallel": parallel, "by_kind": {}, "rows": []}
    mode = ("grammar" if grammar else "free") + (", parallel" if parallel else "")
    for kind, cases in kinds.items():
        rows = []
        for i, case in enumerate(cases[:limit]):
            row = _run_case(engine, case, tools, commutative, grammar, parallel)
            row["kind"] = kind
            rows.append(row)
            console.print(f"[dim]{mode} {kind} {i + 1}/{len(cases[:limit])}: "
                          f"{'correct' if row['correct'] else 'wrong'} "
                          f"({time.perf_counter() - t0:.0f} s)[/]")
        out["rows"] += rows
        n = len(rows) or 1
        out["by_kind"][kind] = {
            "n": len(rows),
            "correct_pct": 100 * sum(r["correct"] for r in rows) / n,
            "malformed_pct": 100 * sum(r["malformed"] is not None for r in rows) / n,
            "any_call_pct": 100 * sum(bool(r["calls"]) for r in rows) / n,
            "right_tools_pct": 100 * sum(r["right_tools"] for r in rows) / n,
        }
    rows = out["rows"]
    out["n"] = len(rows)
    out["correct_pct"] = 100 * sum(r["correct"] for r in rows) / (len(rows) or 1)
    out["seconds"] = time.perf_counter() - t0
    return out


def _edit_prompts() -> list[str]:
    """Edits whose answer copies most of the prompt (the standard library's own source)."""
    import fnmatch
    import inspect
    import textwrap

    def ask(task: str, fn: Any) -> str:
        return f"{task} Reply with the whole changed function only.\n\n```python\n{inspect.getsource(fn)}```"

    return [
        ask("Rename the function dedent to strip_common_indent and its variable margin to prefix.",
            textwrap.dedent),
        ask("Add type hints to this function's parameters and return value.", fnmatch.translate),
    ]


FRESH_PROMPTS = [
    "Write a Python class LRUCache with get and put, each with a docstring, and three unit tests.",
    "Write a Python function that parses an ISO 8601 date string without the datetime module, "
    "with a docstring and doctests.",
]


def bench_speculative(model: str, quick: bool) -> dict[str, Any]:
    """Greedy decode tokens/s: plain, n-gram drafting, and the 0.5B drafting for the 1.5B."""
    from agentos.runtime.llm.engine import EngineConfig, LocalEngine

    modes = ["off", "ngram"] + (["draft"] if model == "qwen2.5-coder-1.5b" else [])
    max_tokens = 64 if quick else 160
    engines = {m: LocalEngine(model, EngineConfig(n_ctx=4096, n_parallel=1, speculative=m,
                                                  cache_ram_mib=0)) for m in modes}
    workloads = {"code edit (copies the prompt)": _edit_prompts(), "fresh generation": FRESH_PROMPTS}
    rows: list[dict[str, Any]] = []
    try:
        for workload, prompts in workloads.items():
            for i, prompt in enumerate(prompts[:1] if quick else prompts):
                outputs: dict[str, str] = {}
                for mode in modes:  # interleaved: one prompt through every engine in turn
                    result = engines[mode].chat([{"role": "user", "content": prompt}],
                                                max_tokens=max_tokens, temperature=0)
                    timings = result.get("timings", {})
                    outputs[mode] = result["choices"][0]["message"].get("content") or ""
                    rows.append({
                        "workload": workload, "prompt": i, "mode": mode,
                        "prompt_tokens": timings.get("prompt_n"),
                        "tokens": timings.get("predicted_n"),
                        "decode_tok_s": timings.get("predicted_per_second", 0.0),
                        "drafted": timings.get("draft_n", 0),
                        "accepted": timings.get("draft_n_accepted", 0),
                        "same_as_plain": outputs[mode] == outputs["off"],
                        "output": outputs[mode],
                    })  # fmt: skip
                    console.print(f"[dim]spec {model} {workload} {i} {mode}: "
                                  f"{rows[-1]['decode_tok_s']:.1f} tok/s[/]")
    finally:
        for engine in engines.values():
            engine.close()
    summary: dict[str, dict[str, Any]] = {}
    for workload in workloads:
        for mode in modes:
            mine = [r for r in rows if r["workload"] == workload and r["mode"] == mode]
            plain = [r for r in rows if r["workload"] == workload and r["mode"] == "off"]
            tokens = sum(r["tokens"] or 0 for r in mine)
            seconds = sum((r["tokens"] or 0) / r["decode_tok_s"] for r in mine if r["decode_tok_s"])
            plain_s = sum((r["tokens"] or 0) / r["decode_tok_s"] for r in plain if r["decode_tok_s"])
            plain_tok = sum(r["tokens"] or 0 for r in plain)
            rate = tokens / seconds if seconds else 0.0
            base = plain_tok / plain_s if plain_s else 0.0
            summary[f"{workload}|{mode}"] = {
                "workload": workload, "mode": mode, "prompts": len(mine), "tokens": tokens,
                "decode_tok_s": rate, "vs_plain": rate / base if base else 0.0,
                "drafted": sum(r["drafted"] for r in mine),
                "accepted": sum(r["accepted"] for r in mine),
                "same_as_plain": sum(r["same_as_plain"] for r in mine),
            }  # fmt: skip
    return {"max_tokens": max_tokens, "summary": list(summary.values()), "rows": rows}


def _prefix_messages(nonce: str, question: str) -> list[dict[str, str]]:
    """A crew agent's request: a ~2k-token system prompt with tool schemas, then a question."""
    from agentos.runtime.llm.toolcalls import format_instructions

    tools = [
        {"type": "function", "function": {
            "name": f"tool_{i}", "description": f"Tool number {i}: " + "looks up records in the "
            "project's knowledge base by key, with filters for date, owner and status. " * 3,
            "parameters": {"type": "object", "properties": {
                "key": {"type": "string"}, "owner": {"type": "string"},
                "status": {"type": "string", "enum": ["open", "closed", "draft"]},
                "limit": {"type": "integer"}}, "required": ["key"]}}}
        for i in range(20)
    ]  # fmt: skip
    system = (f"[crew {nonce}] You are the researcher of a research-and-code crew. "
              + format_instructions(tools))
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def _ttft(engine: Any, messages: list[dict[str, str]]) -> tuple[float, int]:
    """Seconds to the first streamed token, and the prompt's tokens."""
    t0 = time.perf_counter()
    first = None
    usage: dict[str, int] = {}
    for chunk in engine.chat_stream(messages, max_tokens=4, temperature=0):
        choices = chunk.get("choices") or []
        if first is None and choices and choices[0]["delta"].get("content"):
            first = time.perf_counter()
        if chunk.get("usage"):
            usage = chunk["usage"]
    return (first or time.perf_counter()) - t0, int(usage.get("prompt_tokens", 0))


def bench_prefix(model: str, quick: bool) -> dict[str, Any]:
    """Time to first token with a ~2k-token shared prefix: cold, warm in the same slot, and warm
    while another agent's unrelated request runs (it started after the prefix was computed, so
    llama.cpp saved the idle slot to its host-memory prompt cache and must restore from there)."""
    from agentos.runtime.llm.engine import EngineConfig, LocalEngine

    engine = LocalEngine(model, EngineConfig(n_ctx=4096, n_parallel=2))
    reps = 1 if quick else 2
    rows: dict[str, list[float]] = {"cold": [], "warm, same slot": [], "warm, after another request": []}
    prompt_tokens = 0
    try:
        for rep in range(reps):
            nonce = uuid.uuid4().hex[:8]
            cold, prompt_tokens = _ttft(engine, _prefix_messages(nonce, "Which tool lists open records?"))
            warm, _ = _ttft(engine, _prefix_messages(nonce, "Which tool finds draft records of Ann?"))
            busy = threading.Thread(target=engine.chat, args=(
                [{"role": "user", "content": f"[{rep}] Count from 1 to 200, one number a line."}],),
                kwargs={"max_tokens": 48, "temperature": 0})
            busy.start()  # another agent's request: idle slots are saved to host memory
            time.sleep(0.5)
            other, _ = _ttft(engine, _prefix_messages(nonce, "Which tool finds closed records?"))
            busy.join()
            rows["cold"].append(cold)
            rows["warm, same slot"].append(warm)
            rows["warm, after another request"].append(other)
            console.print(f"[dim]prefix {model}: cold {cold:.2f} s, warm {warm:.2f} s, "
                          f"other slot {other:.2f} s ({prompt_tokens} prompt tokens)[/]")
    finally:
        engine.close()
    cold = sorted(rows["cold"])[len(rows["cold"]) // 2]
    out = {"prompt_tokens": prompt_tokens, "repetitions": reps, "ttft_s": {}}
    for name, values in rows.items():
        median = sorted(values)[len(values) // 2]
        out["ttft_s"][name] = {"median": median, "all": values, "vs_cold": median / cold}
    return out


def bench_model(model: str, quick: bool, parts: list[str], grammars: list[bool],
                parallel: bool = False) -> dict[str, Any]:
    """The parts (``speed``, ``spec``, ``prefix``, ``tools``) of the benchmark for one model."""
    from agentos.runtime.llm.engine import EngineConfig, close_engines, get_engine
    from agentos.runtime.llm.models import install

    result: dict[str, Any] = {"model": model}
    if "spec" in parts:
        result["speculative"] = bench_speculative(model, quick)
    if "prefix" in parts:
        result["prefix_cache"] = bench_prefix(model, quick)
    parts = [p for p in parts if p in ("speed", "tools")]
    if not parts:
        result["peak_rss_mib_process"] = _peak_rss_mib()
        return result
    n_ctx = 2048
    # The speed part measures 4 concurrent requests; tool calling alone runs one at a time, on
    # one slot, so the shared instructions stay in that slot's prompt cache from case to case.
    slots = 4 if "speed" in parts else 1
    path = install(model, progress=True)
    console.print(f"[bold]{model}[/]: loading ({slots} slots × {n_ctx} tokens)…")
    # Speculation off: the speed part compares with raw xllamacpp's plain decoding, and the tool
    # cases keep the decoding they were first measured with (``--only spec`` measures drafting).
    engine = get_engine(model, EngineConfig(n_ctx=n_ctx, n_parallel=slots, speculative="off"))
    try:
        if "speed" in parts:
            result.update(bench_speed(model, engine, path, n_ctx, quick))
        if "tools" in parts:
            result["tool_accuracy"] = {
                ("grammar" if g else "free") + (", parallel" if parallel else ""):
                tool_accuracy(engine, 2 if quick else None, g, parallel)
                for g in grammars
            }
    finally:
        close_engines()
    result["peak_rss_mib_process"] = _peak_rss_mib()
    return result


def bench_speed(model: str, engine: Any, path: Path, n_ctx: int, quick: bool) -> dict[str, Any]:
    """Decode speed against raw xllamacpp (streaming and not), concurrency, peak RSS."""
    import xllamacpp

    from agentos.runtime.llm.litellm_provider import register_local_provider

    reps = 1 if quick else 3
    max_tokens = 48 if quick else 128
    register_local_provider()
    run_engine(engine, 8)  # warm-up
    rss_engine = _peak_rss_mib()

    # raw xllamacpp: the same file and the same load settings, set directly on CommonParams
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_parallel = 4
    params.n_ctx = n_ctx * 4
    params.n_batch = n_ctx
    threads = os.cpu_count() or 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = -1
    raw = xllamacpp.Server(params)
    run_raw(raw, 8)

    paths: dict[str, list[dict[str, float]]] = {"raw xllamacpp": [], "LocalEngine": [], "litellm local/": []}
    for _ in range(reps):  # interleaved, so background load hits all three alike
        paths["raw xllamacpp"].append(run_raw(raw, max_tokens))
        paths["LocalEngine"].append(run_engine(engine, max_tokens))
        paths["litellm local/"].append(run_litellm(model, max_tokens))
    whole: dict[str, list[dict[str, float]]] = {"raw xllamacpp": [], "LocalEngine": [], "litellm local/": []}
    for _ in range(reps):
        whole["raw xllamacpp"].append(run_whole("raw", raw, model, max_tokens))
        whole["LocalEngine"].append(run_whole("engine", engine, model, max_tokens))
        whole["litellm local/"].append(run_whole("litellm", None, model, max_tokens))
    del raw
    speed = {name: _best(runs) for name, runs in paths.items()}
    base = speed["raw xllamacpp"]["decode_tok_s"]
    for s in speed.values():
        s["decode_vs_raw_pct"] = 100 * s["decode_tok_s"] / base if base else 0.0
    e2e = {name: _best(runs) for name, runs in whole.items()}
    base = e2e["raw xllamacpp"]["e2e_tok_s"]
    for s in e2e.values():
        s["vs_raw_pct"] = 100 * s["e2e_tok_s"] / base if base else 0.0

    conc = [concurrency(engine, n, 32 if quick else 64) for n in (1, 2, 4)]
    return {
        "max_tokens": max_tokens,
        "repetitions": reps,
        "speed": speed,
        "end_to_end": e2e,
        "concurrency": conc,
        "peak_rss_mib_engine_only": rss_engine,
    }


def report(results: list[dict[str, Any]]) -> None:
    if any("speed" in r for r in results):
        report_speed([r for r in results if "speed" in r])
    if any("speculative" in r for r in results):
        report_speculative([r for r in results if "speculative" in r])
    if any("prefix_cache" in r for r in results):
        report_prefix([r for r in results if "prefix_cache" in r])
    if any("tool_accuracy" in r for r in results):
        report_tools([r for r in results if "tool_accuracy" in r])


def report_speed(results: list[dict[str, Any]]) -> None:
    speed = Table(title="decode / prompt speed (median over repetitions)")
    for col in ("model", "path", "prompt tok/s", "decode tok/s", "vs raw", "TTFT s", "tokens"):
        speed.add_column(col, justify="right" if col not in ("model", "path") else "left")
    for r in results:
        for name, s in r["speed"].items():
            speed.add_row(
                r["model"], name, f"{s['prompt_tok_s']:.1f}", f"{s['decode_tok_s']:.2f}",
                f"{s['decode_vs_raw_pct']:.1f}%", f"{s['ttft_s']:.2f}", f"{s['completion_tokens']:.0f}",
            )  # fmt: skip
    console.print(speed)
    e2e = Table(title="non-streaming end to end (median): completion tokens / wall seconds")
    for col in ("model", "path", "tokens", "wall s", "tok/s", "vs raw"):
        e2e.add_column(col)
    for r in results:
        for name, s in r["end_to_end"].items():
            e2e.add_row(r["model"], name, f"{s['completion_tokens']:.0f}", f"{s['wall_s']:.2f}", f"{s['e2e_tok_s']:.2f}", f"{s['vs_raw_pct']:.1f}%")
    console.print(e2e)
    conc = Table(title="aggregate decode with concurrent requests (LocalEngine, 4 slots)")
    for col in ("model", "concurrent", "tokens", "wall s", "aggregate tok/s"):
        conc.add_column(col)
    for r in results:
        for c in r["concurrency"]:
            conc.add_row(r["model"], str(c["concurrent"]), str(c["completion_tokens"]), f"{c['wall_s']:.2f}", f"{c['aggregate_tok_s']:.2f}")
    console.print(conc)


def report_speculative(results: list[dict[str, Any]]) -> None:
    names = {"off": "plain", "ngram": "n-gram (prompt lookup)", "draft": "0.5B draft model"}
    table = Table(title="speculative decoding, greedy (temperature 0), LocalEngine: decode tok/s "
                        "from llama.cpp's timings; same = output identical to plain decoding")
    for col in ("model", "workload", "decoding", "prompts", "tokens", "decode tok/s", "vs plain",
                "drafts accepted", "same as plain"):
        table.add_column(col, justify="left" if col in ("model", "workload", "decoding") else "right")
    for r in results:
        for s in r["speculative"]["summary"]:
            drafted = f"{s['accepted']} of {s['drafted']}" if s["mode"] != "off" else ""
            table.add_row(r["model"], s["workload"], names[s["mode"]], str(s["prompts"]),
                          str(s["tokens"]), f"{s['decode_tok_s']:.1f}", f"{s['vs_plain']:.2f}×",
                          drafted, f"{s['same_as_plain']} of {s['prompts']}")
    console.print(table)


def report_prefix(results: list[dict[str, Any]]) -> None:
    table = Table(title="prefix cache: time to first token with a shared system prompt + tool "
                        "schemas (LocalEngine, 2 slots, upper median of the repetitions)")
    for col in ("model", "prompt tokens", "request", "TTFT s", "vs cold"):
        table.add_column(col, justify="left" if col in ("model", "request") else "right")
    for r in results:
        p = r["prefix_cache"]
        for name, t in p["ttft_s"].items():
            table.add_row(r["model"], str(p["prompt_tokens"]), name, f"{t['median']:.2f}",
                          f"{100 * t['vs_cold']:.0f} %")
    console.print(table)


def report_tools(results: list[dict[str, Any]]) -> None:
    acc = Table(title="tool calling, LocalEngine, temperature 0 (benchmarks/data/tool_prompts.json): "
                      "correct = exactly the expected calls, with the expected arguments")
    for col in ("model", "decoding", "cases", "correct", "no tool: no call", "one tool: correct",
                "two tools: correct", "malformed replies", "seconds"):
        acc.add_column(col, justify="left" if col in ("model", "decoding") else "right")
    for r in results:
        for mode, a in r["tool_accuracy"].items():
            k = a["by_kind"]
            malformed = sum(row["malformed"] is not None for row in a["rows"])
            acc.add_row(
                r["model"], ("JSON-schema grammar" if mode.startswith("grammar") else "free (no grammar)")
                + (", list of calls allowed" if mode.endswith("parallel") else ""),
                str(a["n"]), f"{a['correct_pct']:.1f}%",
                f"{k['no tool']['correct_pct']:.1f}% of {k['no tool']['n']}",
                f"{k['one tool']['correct_pct']:.1f}% of {k['one tool']['n']} "
                f"(tool {k['one tool']['right_tools_pct']:.0f}%)",
                f"{k['two tools']['correct_pct']:.1f}% of {k['two tools']['n']} "
                f"(tools {k['two tools']['right_tools_pct']:.0f}%)",
                f"{malformed} of {a['n']}", f"{a['seconds']:.0f}",
            )  # fmt: skip
    console.print(acc)
    for r in results:
        for mode, a in r["tool_accuracy"].items():
            for row in a["rows"]:
                if row["correct"]:
                    continue
                why = (f"malformed: {row['malformed'][:120]}" if row["malformed"]
                       else f"wrong call {row['wrong_call']}" if row["wrong_call"]
                       else f"answer {row['answer']!r}")
                why = f"calls {row['calls']}; then {why}"
                console.print(f"[dim]{r['model']} {mode} miss ({row['kind']}): {row['prompt']!r} → {why}[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="catalogue name (repeatable); default: both")
    parser.add_argument("--quick", action="store_true", help="short runs, 2 tool cases of each kind")
    parser.add_argument("--only", choices=["speed", "spec", "prefix", "tools"], action="append",
                        help="run only this part (repeatable)")
    parser.add_argument("--grammar", choices=["both", "on", "off"], default="both",
                        help="tool calling with grammar-constrained decoding, without, or both")
    parser.add_argument("--parallel", action="store_true",
                        help="tool calling: allow a JSON list of calls per reply (parallel_tool_calls)")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/local_llm.json "
                        "(local_llm_<parts>.json with --only)")
    args = parser.parse_args()
    models = args.model or ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    parts = args.only or ["speed", "spec", "prefix", "tools"]
    grammars = {"both": [True, False], "on": [True], "off": [False]}[args.grammar]
    if args.out is None:
        name = f"local_llm_{'_'.join(args.only)}.json" if args.only else "local_llm.json"
        args.out = HERE / "results" / name
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for m in models:  # the JSON is rewritten after each model, so a cut-off run keeps the rest
        results.append(bench_model(m, args.quick, parts, grammars, args.parallel))
        payload = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "loadavg_at_end": os.getloadavg()},
            "quick": args.quick,
            "parts": parts,
            "complete": len(results) == len(models),
            "results": results,
        }  # fmt: skip
        args.out.write_text(json.dumps(payload, indent=2))
    report(results)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
