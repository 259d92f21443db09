"""Local LLM layer: agentos (LocalEngine, litellm ``local/`` provider) against raw xllamacpp.

Measures, per model, on the same prompt (a fresh nonce per run defeats the prompt cache):
prompt and decode tokens/s and time to first token through raw ``xllamacpp.Server``, through
``LocalEngine.chat_stream`` and through ``litellm.completion(model="local/...", stream=True)``;
aggregate decode tokens/s with 1, 2 and 4 concurrent requests; peak RSS; and tool-calling
accuracy on ``benchmarks/data/tool_prompts.json`` through the litellm provider.

    python benchmarks/local_llm.py                 # both models, full
    python benchmarks/local_llm.py --quick         # shorter runs, fewer prompts
    python benchmarks/local_llm.py --model qwen2.5-coder-0.5b

Writes ``benchmarks/results/local_llm.json``.
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


def _args_match(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    for key, want in expected.items():
        have = got.get(key)
        if isinstance(want, str):
            if not isinstance(have, str) or have.strip().lower() != want.lower():
                return False
        elif isinstance(want, (int, float)):
            if not isinstance(have, (int, float)) or abs(float(have) - float(want)) > 1e-6:
                return False
    return True


def tool_accuracy(model: str, limit: int | None) -> dict[str, Any]:
    import litellm

    from agentos.runtime.llm.toolcalls import MalformedToolCall, parse_tool_calls

    data = json.loads((HERE / "data" / "tool_prompts.json").read_text())
    tools = data["tools"]
    prompts = data["prompts"][:limit] if limit else data["prompts"]
    rows = []
    t0 = time.perf_counter()
    for case in prompts:
        resp = litellm.completion(
            model=f"local/{model}",
            messages=[
                {"role": "system", "content": "You are an assistant that uses tools."},
                {"role": "user", "content": case["prompt"]},
            ],
            tools=tools, temperature=0, max_tokens=256,
        )  # fmt: skip
        msg = resp.choices[0].message
        calls = [
            {"name": tc.function.name, "arguments": json.loads(tc.function.arguments)}
            for tc in (msg.tool_calls or [])
        ]
        valid = bool(calls)
        if valid:  # re-validate against the specs with the parser (required args, types)
            try:
                parse_tool_calls(json.dumps(calls), tools)
            except MalformedToolCall:
                valid = False
        right_tool = valid and calls[0]["name"] == case["tool"]
        right_args = right_tool and _args_match(case["args"], calls[0]["arguments"])
        rows.append(
            {"prompt": case["prompt"], "expected": case["tool"], "calls": calls,
             "content": msg.content, "valid": valid, "right_tool": right_tool, "right_args": right_args}
        )  # fmt: skip
    n = len(rows)
    return {
        "n": n,
        "valid_pct": 100 * sum(r["valid"] for r in rows) / n,
        "right_tool_pct": 100 * sum(r["right_tool"] for r in rows) / n,
        "right_args_pct": 100 * sum(r["right_args"] for r in rows) / n,
        "seconds": time.perf_counter() - t0,
        "rows": rows,
    }


def bench_model(model: str, quick: bool) -> dict[str, Any]:
    import xllamacpp

    from agentos.runtime.llm.engine import EngineConfig, close_engines, get_engine
    from agentos.runtime.llm.litellm_provider import register_local_provider
    from agentos.runtime.llm.models import install

    path = install(model, progress=True)
    reps = 1 if quick else 3
    max_tokens = 48 if quick else 128
    n_ctx = 2048
    console.print(f"[bold]{model}[/]: loading (4 slots × {n_ctx} tokens)…")
    engine = get_engine(model, EngineConfig(n_ctx=n_ctx, n_parallel=4))
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
    acc = tool_accuracy(model, 8 if quick else None)
    close_engines()
    return {
        "model": model,
        "max_tokens": max_tokens,
        "repetitions": reps,
        "speed": speed,
        "end_to_end": e2e,
        "concurrency": conc,
        "peak_rss_mib_engine_only": rss_engine,
        "peak_rss_mib_process": _peak_rss_mib(),
        "tool_accuracy": acc,
    }


def report(results: list[dict[str, Any]]) -> None:
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
    acc = Table(title="tool calling through litellm local/ (benchmarks/data/tool_prompts.json)")
    for col in ("model", "prompts", "valid call", "right tool", "right args", "peak RSS MiB (engine)", "seconds"):
        acc.add_column(col)
    for r in results:
        a = r["tool_accuracy"]
        acc.add_row(
            r["model"], str(a["n"]), f"{a['valid_pct']:.1f}%", f"{a['right_tool_pct']:.1f}%",
            f"{a['right_args_pct']:.1f}%", f"{r['peak_rss_mib_engine_only']:.0f}", f"{a['seconds']:.0f}",
        )  # fmt: skip
    console.print(acc)
    for r in results:
        misses = [row for row in r["tool_accuracy"]["rows"] if not row["right_args"]]
        for row in misses:
            console.print(f"[dim]{r['model']} miss: {row['prompt']!r} → {row['calls'] or row['content']!r}[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="catalogue name (repeatable); default: both")
    parser.add_argument("--quick", action="store_true", help="short runs, 8 tool prompts")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "local_llm.json")
    args = parser.parse_args()
    models = args.model or ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    results = [bench_model(m, args.quick) for m in models]
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg()},
        "quick": args.quick,
        "results": results,
    }  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
