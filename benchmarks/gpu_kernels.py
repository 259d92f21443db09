"""GPU kernel benchmarks: long-context attention, MoE dispatch, one MoE training step.

1. Attention forward and forward+backward, causal, B=1 H=16 D=128 bf16, T = 4k .. 64k: torch SDPA
   (flash backend) vs ``blockwise_attention`` vs ``vanilla_attention`` (skipped where its float32
   score matrix alone would exceed 40 GiB). ms, TFLOP/s of the useful causal work
   (forward ``2*2*B*H*T*T*D/2``; forward+backward 3.5x that, FlashAttention's convention), peak GiB.
2. MoE dispatch throughput (tokens/s, forward and forward+backward), 8/32/64 experts top-1,
   N=65536 tokens, D=1024, H=4096 bf16: sort-based ``moe_dispatch`` vs ``moe_gather_loop`` vs
   ``moe_reference`` (every expert on every token; its backward skipped where the activations it
   keeps would exceed 40 GiB).
3. One training step (AdamW, bf16 autocast) of ``MoETransformer``: dense vs 8-expert top-1,
   4 layers, d_model 512, d_ff 2048, sequence 1024, batch 16: ms/step and tokens/s.

Timing: CUDA events (``time.perf_counter`` on the CPU), median of several repetitions after
warm-up; peak memory from ``torch.cuda.max_memory_allocated``, reset per case. A case that runs
out of memory is recorded as ``"OOM"``; cases that would start after ``--budget-s`` seconds are
recorded as skipped. Sections run cheapest first and the JSON is rewritten after each, so a run
cut short still leaves its results.

Prints rich tables and writes ``<out>/gpu_kernels.json``.

Run:  python benchmarks/gpu_kernels.py [--device cuda] [--quick] [--out DIR]
      python benchmarks/gpu_kernels.py --device cpu --quick --out /tmp/gk   (smoke run, fp32)
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from agentos.kernels.attention import blockwise_attention, vanilla_attention
from agentos.kernels.moe import MoELayer, RouterConfig, moe_dispatch, moe_gather_loop, moe_reference
from agentos.tools.moe.config import MoETransformerConfig
from agentos.tools.moe.model import MoETransformer

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 2**30
MAX_EST_GIB = 40.0  # vanilla scores / reference activations above this are not attempted

console = Console(width=150)  # wide tables also when the output is a file or a pipe


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Bench:
    """Device, timing and the run's time budget."""

    device: torch.device
    deadline: float  # time.monotonic() after which no new case starts

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def time_ms(self, fn: Callable[[], object], warmup: int, reps: int) -> float:
        """Median milliseconds of ``fn()`` over ``reps`` calls after ``warmup`` calls."""
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(reps):
            if self.cuda:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def reset_peak(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / GIB if self.cuda else None

    def run(self, case: Callable[[], dict[str, Any]]) -> dict[str, Any] | str:
        """Run one case: its result, ``"OOM"``, or ``"skipped (time budget)"``."""
        if time.monotonic() > self.deadline:
            return "skipped (time budget)"
        self.reset_peak()
        try:
            return case()
        except torch.cuda.OutOfMemoryError:
            return "OOM"
        finally:
            self.reset_peak()


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


# --------------------------------------------------------------------------------------------
# 1. Attention
# --------------------------------------------------------------------------------------------


def _sdpa_flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def bench_attention(b: Bench, quick: bool) -> list[dict[str, Any]]:
    dtype = torch.bfloat16 if b.cuda else torch.float32
    lengths = [512, 1024] if quick else [4096, 8192, 16384, 32768, 65536]
    rows = []
    for T in lengths:  # one length's inputs are freed (on return) before the next is allocated
        rows += _attention_rows(b, T, dtype, block=256 if quick else 1024)
    return rows


def _attention_rows(b: Bench, T: int, dtype: torch.dtype, block: int) -> list[dict[str, Any]]:
    B, H, D = 1, 16, 128
    kernels: dict[str, Callable[..., torch.Tensor]] = {
        "sdpa_flash": _sdpa_flash,
        "blockwise": lambda q, k, v: blockwise_attention(q, k, v, causal=True, block_size=block)[0],
        "vanilla": lambda q, k, v: vanilla_attention(q, k, v, causal=True),
    }
    if b.cuda:  # larger blocks: fewer kernel launches and merges per token on a GPU
        kernels["blockwise_4k"] = lambda q, k, v: blockwise_attention(
            q, k, v, causal=True, block_size=4096)[0]
    g = torch.Generator(device=b.device).manual_seed(T)
    q, k, v, dout = (
        torch.randn(B, H, T, D, generator=g, device=b.device, dtype=dtype) for _ in range(4)
    )
    qkv = tuple(x.requires_grad_() for x in (q, k, v))
    warmup, reps = (1, 3) if T >= 32768 else (2, 5)
    rows = []
    for name, fn in kernels.items():
        row: dict[str, Any] = {"impl": name, "T": T, "B": B, "H": H, "D": D,
                               "dtype": str(dtype).removeprefix("torch."),
                               "block_size": {"blockwise": block, "blockwise_4k": 4096}.get(name)}
        est = B * H * T * T * 4 / GIB  # float32 scores (vanilla keeps several of these)
        if name == "vanilla" and est > MAX_EST_GIB:
            row["result"] = f"skipped (est. {est:.0f} GiB)"
        else:
            row["result"] = b.run(lambda fn=fn: _attention_case(b, fn, qkv, dout, warmup, reps))
        rows.append(row)
        _print_attention_row(row)
    return rows


def _attention_case(
    b: Bench,
    fn: Callable[..., torch.Tensor],
    qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    dout: torch.Tensor,
    warmup: int,
    reps: int,
) -> dict[str, Any]:
    """Time ``fn(q, k, v)`` forward (no grad) and forward+backward; TFLOP/s of causal work."""
    B, H, T, D = qkv[0].shape
    fwd_flops = 2 * 2 * B * H * T * T * D / 2

    def fwd() -> None:
        with torch.no_grad():
            fn(*qkv)

    def fwd_bwd() -> None:
        torch.autograd.grad(fn(*qkv), qkv, dout)

    ms_fwd = b.time_ms(fwd, warmup, reps)
    b.reset_peak()
    ms_fb = b.time_ms(fwd_bwd, warmup, reps)
    return {
        "ms_fwd": ms_fwd,
        "ms_fwd_bwd": ms_fb,
        "tflops_fwd": fwd_flops / (ms_fwd * 1e-3) / 1e12,
        "tflops_fwd_bwd": 3.5 * fwd_flops / (ms_fb * 1e-3) / 1e12,  # backward = 2.5x forward
        "peak_gib_fwd_bwd": b.peak_gib(),
    }


def _print_attention_row(row: dict[str, Any]) -> None:
    r = row["result"]
    if isinstance(r, str):
        console.print(f"  attention T={row['T']:>6} {row['impl']:<11} {r}")
    else:
        console.print(f"  attention T={row['T']:>6} {row['impl']:<11} fwd {r['ms_fwd']:9.2f} ms  "
                      f"fwd+bwd {r['ms_fwd_bwd']:9.2f} ms  {r['tflops_fwd_bwd']:7.2f} TFLOP/s")


def attention_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="Causal attention forward + backward (B=1, H=16, D=128)")
    for col in ("T", "impl", "dtype", "ms fwd", "ms fwd+bwd", "TFLOP/s fwd", "TFLOP/s fwd+bwd",
                "peak GiB"):
        t.add_column(col, justify="left" if col in ("impl", "dtype") else "right")
    for row in rows:
        r = row["result"]
        head = [str(row["T"]), row["impl"], row["dtype"]]
        if isinstance(r, str):
            t.add_row(*head, r, "", "", "", "")
        else:
            t.add_row(*head, _fmt(r["ms_fwd"], ".2f"), _fmt(r["ms_fwd_bwd"], ".2f"),
                      _fmt(r["tflops_fwd"], ".2f"), _fmt(r["tflops_fwd_bwd"], ".2f"),
                      _fmt(r["peak_gib_fwd_bwd"], ".2f"))
    return t


# --------------------------------------------------------------------------------------------
# 2. MoE dispatch
# --------------------------------------------------------------------------------------------

_DISPATCH = {"sort": moe_dispatch, "gather_loop": moe_gather_loop, "reference": moe_reference}


def bench_dispatch(b: Bench, quick: bool) -> list[dict[str, Any]]:
    N, D, Hd = (1024, 64, 128) if quick else (65536, 1024, 4096)
    dtype = torch.bfloat16 if b.cuda else torch.float32
    rows = []
    for E in (8, 32, 64):  # one bank is freed (on return) before the next is built
        rows += _dispatch_rows(b, E, N, D, Hd, dtype)
    return rows


def _dispatch_rows(b: Bench, E: int, N: int, D: int, Hd: int, dtype: torch.dtype) -> list[dict[str, Any]]:
    torch.manual_seed(E)
    layer = MoELayer(D, Hd, RouterConfig(E, top_k=1, capacity_factor=1.25), dtype=dtype, device=b.device)
    x = torch.randn(N, D, device=b.device, dtype=dtype)
    g = torch.randn(N, D, device=b.device, dtype=dtype)
    with torch.no_grad():
        routing = layer.router(x)  # fixed for the forward timings, as in benchmarks/moe.py
    params = list(layer.parameters())
    nbytes = torch.finfo(dtype).bits // 8
    rows = []
    for impl, fn in _DISPATCH.items():
        reps = 2 if impl == "reference" else 5
        # The reference keeps every expert's [N, H] activations (and [N, D] output) for backward.
        est = E * N * (2 * Hd + 2 * D) * nbytes / GIB if impl == "reference" else 0.0

        def case(impl: str = impl, fn: Callable[..., torch.Tensor] = fn,
                 est: float = est, reps: int = reps) -> dict[str, Any]:
            def fwd() -> None:
                with torch.no_grad():
                    fn(x, routing, layer.experts)

            def fwd_bwd() -> None:  # the whole layer: routing, dispatch, combine, backward
                y, r = layer(x)
                torch.autograd.grad((y * g).sum() + r.loss, params, allow_unused=True)

            ms_fwd = b.time_ms(fwd, 1, reps)
            out: dict[str, Any] = {"ms_fwd": ms_fwd, "tok_s_fwd": N / (ms_fwd * 1e-3),
                                   "peak_gib_fwd": b.peak_gib()}
            if est > MAX_EST_GIB:
                out["ms_fwd_bwd"] = out["tok_s_fwd_bwd"] = f"skipped (est. {est:.0f} GiB)"
                return out
            layer.impl = impl  # type: ignore[assignment]
            b.reset_peak()
            ms_fb = b.time_ms(fwd_bwd, 1, reps)
            out.update(ms_fwd_bwd=ms_fb, tok_s_fwd_bwd=N / (ms_fb * 1e-3),
                       peak_gib_fwd_bwd=b.peak_gib())
            return out

        row: dict[str, Any] = {"impl": impl, "experts": E, "tokens": N, "d_model": D,
                               "d_hidden": Hd, "dtype": str(dtype).removeprefix("torch."),
                               "result": b.run(case)}
        rows.append(row)
        r = row["result"]
        if not isinstance(r, str):
            r = f"fwd {r['tok_s_fwd']:12,.0f} tok/s  fwd+bwd {_fmt(r.get('tok_s_fwd_bwd'), ',.0f')}"
        console.print(f"  dispatch E={E:>2} {impl:<11} {r}")
    return rows


def dispatch_table(rows: list[dict[str, Any]]) -> Table:
    r0 = rows[0]
    t = Table(title=f"MoE dispatch, top-1, N={r0['tokens']} D={r0['d_model']} "
                    f"H={r0['d_hidden']} {r0['dtype']}")
    for col in ("experts", "impl", "tok/s fwd", "tok/s fwd+bwd", "ms fwd", "ms fwd+bwd",
                "peak GiB fwd+bwd", "fwd speedup vs reference"):
        t.add_column(col, justify="left" if col == "impl" else "right")
    ref = {row["experts"]: row["result"] for row in rows if row["impl"] == "reference"}
    for row in rows:
        r = row["result"]
        if isinstance(r, str):
            t.add_row(str(row["experts"]), row["impl"], r, "", "", "", "", "")
            continue
        rr = ref.get(row["experts"])
        speedup = (rr["ms_fwd"] / r["ms_fwd"]) if isinstance(rr, dict) else None
        t.add_row(str(row["experts"]), row["impl"], _fmt(r["tok_s_fwd"], ",.0f"),
                  _fmt(r.get("tok_s_fwd_bwd"), ",.0f"), _fmt(r["ms_fwd"], ".2f"),
                  _fmt(r.get("ms_fwd_bwd"), ".2f"), _fmt(r.get("peak_gib_fwd_bwd"), ".2f"),
                  _fmt(speedup, ".1f"))
    return t


# --------------------------------------------------------------------------------------------
# 3. One MoE transformer training step
# --------------------------------------------------------------------------------------------


def bench_train_step(b: Bench, quick: bool) -> list[dict[str, Any]]:
    if quick:
        shape = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_ff": 128}
        seq, batch = 128, 4
    else:
        shape = {"n_layers": 4, "d_model": 512, "n_heads": 8, "d_ff": 2048}
        seq, batch = 1024, 16
    amp = b.cuda  # bf16 autocast on the GPU, plain float32 on the CPU
    rows = []
    import agentos.kernels.moe.dispatch as dispatch

    grouped_ok = dispatch._grouped_mm_ok
    for name, experts, grouped in (("dense", 1, True), ("moe-8e-top1", 8, True),
                                   ("moe-8e-top1 expert loop", 8, False)):
        cfg = MoETransformerConfig(**shape, num_experts=experts, top_k=1, max_seq_len=seq)
        row: dict[str, Any] = {"model": name, **shape, "num_experts": experts, "seq": seq,
                               "batch": batch, "autocast": "bf16" if amp else "off"}
        # The expert-loop row turns off the grouped matmul to show what it buys.
        dispatch._grouped_mm_ok = grouped_ok if grouped else (lambda *_: False)  # type: ignore[assignment]

        def case(cfg: MoETransformerConfig = cfg, profile: bool = experts > 1 and grouped) -> dict[str, Any]:
            torch.manual_seed(0)
            model = MoETransformer(cfg).to(b.device)
            opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
            idx = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device=b.device)
            inputs, targets = idx[:, :-1], idx[:, 1:]

            def step() -> None:
                with torch.autocast(b.device.type, dtype=torch.bfloat16, enabled=amp):
                    out = model(inputs, targets)
                    assert out.loss is not None
                    loss = out.loss + out.aux_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()

            ms = b.time_ms(step, 2, 3 if quick else 10)
            out = {"ms_step": ms, "tok_s": batch * seq / (ms * 1e-3),
                   "params": model.num_parameters(), "peak_gib": b.peak_gib()}
            if profile:  # where the MoE step's time goes, by operator
                from torch.profiler import ProfilerActivity
                from torch.profiler import profile as torch_profile

                acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if b.cuda else [])
                with torch_profile(activities=acts) as prof:
                    for _ in range(2):
                        step()
                    b.sync()
                key = "self_cuda_time_total" if b.cuda else "self_cpu_time_total"
                out["profile"] = prof.key_averages().table(sort_by=key, row_limit=18)
                console.print(out["profile"])
            return out

        row["result"] = b.run(case)
        dispatch._grouped_mm_ok = grouped_ok  # type: ignore[assignment]
        rows.append(row)
        r = row["result"]
        console.print(f"  train step {name:<12} "
                      + (r if isinstance(r, str) else f"{r['ms_step']:.2f} ms/step  {r['tok_s']:,.0f} tok/s"))
    return rows


def train_table(rows: list[dict[str, Any]]) -> Table:
    r0 = rows[0]
    t = Table(title=f"Training step (AdamW), {r0['n_layers']} layers, d_model {r0['d_model']}, "
                    f"d_ff {r0['d_ff']}, seq {r0['seq']} x batch {r0['batch']}, "
                    f"autocast {r0['autocast']}")
    for col in ("model", "params (M)", "ms/step", "tokens/s", "peak GiB"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for row in rows:
        r = row["result"]
        if isinstance(r, str):
            t.add_row(row["model"], r, "", "", "")
        else:
            t.add_row(row["model"], _fmt(r["params"] / 1e6, ".1f"), _fmt(r["ms_step"], ".2f"),
                      _fmt(r["tok_s"], ",.0f"), _fmt(r["peak_gib"], ".2f"))
    return t


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _environment(device: torch.device, quick: bool) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "quick": quick,
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, device_memory_gib=props.total_memory / GIB,
                   cuda=torch.version.cuda, allow_tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
        try:
            import triton

            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = None
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu_kernels.json")
    parser.add_argument("--budget-s", type=float, default=210.0,
                        help="start no new case after this many seconds (default 210)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    start = time.monotonic()
    b = Bench(device, deadline=start + args.budget_s)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_kernels.json"
    results: dict[str, Any] = {"environment": _environment(device, args.quick)}
    console.print(f"[bold]gpu_kernels[/bold] on {results['environment']['device_name']} "
                  f"(torch {torch.__version__}, quick={args.quick})")

    def save() -> None:
        results["wall_s"] = time.monotonic() - start
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")

    # Cheapest sections first: a run cut short keeps the most results.
    results["moe_dispatch"] = bench_dispatch(b, args.quick)
    save()
    results["train_step"] = bench_train_step(b, args.quick)
    save()
    results["attention"] = bench_attention(b, args.quick)
    save()

    console.print(attention_table(results["attention"]))
    console.print(dispatch_table(results["moe_dispatch"]))
    console.print(train_table(results["train_step"]))
    console.print(f"wrote {path} in {results['wall_s']:.0f} s")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
