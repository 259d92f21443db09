"""Compression of the MiniLM sentiment classifier: what 50 % sparsity costs and what makes it
smaller or faster.

Variants (each a :class:`~agentos.tools.compress.recipe.Recipe` over the fine-tuned classifier
from :func:`~agentos.tools.compress.pipeline.sentiment_classifier`, seed 0, max 64 tokens):

    dense                 the fine-tuned float32 model; also int8 dynamic quantization of it
    mag50_oneshot         50 % unstructured magnitude, one shot, no recovery
    wanda50_oneshot       50 % unstructured Wanda (per output row), one shot, no recovery
    mag50_gradual_kd      50 % magnitude, cubic schedule during RECOVER_STEPS of distillation
    mag50_gradual_kd_150  the same with 150 recovery steps
    wanda24_kd            2:4 Wanda, one shot, then RECOVER_STEPS of distillation
    mag80_gradual_kd      80 % magnitude, cubic schedule, distillation
    rigl80_kd             80 % unstructured with RigL prune-and-regrow during distillation
    structured30_kd       30 % of heads and FFN neurons removed per layer, distillation; also int8

Sparsity is over the encoder's linear weights (10.6 M of the model's 22.7 M parameters; the
word embeddings, 11.7 M, are not pruned). Accuracy is on the fixed 1,057-sentence test split.
Sizes are the exported files on disk. Latency is measured in a separate phase (``--latency``)
that loads every exported variant and times them round-robin on the same batch (32 test
sentences), so load from other jobs hits them alike; median of the rounds. Without that phase
the table shows each variant's own latency, measured in its run (median of 5, same batch).

Each run adds its variants to ``benchmarks/results/compress.json`` (keyed by variant) so the
variants can be run in pieces under the shared CPU lock; ``--table`` prints what is there and
saves ``benchmarks/results/compress.png`` (accuracy against sparsity).

``--llm`` runs the LLM part: the packaged Qwen2.5-Coder-0.5B (its GGUF, Q4_K_M, dequantized to
float32 by transformers) pruned one-shot by magnitude and by Wanda, at 50 % unstructured and 2:4,
and weight-only int8/int4 quantized, each scored by perplexity on held-out Python standard
library source (:mod:`agentos.tools.compress.llm`: the evaluation files and the calibration
files never overlap). Results go to the ``llm`` entry of the same JSON.

Run:  python benchmarks/compress.py --only dense,mag50_oneshot      # some variants
      python benchmarks/compress.py --latency                       # time the exported variants
      python benchmarks/compress.py --llm                           # the Qwen-0.5B perplexity table
      python benchmarks/compress.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
OUT_JSON = RESULTS / "compress.json"
EXPORTS = Path(os.environ.get("AGENTOS_COMPRESS_BENCH_DIR", "/tmp/agentos-compress-bench"))
RECOVER_STEPS = 30
KD = {"steps": RECOVER_STEPS, "batch_size": 32, "lr": 5e-5, "distill": True}
VARIANTS: dict[str, dict[str, Any]] = {
    "dense": {"quantize": "int8_dynamic"},
    "mag50_oneshot": {"prune": {"method": "magnitude", "pattern": "unstructured", "sparsity": 0.5}},
    "wanda50_oneshot": {"prune": {"method": "wanda", "pattern": "unstructured", "sparsity": 0.5}},
    "mag50_gradual_kd": {"prune": {"method": "magnitude", "pattern": "unstructured", "sparsity": 0.5, "schedule": "cubic"}, "recover": KD},
    "mag50_gradual_kd_150": {"prune": {"method": "magnitude", "pattern": "unstructured", "sparsity": 0.5, "schedule": "cubic"},
                             "recover": {**KD, "steps": 150}},
    "wanda24_kd": {"prune": {"method": "wanda", "pattern": "2:4", "sparsity": 0.5}, "recover": KD},
    "mag80_gradual_kd": {"prune": {"method": "magnitude", "pattern": "unstructured", "sparsity": 0.8, "schedule": "cubic"}, "recover": KD},
    "rigl80_kd": {"prune": {"method": "magnitude", "pattern": "rigl", "sparsity": 0.8}, "recover": KD},
    "structured30_kd": {"prune": {"pattern": "structured", "sparsity": 0.3}, "recover": KD, "quantize": "int8_dynamic"},
}
console = Console(width=170)


def _load() -> dict[str, Any]:
    return json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {"variants": {}, "latency": {}}


def _save(data: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    OUT_JSON.write_text(json.dumps(data, indent=2))


def run_variants(names: list[str]) -> None:
    from agentos.tools.compress.pipeline import compress, sentiment_classifier
    from agentos.tools.compress.recipe import Recipe

    sentiment_classifier(progress=True)  # fine-tunes once if not cached
    data = _load()
    for name in names:
        fields = {"name": name, "model": "minilm-sentiment", "seed": 0, "max_seq_len": 64,
                  "evaluate": {"dense_baseline": False, "latency_repeats": 5}, "export": str(EXPORTS / name), **VARIANTS[name]}
        recipe = Recipe(**fields)
        console.print(f"[bold]{name}[/]: {json.dumps(VARIANTS[name])}")
        start = time.perf_counter()
        report = compress(recipe, progress=True, log=lambda line: console.print(f"  [dim]{line}[/]"))
        entry = report.to_dict()
        entry["wall_s"] = round(time.perf_counter() - start, 1)
        entry["command"] = f"python benchmarks/compress.py --only {name}"
        data["variants"][name] = entry
        data["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
        _save(data)


def _latency_models() -> dict[str, Any]:
    from agentos.tools.compress.pipeline import load_exported

    models: dict[str, Any] = {}
    for name in VARIANTS:
        folder = EXPORTS / name
        if not (folder / "config.json").is_file():
            continue
        models[name], tokenizer = load_exported(folder)
        if (folder / "model_int8_dynamic.pt").is_file():
            models[f"{name}+int8"], _ = load_exported(folder, int8=True)
    return models, tokenizer  # type: ignore[return-value]


def run_latency(rounds: int) -> None:
    import torch

    from agentos.tools.compress.data import load_examples, split_examples
    from agentos.tools.compress.model import encode

    models, tokenizer = _latency_models()
    test = split_examples(load_examples(), seed=0).test
    batch = encode(tokenizer, [e.text for e in test[:32]], 64)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():  # warm-up
            model(**batch)
        for _ in range(rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model(**batch)
                times[name].append(time.perf_counter() - start)
    # the sparse-kernel question: does a 50 % unstructured weight make a CPU matmul faster?
    torch.manual_seed(0)
    w = torch.randn(1536, 384)
    w[torch.rand_like(w) < 0.5] = 0
    x = torch.randn(int(batch["input_ids"].numel()), 384)
    sparse = w.to_sparse_csr()
    kernel: dict[str, list[float]] = {"dense matmul (50 % zeros)": [], "torch CSR sparse matmul (50 % zeros)": []}
    for _ in range(rounds):
        start = time.perf_counter(); x @ w.T; kernel["dense matmul (50 % zeros)"].append(time.perf_counter() - start)  # noqa: E702
        start = time.perf_counter(); (sparse @ x.T).T; kernel["torch CSR sparse matmul (50 % zeros)"].append(time.perf_counter() - start)  # noqa: E702
    data = _load()
    data["latency"] = {
        "batch": {"sentences": 32, "tokens": int(batch["input_ids"].numel()), "threads": torch.get_num_threads(), "rounds": rounds,
                  "load_avg": os.getloadavg()},
        "models": {n: {"median_s": statistics.median(t), "min_s": min(t)} for n, t in times.items()},
        "linear_1536x384": {n: {"median_s": statistics.median(t)} for n, t in kernel.items()},
        "command": f"python benchmarks/compress.py --latency --rounds {rounds}",
    }
    _save(data)


LLM_VARIANTS: dict[str, dict[str, Any]] = {
    "dense": {},
    "magnitude 50 %": {"prune": {"method": "magnitude", "pattern": "unstructured", "sparsity": 0.5}},
    "wanda 50 %": {"prune": {"method": "wanda", "pattern": "unstructured", "sparsity": 0.5}},
    "magnitude 2:4": {"prune": {"method": "magnitude", "pattern": "2:4", "sparsity": 0.5}},
    "wanda 2:4": {"prune": {"method": "wanda", "pattern": "2:4", "sparsity": 0.5}},
    "int8 weight-only": {"quantize": 8},
    "int4 weight-only g64": {"quantize": 4},
}


def run_llm(model_name: str, seq_len: int, max_tokens: int, calib_samples: int, only: list[str] | None) -> None:
    import torch
    from rich.progress import Progress

    from agentos.kernels.quant import quantize_weight_only
    from agentos.runtime.llm.models import model_path
    from agentos.tools.compress.llm import (calibration_batches, linear_weight_bytes, perplexity, prune_causal_lm,
                                            stdlib_files, stdlib_text)
    from agentos.tools.compress.prune import PruneSpec
    from agentos.tools.long_context.model import load_gguf_model

    torch.manual_seed(0)
    path = model_path(model_name)
    console.print(f"loading {path} (float32)")
    model, tokenizer = load_gguf_model(path)
    dense = {k: v.detach().clone() for k, v in model.state_dict().items()}
    text = stdlib_text("eval")
    calib = calibration_batches(tokenizer, stdlib_text("calibration"), samples=calib_samples, seq_len=seq_len)
    data = _load()
    llm = data.get("llm", {}) if data.get("llm", {}).get("model") == model_name else {}
    llm.update({"model": model_name, "gguf": path.name, "seq_len": seq_len, "max_tokens": max_tokens,
                "calibration": {"samples": calib_samples, "seq_len": seq_len, "files": len(stdlib_files("calibration"))},
                "eval_files": len(stdlib_files("eval")), "python": platform.python_version(), "threads": torch.get_num_threads(),
                "command": f"python benchmarks/compress.py --llm --llm-model {model_name} --seq-len {seq_len} "
                           f"--max-tokens {max_tokens} --calib-samples {calib_samples}"})
    rows = llm.setdefault("variants", {})
    for name, variant in LLM_VARIANTS.items():
        if only and name not in only:
            continue
        model.load_state_dict(dense)
        start = time.perf_counter()
        entry: dict[str, Any] = {"variant": variant}
        candidate = model
        if "prune" in variant:
            spec = PruneSpec(**variant["prune"])
            candidate, _ = prune_causal_lm(model, spec, calib if spec.method == "wanda" else None, inplace=True)
        if "quantize" in variant:
            candidate = quantize_weight_only(model, variant["quantize"], group_size=64, skip=("lm_head",))
        else:  # the measured fraction of zeros (the GGUF's dequantized 4-bit weights hold some)
            from agentos.kernels.sparsity import sparsity_of
            from agentos.tools.compress.prune import prunable_linears

            weights = [lin.weight.detach() for lin in prunable_linears(candidate).values()]
            entry["sparsity"] = sum(sparsity_of(w) * w.numel() for w in weights) / sum(w.numel() for w in weights)
        entry["prepare_s"] = round(time.perf_counter() - start, 1)
        entry["linear_weight_bytes"] = linear_weight_bytes(candidate)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"{name}: perplexity", total=None)
            start = time.perf_counter()
            ppl = perplexity(candidate, tokenizer, text, seq_len=seq_len, max_tokens=max_tokens,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
        entry["eval_s"] = round(time.perf_counter() - start, 1)
        entry.update({"perplexity": ppl.perplexity, "predicted_tokens": ppl.predicted, "windows": ppl.windows,
                      "tokens_per_s": round(ppl.windows * ppl.seq_len / entry["eval_s"], 1)})
        console.print(f"{name}: perplexity {ppl.perplexity:.3f} over {ppl.predicted} tokens, {entry['eval_s']} s")
        rows[name] = entry
        llm["load_avg"] = os.getloadavg()
        data["llm"] = llm
        _save(data)
        del candidate
    llm["int8_kernel_ms"] = time_int8_kernel()
    data["llm"] = llm
    _save(data)


def time_int8_kernel(rounds: int = 5) -> dict[str, dict[str, float]]:
    """Median ms of one 4864x896 linear (the 0.5B's MLP up projection) at 1, 16 and 512 rows:
    float32, weight-only int8 dequantized per call, and PyTorch's ``_weight_int8pack_mm``."""
    import torch

    from agentos.kernels.quant import WeightOnlyInt8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(896, 4864, bias=False)
    ways = {"float32": linear, "int8, dequantized": WeightOnlyInt8Linear(linear, use_int8pack=False),
            "int8, _weight_int8pack_mm": WeightOnlyInt8Linear(linear, use_int8pack=True)}
    out: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for rows in (1, 16, 512):
            x = torch.randn(rows, 896)
            out[str(rows)] = {}
            for name, module in ways.items():
                module(x)
                times = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    module(x)
                    times.append(time.perf_counter() - start)
                out[str(rows)][name] = round(1e3 * statistics.median(times), 3)
    return out


def print_llm_table(data: dict[str, Any]) -> None:
    llm = data.get("llm")
    if not llm:
        return
    rows = llm["variants"]
    dense = rows.get("dense")
    table = Table("variant", "decoder-linear sparsity", "perplexity", "Δ vs dense", "linear weights MiB", "eval tokens/s", "prepare s",
                  title=f"{llm['model']} ({llm['gguf']}, float32), perplexity on held-out stdlib source: {llm['eval_files']} files, "
                        f"{next(iter(rows.values()))['predicted_tokens']} predicted tokens in windows of {llm['seq_len']}")
    for name, r in rows.items():
        delta = f"{r['perplexity'] - dense['perplexity']:+.3f}" if dense else "-"
        table.add_row(name, f"{100 * r['sparsity']:.2f} %" if "sparsity" in r else "-", f"{r['perplexity']:.3f}", delta,
                      f"{r['linear_weight_bytes'] / 2**20:.1f}", f"{r['tokens_per_s']:.0f}", f"{r['prepare_s']:.1f}")
    console.print(table)
    console.print(f"[dim]calibration (Wanda): {llm['calibration']}; Python {llm['python']}; {llm['threads']} threads; "
                  f"command: {llm['command']}[/]")
    kernel = llm.get("int8_kernel_ms")
    if kernel:
        ways = list(next(iter(kernel.values())))
        table = Table("rows", *ways, title="one 4864x896 linear, median ms")
        for rows, times in kernel.items():
            table.add_row(rows, *(f"{times[w]:.2f}" for w in ways))
        console.print(table)


def _rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    latency = data.get("latency", {}).get("models", {})
    for name, v in data["variants"].items():
        sizes = v["sizes"]
        smallest = min(sizes.get("sparse_model.pt", sizes["model.safetensors"]), sizes["model.safetensors"])
        rows.append({"variant": name, "sparsity": v["sparsity"], "accuracy": v["accuracy"], "params": v["parameters"],
                     "safetensors": sizes["model.safetensors"], "smallest": smallest,
                     "latency": latency.get(name, {}).get("median_s", v["latency"].get("median_s")), "wall_s": v["wall_s"]})
        if v.get("accuracy_quantized") is not None:
            rows.append({"variant": f"{name}+int8", "sparsity": v["sparsity"], "accuracy": v["accuracy_quantized"], "params": v["parameters"],
                         "safetensors": None, "smallest": sizes.get("model_int8_dynamic.pt"),
                         "latency": latency.get(f"{name}+int8", {}).get("median_s", v["latency_quantized"].get("median_s")), "wall_s": None})
    return rows


def print_table() -> None:
    data = _load()
    print_llm_table(data)
    if not data["variants"]:
        sys.exit("no results yet: run with --only NAME first")
    rows = _rows(data)
    dense = next((r for r in rows if r["variant"] == "dense"), None)
    table = Table("variant", "encoder sparsity", "test accuracy", "Δ vs dense", "params", "safetensors MiB",
                  "smallest file MiB", "latency ms / 32", "speed-up", "run s",
                  title=f"MiniLM sentiment, test split ({data['variants'][next(iter(data['variants']))]['eval_examples']} sentences), seed 0")
    mib = lambda b: "-" if b is None else f"{b / 2**20:.1f}"  # noqa: E731
    for r in rows:
        delta = f"{100 * (r['accuracy'] - dense['accuracy']):+.2f}" if dense else "-"
        speed = f"{dense['latency'] / r['latency']:.2f}×" if dense and dense["latency"] and r["latency"] else "-"
        table.add_row(r["variant"], f"{100 * r['sparsity']:.1f} %", f"{100 * r['accuracy']:.2f} %", delta, f"{r['params']:,}",
                      mib(r["safetensors"]), mib(r["smallest"]), "-" if r["latency"] is None else f"{r['latency'] * 1e3:.0f}",
                      speed, "-" if r["wall_s"] is None else f"{r['wall_s']:.0f}")
    console.print(table)
    lat = data.get("latency", {})
    if lat:
        console.print(f"latency: {lat['batch']}  ({lat['command']})")
        for name, v in lat["linear_1536x384"].items():
            console.print(f"  {name}: {v['median_s'] * 1e3:.2f} ms")
    for name, v in data["variants"].items():
        console.print(f"[dim]{name}: {v['command']}; stages {v['stage_seconds']}[/]")
    _plot(rows)


def _plot(rows: list[dict[str, Any]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(100 * r["sparsity"], 100 * r["accuracy"])
        ax.annotate(r["variant"], (100 * r["sparsity"], 100 * r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("sparsity of the encoder linear weights (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("MiniLM sentiment: accuracy against sparsity")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "compress.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated variants: {', '.join(VARIANTS)}")
    parser.add_argument("--latency", action="store_true", help="time the exported variants round-robin")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--table", action="store_true", help="print the table from the JSON")
    parser.add_argument("--llm", action="store_true", help="prune and quantize the packaged Qwen2.5-Coder-0.5B, scored by perplexity")
    parser.add_argument("--llm-model", default="qwen2.5-coder-0.5b", help="catalogue name of the GGUF model for --llm")
    parser.add_argument("--llm-only", help=f"comma-separated LLM variants: {', '.join(LLM_VARIANTS)}")
    parser.add_argument("--seq-len", type=int, default=512, help="perplexity window (tokens)")
    parser.add_argument("--max-tokens", type=int, default=16_384, help="tokens of evaluation text scored")
    parser.add_argument("--calib-samples", type=int, default=16, help="Wanda calibration windows of --seq-len tokens")
    args = parser.parse_args()
    if args.llm:
        llm_only = args.llm_only.split(",") if args.llm_only else None
        unknown = [n for n in llm_only or [] if n not in LLM_VARIANTS]
        if unknown:
            sys.exit(f"unknown LLM variants {unknown}; choose from {', '.join(LLM_VARIANTS)}")
        run_llm(args.llm_model, args.seq_len, args.max_tokens, args.calib_samples, llm_only)
    if args.only:
        names = args.only.split(",")
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            sys.exit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
        run_variants(names)
    if args.latency:
        run_latency(args.rounds)
    if args.only or args.latency or args.table or args.llm:
        print_table()
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
