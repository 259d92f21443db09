"""Energy per inference: the meter's own overhead, local LLMs, attention kernels, int8 vs float32.

Every figure comes from :class:`agentos.kernels.energy.EnergyMeter` with ``source="auto"`` and
prints the method behind it: on a machine without RAPL or NVML (a VM) that is the *model*
(process CPU time x the CPU's TDP per hardware thread, plus resident memory), so joules there
are CPU time in disguise and compare work done on the same machine, not wall-plug energy.

Rows:
1. ``overhead``: one metered window's cost (open + close) and its share of a 10 ms and a 100 ms
   window (target < 2 %), an interleaved A/B of a 50 ms CPU workload with and without a window,
   and the kernel's per-syscall share (:class:`SharedMeter` open + close).
2. ``llm``: Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M through llama.cpp (xllamacpp, in-process),
   and the same weights dequantized to float32 through transformers (``gguf_file=``); greedy
   decoding of the same prompts; tokens per joule, joules per token, tokens per second, and FLOPs
   estimated as 2 x 0.49e9 x tokens.
3. ``attention``: causal attention at T=8192 (B=1, H=4, D=64, float32), blockwise (1024-blocks)
   against the materialised vanilla reference; joules, seconds, analytic FLOPs.
4. ``sentiment``: the fine-tuned all-MiniLM-L6-v2 sentiment classifier
   (:func:`agentos.tools.compress.pipeline.sentiment_classifier`, fine-tuned on first use) in
   float32 and with int8 dynamic quantization (torch.ao): joules and milliseconds per sentence
   and accuracy over the test split (1,057 sentences, batches of 32).

    python benchmarks/energy.py [--quick] [--skip llm_fp32 attention ...]

Prints a table and writes benchmarks/results/energy.json; sections skipped in a run keep their
figures from the file's previous run (so the sections can run at different times).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agentos.kernels.energy import EnergyMeter, Reading, SharedMeter

RESULTS = Path(__file__).parent / "results" / "energy.json"
MODEL = "qwen2.5-coder-0.5b"
PARAMS = 0.49e9
PROMPTS = [
    "Write a Python function that returns the n-th Fibonacci number iteratively.",
    "Explain in three sentences what a hash map is.",
    "Write a Python function that checks whether a string is a palindrome.",
]
console = Console(width=150)


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def _count(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def _steps_for(seconds: float) -> int:
    t0 = time.perf_counter()
    _count(1_000_000)
    return int(1_000_000 * seconds / (time.perf_counter() - t0))


def _fig(r: Reading) -> dict[str, Any]:
    return r.as_dict()


def bench_overhead(quick: bool) -> dict[str, Any]:
    meter = EnergyMeter("auto")
    n = 500 if quick else 3000
    t0 = time.perf_counter()
    for _ in range(n):
        with meter:
            pass
    per_window = (time.perf_counter() - t0) / n
    shared = SharedMeter(meter.source)
    t0 = time.perf_counter()
    for _ in range(n):
        shared.close(shared.open())
    per_syscall = (time.perf_counter() - t0) / n
    reps = 10 if quick else 30
    steps = _steps_for(0.05)
    plain, metered = [], []
    for _ in range(reps):  # interleaved, so drift hits both alike
        t0 = time.perf_counter()
        _count(steps)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with meter:
            _count(steps)
        metered.append(time.perf_counter() - t0)
    ab = (statistics.median(metered) - statistics.median(plain)) / statistics.median(plain)
    return {
        "method": meter.method,
        "window_open_close_us": per_window * 1e6,
        "share_of_10ms_window": per_window / 0.01,
        "share_of_100ms_window": per_window / 0.1,
        "kernel_syscall_meter_us": per_syscall * 1e6,
        "ab_50ms_workload_overhead": ab,
        "note": "A/B: a fixed count loop of about 50 ms, medians of interleaved runs; on a shared "
                "machine its noise can exceed the window's cost",
    }


def _gguf_path() -> Path:
    from agentos.runtime.llm.models import resolve

    return resolve(MODEL)


def bench_llm_gguf(quick: bool, max_tokens: int) -> dict[str, Any]:
    from agentos.runtime.llm.engine import EngineConfig, close_engines, get_engine

    engine = get_engine(MODEL, EngineConfig(n_parallel=1))
    engine.chat([{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0)  # warm up
    meter = EnergyMeter("auto")
    prompt_tokens = completion_tokens = 0
    prompts = PROMPTS[:1] if quick else PROMPTS
    with meter as window:
        for prompt in prompts:
            usage = engine.chat([{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                temperature=0)["usage"]
            prompt_tokens += usage["prompt_tokens"]
            completion_tokens += usage["completion_tokens"]
        window.add_flops(2 * PARAMS * (prompt_tokens + completion_tokens),
                         "estimated: 2 x 0.49e9 params x tokens")
    close_engines()
    return _llm_row("GGUF Q4_K_M, llama.cpp", window.reading, prompt_tokens, completion_tokens)


def bench_llm_fp32(quick: bool, max_tokens: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32).eval()
    meter = EnergyMeter("auto")
    prompt_tokens = completion_tokens = 0
    prompts = PROMPTS[:1] if quick else PROMPTS
    with torch.inference_mode(), meter as window:
        for prompt in prompts:
            enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)
            ids = enc["input_ids"]
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
            prompt_tokens += ids.shape[1]
            completion_tokens += out.shape[1] - ids.shape[1]
        window.add_flops(2 * PARAMS * (prompt_tokens + completion_tokens),
                         "estimated: 2 x 0.49e9 params x tokens")
    return _llm_row("float32, transformers (dequantized from the GGUF)", window.reading,
                    prompt_tokens, completion_tokens)


def _llm_row(variant: str, r: Reading | None, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    assert r is not None
    return {
        "variant": variant, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "joules": r.joules, "seconds": r.seconds,
        "tokens_per_joule": completion_tokens / r.joules,
        "joules_per_token": r.joules / completion_tokens,
        "tokens_per_s": completion_tokens / r.seconds, "reading": _fig(r),
    }


def bench_attention(quick: bool) -> list[dict[str, Any]]:
    import torch

    from agentos.kernels.attention import blockwise_attention, vanilla_attention
    from agentos.kernels.flops import attention_flops

    t = 2048 if quick else 8192
    b, h, d = 1, 4, 64
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, t, d) for _ in range(3))
    rows = []
    with torch.inference_mode():
        blockwise_attention(q[:, :, :256], k[:, :, :256], v[:, :, :256], causal=True)  # warm up
        for name, run, flops in (
            ("blockwise (1024-blocks)", lambda: blockwise_attention(q, k, v, causal=True, block_size=1024),
             attention_flops("blockwise", b, h, t, d, causal=True, block_size=1024)),
            ("vanilla (materialised)", lambda: vanilla_attention(q, k, v, causal=True),
             attention_flops("dense", b, h, t, d)),
        ):
            meter = EnergyMeter("auto")
            with meter as window:
                run()
                window.add_flops(flops.value, flops.method)
            r = window.reading
            assert r is not None
            rows.append({"kernel": name, "seq_len": t, "joules": r.joules, "seconds": r.seconds,
                         "flops": flops.value, "joules_per_gflop": r.joules / (flops.value / 1e9),
                         "reading": _fig(r)})
    return rows


def bench_sentiment(quick: bool) -> list[dict[str, Any]]:
    import torch

    from agentos.kernels.quant import quantize_dynamic_int8
    from agentos.tools.compress.data import load_examples, split_examples
    from agentos.tools.compress.model import encode
    from agentos.tools.compress.pipeline import sentiment_classifier

    model, tokenizer = sentiment_classifier(train_if_missing=True, progress=True)
    test = split_examples(load_examples()).test
    if quick:
        test = test[:256]
    batches = [encode(tokenizer, [e.text for e in test[i:i + 32]], 64) for i in range(0, len(test), 32)]
    labels = torch.tensor([e.label for e in test])
    rows = []
    for variant, m in (("float32", model), ("int8 dynamic (torch.ao)", quantize_dynamic_int8(copy.deepcopy(model)))):
        m.eval()
        with torch.inference_mode():
            m(**batches[0])  # warm up
            meter = EnergyMeter("auto")
            with meter as window:
                preds = torch.cat([m(**batch).logits.argmax(-1) for batch in batches])
        r = window.reading
        assert r is not None
        rows.append({
            "variant": variant, "sentences": len(test),
            "accuracy": float((preds == labels).float().mean()),
            "joules_per_inference": r.joules / len(test),
            "ms_per_inference": r.seconds / len(test) * 1e3, "reading": _fig(r),
        })
    fp32, int8 = rows
    int8["energy_saving_vs_float32"] = 1 - int8["joules_per_inference"] / fp32["joules_per_inference"]
    int8["accuracy_points_vs_float32"] = (int8["accuracy"] - fp32["accuracy"]) * 100
    return rows


def _print(results: dict[str, Any]) -> None:
    o = results.get("overhead")
    if o:
        table = Table("meter overhead", "value", title="EnergyMeter overhead")
        table.add_row("one window (open + close)", f"{o['window_open_close_us']:.1f} µs")
        table.add_row("share of a 10 ms window", f"{o['share_of_10ms_window']:.3%}")
        table.add_row("share of a 100 ms window", f"{o['share_of_100ms_window']:.3%}")
        table.add_row("A/B, 50 ms workload", f"{o['ab_50ms_workload_overhead']:+.3%}")
        table.add_row("kernel, per syscall", f"{o['kernel_syscall_meter_us']:.1f} µs")
        console.print(table)
    if results.get("llm"):
        table = Table("Qwen2.5-Coder-0.5B", "tokens in/out", "J", "s", "tokens/J", "J/token", "tokens/s",
                      title="Local LLM, greedy decoding")
        for r in results["llm"]:
            table.add_row(r["variant"], f"{r['prompt_tokens']}/{r['completion_tokens']}", f"{r['joules']:.2f}",
                          f"{r['seconds']:.2f}", f"{r['tokens_per_joule']:.3f}", f"{r['joules_per_token']:.3f}",
                          f"{r['tokens_per_s']:.1f}")
        console.print(table)
    if results.get("attention"):
        table = Table("causal attention", "T", "J", "s", "GFLOP", "J/GFLOP", title="Attention kernels")
        for r in results["attention"]:
            table.add_row(r["kernel"], str(r["seq_len"]), f"{r['joules']:.2f}", f"{r['seconds']:.2f}",
                          f"{r['flops'] / 1e9:.1f}", f"{r['joules_per_gflop']:.3f}")
        console.print(table)
    if results.get("sentiment"):
        table = Table("MiniLM sentiment", "accuracy", "mJ/inference", "ms/inference", "energy saved",
                      title="float32 vs int8 (per sentence, batches of 32)")
        for r in results["sentiment"]:
            saved = r.get("energy_saving_vs_float32")
            table.add_row(r["variant"], f"{r['accuracy']:.4f}", f"{r['joules_per_inference'] * 1e3:.2f}",
                          f"{r['ms_per_inference']:.2f}", "-" if saved is None else f"{saved:.1%}")
        console.print(table)
    methods = sorted({m for m in _methods(results)})
    console.print("[bold]methods[/]:")
    for m in methods:
        console.print(f"  - {m}")


def _methods(node: Any) -> list[str]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "method" and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_methods(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_methods(item))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["overhead", "llm_gguf", "llm_fp32", "attention", "sentiment"])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # Sections not run this time are kept from the last run's file (runs may be split up).
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.update({"machine": platform.platform(), "cpus": os.cpu_count(), "quick": args.quick})
    ran = {"llm_gguf": "GGUF", "llm_fp32": "float32"}
    results["llm"] = [r for r in results.get("llm", [])
                      if not any(r["variant"].startswith(ran[k]) for k in ran if k not in args.skip)]
    steps = [("overhead", lambda: results.__setitem__("overhead", bench_overhead(args.quick))),
             ("llm_gguf", lambda: results["llm"].append(bench_llm_gguf(args.quick, args.max_tokens))),
             ("llm_fp32", lambda: results["llm"].append(bench_llm_fp32(args.quick, args.max_tokens))),
             ("attention", lambda: results.__setitem__("attention", bench_attention(args.quick))),
             ("sentiment", lambda: results.__setitem__("sentiment", bench_sentiment(args.quick)))]
    for name, step in steps:
        if name in args.skip:
            continue
        console.print(f"[dim]running {name}...[/]")
        step()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # after each step: a crash keeps the rest
    _print(results)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
