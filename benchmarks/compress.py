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

Run:  python benchmarks/compress.py --only dense,mag50_oneshot      # some variants
      python benchmarks/compress.py --latency                       # time the exported variants
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
    args = parser.parse_args()
    if args.only:
        names = args.only.split(",")
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            sys.exit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
        run_variants(names)
    if args.latency:
        run_latency(args.rounds)
    if args.only or args.latency or args.table:
        print_table()
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
