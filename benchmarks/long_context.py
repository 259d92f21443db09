"""Long-context attention: time and peak memory per rank of vanilla, blockwise, SDPA and ring.

    python benchmarks/long_context.py                    # T = 4k, 8k, 16k, 32k; ring on 2 and 4 ranks
    python benchmarks/long_context.py --quick            # T = 4k, 8k; ring on 2 ranks
    python benchmarks/long_context.py --seq-lens 4096 16384 --ranks 2
    python benchmarks/long_context.py --long             # adds T = 128k, ring on 4 ranks only
    python benchmarks/long_context.py --model            # Qwen2.5-Coder-0.5B forward on 16k tokens instead
    python benchmarks/long_context.py --model --model-seq-lens 4096 8192

Shapes: B=1, H=8, D=64, float32, causal self-attention (``--no-causal`` for full), forward only
(``--backward`` adds the backward pass to the timed region).

Each row is one :func:`agentos.tools.long_context.benchmark.measure` (the same measurement the
``run_attention_benchmark`` tool makes): fresh processes (one for the single-process methods, P for
ring), so memory numbers do not leak between runs.

Memory method: the Linux peak resident set size of each process (``getrusage(RUSAGE_SELF)
.ru_maxrss``, a lifetime high-water mark) minus the process's RSS just before the timed call
(after torch is imported, the inputs exist and a 256-row warm-up ran). It counts everything the
call allocated (intermediates, output, communication buffers), as the kernel sees it; it is per
rank, the max over ranks is reported. ``tracemalloc`` would not see torch's allocations, hence RSS.

Vanilla attention materialises ``B*H*T*T`` float32 scores several times; before running it the
benchmark estimates its peak (``4`` score-sized buffers) and reports ``OOM (est X GiB)`` instead of
running when the estimate exceeds ``--mem-cap-gib`` (default 8 GiB, the machine is shared).

Ranks are processes on this one machine: with fewer cores than ranks they time-share the CPU, so
ring timings here show the overhead of the ring, not a speed-up; the memory column shows what
each rank would need on its own device. Results go to ``benchmarks/results/long_context.json``.

``--model [NAME]`` runs a different table instead: the real model (default the catalogue's
``qwen2.5-coder-0.5b`` GGUF, float32) forward over T tokens of real text (the stdlib's ``*.py``
files concatenated in sorted order), with transformers' ``eager`` attention, ``agentos_blockwise``
and ``agentos_ring`` on ``--model-ranks`` processes; ``logits_to_keep=1`` so the T x vocab logits
are not part of it. The GGUF is converted once to safetensors under ``~/.cache/agentos/`` so each
fresh process loads in seconds. Memory is per-process peak RSS (``VmHWM``, reset after the model
is loaded and warmed up) minus RSS at that point. Eager materialises ``heads*T*T`` float32 scores ~``EAGER_BUFFERS`` times per
layer; above ``--mem-cap-gib`` it is reported as ``OOM (est X GiB)``. It is not part of the default
run: on 2 shared CPU cores one 16k-token forward takes over ten minutes per method. Results go to
``benchmarks/results/long_context_model.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from agentos.tools.long_context.benchmark import (
    BATCH,
    HEAD_DIM,
    HEADS,
    measure,
    rss_bytes,
    vanilla_estimate_gib,
)

__all__ = ["main", "run_model_benchmark", "stdlib_text"]

GIB = 1024**3
RESULTS = Path(__file__).resolve().parent / "results" / "long_context.json"
MODEL_RESULTS = RESULTS.with_name("long_context_model.json")
EAGER_BUFFERS = 3  # transformers eager attention: scores, scores + mask, softmax
MODEL_METHODS = ("eager", "blockwise", "ring")


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row["status"] != "ok":
        return row["status"]
    return f"{row['time_s']:.2f} s / {row['peak_mem_gib_per_rank']:.2f} GiB"


def _print_table(rows: list[dict[str, Any]], methods: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("T", justify="right")
    for m in methods:
        table.add_column(m, justify="right")
    for t in sorted({r["seq_len"] for r in rows}):
        by_method = {r["method"]: r for r in rows if r["seq_len"] == t}
        table.add_row(f"{t:,}", *(_cell(by_method.get(m)) for m in methods))
    Console().print(table)


# --- the real model ----------------------------------------------------------------------------


def stdlib_text(min_chars: int) -> str:
    """At least ``min_chars`` of Python source: the stdlib's top-level ``*.py`` files, sorted."""
    import sysconfig

    parts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(f"# file: {path.name}\n{text}\n")
        total += len(parts[-1])
        if total >= min_chars:
            break
    return "".join(parts)


def _model_dir(gguf: Path) -> Path:
    """A float32 copy of the GGUF model (``model.pt``, ``config.json``) and its tokenizer, made once.

    transformers cannot ``save_pretrained`` a GGUF-loaded model, so the state dict goes through
    ``torch.save``; fresh processes then load in seconds instead of de-quantising again.
    """
    out = Path("~/.cache/agentos/hf").expanduser() / gguf.stem
    if not (out / "model.pt").is_file():
        import torch

        from agentos.tools.long_context.model import load_gguf_model

        model, tokenizer = load_gguf_model(gguf)
        tmp = out.with_name(out.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.to_json_file(tmp / "config.json")
        tokenizer.save_pretrained(tmp)
        torch.save(model.state_dict(), tmp / "model.pt")
        tmp.rename(out)
    return out


def _load_model(model_dir: str, attn_implementation: str) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    state = torch.load(Path(model_dir) / "model.pt", mmap=True, weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def _reset_peak_rss() -> None:
    """Reset the kernel's RSS high-water mark (``VmHWM``) of this process (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _hwm_rss_bytes() -> int:
    """``VmHWM``: peak RSS since the last :func:`_reset_peak_rss` (``ru_maxrss`` never resets)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _run_model(rank: int, world_size: int, model_dir: str, method: str, ids: Any, repeats: int) -> dict[str, Any]:
    """Rank function: load the model, warm up on 128 tokens, time the full forward pass."""
    import torch
    import torch.distributed as dist

    from agentos.tools.long_context.attention import BLOCKWISE, RING, register_attention, ring_context, ring_inputs

    register_attention()
    impl = {"eager": "eager", "blockwise": BLOCKWISE, "ring": RING}[method]
    model = _load_model(model_dir, impl)

    def forward(ids: torch.Tensor) -> None:
        seq_len = ids.shape[1]
        if method != "ring":
            model(ids, use_cache=False, logits_to_keep=1)
            return
        local, pos = ring_inputs(ids, rank, world_size)
        with ring_context(seq_len=seq_len):
            model(input_ids=local, position_ids=pos, use_cache=False, logits_to_keep=1)

    with torch.no_grad():
        forward(ids[:, :128])
        if world_size > 1:
            dist.barrier()
        base = rss_bytes()
        _reset_peak_rss()  # the load's transient copies of the weights stay out of the peak
        times = []
        for _ in range(repeats):
            if world_size > 1:
                dist.barrier()
            start = time.perf_counter()
            forward(ids)
            times.append(time.perf_counter() - start)
    peak = _hwm_rss_bytes()
    return {"time_s": min(times), "peak_extra_bytes": max(0, peak - base), "threads": torch.get_num_threads()}


def _eager_estimate_gib(config: Any, seq_len: int) -> float:
    return config.num_attention_heads * seq_len * seq_len * 4 * EAGER_BUFFERS / GIB


def run_model_benchmark(args: argparse.Namespace, argv: list[str] | None) -> int:
    """The ``--model`` table: eager vs blockwise vs ring on the real model, written to JSON."""
    from transformers import AutoConfig, AutoTokenizer

    from agentos.kernels.launch import spawn
    from agentos.runtime.llm.models import resolve

    gguf = resolve(args.model)
    model_dir = _model_dir(gguf)
    config = AutoConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    longest = max(args.model_seq_lens)
    text = stdlib_text(min_chars=longest * 5)  # ~3-4 characters a token in Python source
    all_ids = tokenizer(text, return_tensors="pt").input_ids
    if all_ids.shape[1] < longest:
        raise SystemExit(f"only {all_ids.shape[1]} tokens of stdlib text, need {longest}")
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    out = args.out if args.out != RESULTS else MODEL_RESULTS

    def write() -> None:  # after every row: a long run that is stopped keeps what it measured
        import torch

        meta = {
            "model": str(gguf),
            "dtype": "float32",
            "document": "stdlib top-level *.py files in sorted order (benchmarks.long_context.stdlib_text)",
            "forward": "model(input_ids, use_cache=False, logits_to_keep=1), no grad",
            "repeats": args.model_repeats,
            "time_method": "min over repeats of wall time of one forward; ring: slowest rank",
            "memory_method": "peak RSS (VmHWM, reset via /proc/self/clear_refs) minus RSS after loading "
                             "and a 128-token warm-up, per rank",
            "eager_estimate": f"heads * T^2 * 4 bytes * {EAGER_BUFFERS}, skipped above --mem-cap-gib {args.mem_cap_gib}",
            "cpu_count": os.cpu_count(),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": os.getloadavg(),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "command": " ".join(["python", "benchmarks/long_context.py", *(argv if argv is not None else sys.argv[1:])]),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")

    for t in args.model_seq_lens:
        ids = all_ids[:, :t].clone()
        for method in args.model_methods:
            ranks = args.model_ranks if method == "ring" else 1
            label = f"ring x{ranks}" if method == "ring" else method
            if method == "eager" and (est := _eager_estimate_gib(config, t)) > args.mem_cap_gib:
                rows.append({"method": label, "ranks": 1, "seq_len": t, "status": f"OOM (est {est:.0f} GiB)",
                             "estimate_gib": est, "time_s": None, "peak_mem_gib_per_rank": None})
                print(f"{label:>10} T={t:>6}: skipped, estimated {est:.1f} GiB > cap {args.mem_cap_gib} GiB", flush=True)
                write()
                continue
            per_rank = spawn(_run_model, ranks, str(model_dir), method, ids, args.model_repeats, timeout_s=3600)
            row = {
                "method": label, "ranks": ranks, "seq_len": t, "status": "ok",
                "time_s": max(r["time_s"] for r in per_rank),
                "peak_mem_gib_per_rank": max(r["peak_extra_bytes"] for r in per_rank) / GIB,
                "threads_per_rank": per_rank[0]["threads"],
            }
            rows.append(row)
            write()
            print(f"{label:>10} T={t:>6}: {row['time_s']:.1f} s, {row['peak_mem_gib_per_rank']:.3f} GiB/rank", flush=True)

    methods = [m if m != "ring" else f"ring x{args.model_ranks}" for m in args.model_methods]
    _print_table(rows, methods, f"{gguf.name} forward, float32, {os.cpu_count()} CPU cores: "
                 "time / peak extra RSS per rank")
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq-lens", type=int, nargs="+", default=[4096, 8192, 16384, 32768])
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4], help="ring sizes to run")
    p.add_argument("--methods", nargs="+", default=["vanilla", "blockwise", "sdpa", "ring"])
    p.add_argument("--quick", action="store_true", help="T = 4k, 8k and ring on 2 ranks only")
    p.add_argument("--long", action="store_true", help="also T = 128k on 4 ranks (ring only; minutes)")
    p.add_argument("--mem-cap-gib", type=float, default=8.0, help="skip vanilla above this estimate")
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=2, help="timed calls per measurement; the min is kept")
    p.add_argument("--no-causal", dest="causal", action="store_false")
    p.add_argument("--backward", action="store_true", help="time forward + backward")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--model", nargs="?", const="qwen2.5-coder-0.5b", default=None,
                   help="run the real-model table instead (catalogue name or .gguf path)")
    p.add_argument("--model-seq-lens", type=int, nargs="+", default=[16384])
    p.add_argument("--model-methods", nargs="+", choices=MODEL_METHODS, default=list(MODEL_METHODS))
    p.add_argument("--model-ranks", type=int, default=2)
    p.add_argument("--model-repeats", type=int, default=1)
    args = p.parse_args(argv)
    if args.model:
        return run_model_benchmark(args, argv)
    if args.quick:
        args.seq_lens, args.ranks = [4096, 8192], [2]

    plan: list[tuple[str, int, int]] = []  # (method, T, ranks)
    for t in args.seq_lens:
        for m in args.methods:
            if m == "ring":
                plan += [("ring", t, r) for r in args.ranks]
            else:
                plan.append((m, t, 1))
    if args.long:
        plan.append(("ring", 131072, 4))

    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for method, t, ranks in plan:
        label = method if method != "ring" else f"ring x{ranks}"
        if method == "vanilla" and (est := vanilla_estimate_gib(t, args.backward)) > args.mem_cap_gib:
            rows.append({"method": label, "ranks": 1, "seq_len": t, "status": f"OOM (est {est:.0f} GiB)",
                         "estimate_gib": est, "time_s": None, "peak_mem_gib_per_rank": None})
            print(f"{label:>10} T={t:>6}: skipped, estimated {est:.1f} GiB > cap {args.mem_cap_gib} GiB", flush=True)
            continue
        row = measure(method, t, ranks, causal=args.causal, backward=args.backward,
                      block_size=args.block_size, repeats=args.repeats)
        rows.append(row)
        print(f"{label:>10} T={t:>6}: {row['time_s']:.3f} s, {row['peak_mem_gib_per_rank']:.3f} GiB/rank", flush=True)

    import torch

    meta = {
        "shape": {"B": BATCH, "H": HEADS, "D": HEAD_DIM, "dtype": "float32"},
        "causal": args.causal,
        "backward": args.backward,
        "block_size": args.block_size,
        "repeats": args.repeats,
        "time_method": "min over repeats of wall time of one call; ring: slowest rank",
        "layout": "zigzag",
        "memory_method": "peak RSS (getrusage ru_maxrss) minus RSS before the call, per rank process",
        "cpu_count": os.cpu_count(),
        "loadavg_1_5_15_before": load_before,  # the machine may be shared: timings scale with load
        "loadavg_1_5_15_after": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "command": " ".join(["python", "benchmarks/long_context.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    out = args.out / RESULTS.name if args.out.is_dir() else args.out  # a folder: default name in it
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    methods = [m for m in args.methods if m != "ring"] + [f"ring x{r}" for r in args.ranks] * ("ring" in args.methods)
    if args.long and "ring x4" not in methods:
        methods.append("ring x4")
    mode = "fwd+bwd" if args.backward else "forward"
    _print_table(rows, methods, f"Attention {mode}, B={BATCH} H={HEADS} D={HEAD_DIM} float32, "
                 f"{'causal' if args.causal else 'full'}, {os.cpu_count()} CPU cores: "
                 "time / peak extra RSS per rank")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
