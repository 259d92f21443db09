"""Mixture-of-Experts benchmarks: dispatch speed, expert parallelism, training, routing health.

1. Dispatch throughput (forward, tokens/s): sort-based dispatch vs the masked reference loop
   (every expert on every token) vs the per-expert gather loop, for 8, 32 and 64 experts.
2. Expert parallelism on 2 and 4 gloo ranks: forward+backward step time and all-to-all bytes.
3. Training at equal active FLOPs per token (counted with ``torch.utils.flop_counter``): dense
   vs 8-expert top-1 vs 2-expert top-1 (every expert the dense FFN's shape), byte-level LM on the
   Python standard library; validation loss vs steps and vs wall time.
4. Routing health of the trained 8- and 2-expert routers on held-out validation batches (usage
   entropy, drop rate at capacity factor 1.25, per layer).

Each target of the issue is printed as MET or MISSED.

Prints a rich table, writes ``benchmarks/results/moe.json`` and ``benchmarks/results/moe.png``.

Run:  python benchmarks/moe.py [--quick] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from agentos.kernels.launch import spawn
from agentos.kernels.moe import (
    ExpertParallelMoE,
    MoELayer,
    RouterConfig,
    moe_dispatch,
    moe_gather_loop,
    moe_reference,
)
from agentos.tools.moe import MoETransformer, MoETransformerConfig, train_moe
from agentos.tools.moe.data import load_stdlib_corpus, sample_batch
from agentos.tools.moe.train import evaluate

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
STEPS_FULL, BATCH_FULL, AUX_WEIGHT, CORPUS_BYTES = 7000, 16, 0.1, 16_000_000


def _time(fn: Any, reps: int) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def bench_dispatch(quick: bool) -> list[dict[str, Any]]:
    N, D, H = (1024, 64, 128) if quick else (4096, 256, 512)
    rows = []
    for E in (8, 32, 64):
        torch.manual_seed(E)
        layer = MoELayer(D, H, RouterConfig(E, top_k=1, capacity_factor=1.25)).eval()
        x = torch.randn(N, D)
        routing = layer.router(x)
        row: dict[str, Any] = {"experts": E, "tokens": N, "d_model": D, "d_hidden": H}
        for name, fn, reps in (("sort", moe_dispatch, 7), ("gather_loop", moe_gather_loop, 7),
                               ("reference", moe_reference, 1 if quick else 2)):
            s = _time(lambda fn=fn: fn(x, routing, layer.experts), reps)
            row[f"{name}_tok_s"] = N / s
        row["speedup_vs_reference"] = row["sort_tok_s"] / row["reference_tok_s"]
        row["speedup_vs_gather_loop"] = row["sort_tok_s"] / row["gather_loop_tok_s"]
        rows.append(row)
    return rows


def _ep_rank(rank: int, world: int, n: int, d: int, h: int, e: int, iters: int) -> dict[str, Any]:
    import torch.distributed as dist

    from agentos.kernels.moe import all_reduce_grads

    torch.manual_seed(0)
    layer = MoELayer(d, h, RouterConfig(e, top_k=2, capacity_factor=1.25))
    ep = ExpertParallelMoE.from_layer(layer)
    torch.manual_seed(1 + rank)
    x = torch.randn(n, d)
    times = []
    for i in range(iters + 1):
        dist.barrier()
        t0 = time.perf_counter()
        y, routing = ep(x)
        ((y.square().mean()) + routing.loss).backward()
        all_reduce_grads(ep.router.parameters())
        if i:
            times.append(time.perf_counter() - t0)
    return {"step_s": sorted(times)[len(times) // 2], **ep.last_comm}


def bench_expert_parallel(quick: bool) -> list[dict[str, Any]]:
    n, d, h, e, iters = (512, 64, 128, 8, 3) if quick else (2048, 256, 512, 8, 5)
    rows = []
    for world in (2, 4):
        per_rank = spawn(_ep_rank, world, n, d, h, e, iters, timeout_s=300)
        rows.append({
            "ranks": world, "tokens_per_rank": n, "experts": e, "top_k": 2,
            "step_s": max(r["step_s"] for r in per_rank),
            "a2a_bytes_per_rank": sum(r["bytes_sent"] for r in per_rank) / world,
            "a2a_off_rank_bytes_per_rank": sum(r["bytes_off_rank"] for r in per_rank) / world,
        })
    return rows


def active_flops_per_token(model: MoETransformer, idx: torch.Tensor) -> float:
    """Forward FLOPs per token actually executed on ``idx`` (router and dispatched experts
    included; tokens dropped at capacity cost nothing), counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(idx)
    model.train(was_training)
    return counter.get_total_flops() / idx.numel()


# Training setup shared by the three runs. Every expert has the dense FFN's shape and routing is
# top-1, so the active FLOPs per token match the dense model's (plus the router) while the
# parameters grow about E-fold in the FFNs. The router starts near-uniform (gate std 1e-3) so
# early routing is balanced; the Switch balance loss (weight 0.1) plus DeepSeek-V3's selection
# bias (rate 1e-3) keep it balanced at capacity factor 1.25, used in training and for the routing
# health. The model is small so that enough steps fit a CPU: the MoE's lead over the dense model
# grows with training (at one shared rate 3e-3: 0.91x the dense steps after 1,800 steps on a 4 MB
# corpus; 0.66/0.68x after 5,000 and 0.69/0.65x after 7,000 on 16 MB, seeds 0/1; with each
# model at its own best rate, below, 0.63x at seed 0), so the run is long and the corpus large
# enough not to repeat much. Without the bias the 8-expert drop rate at 1.25 was 0.6-1.4 % after
# 5,000 steps (5.5 % after 1,800); with it 0.2-0.9 % after 7,000.
TRAIN_QUICK = {"steps": 300, "batch": 16, "seq": 64}
# Peak learning rate of each model: the best of a sweep at 7,000 steps, seed 0 (final val loss):
# dense 2e-3 1.2913, 3e-3 1.2271, 4.5e-3 1.2372, 6e-3 1.2370; 8 experts 3e-3 1.1675, 4.5e-3
# 1.1298, 6e-3 1.1507, 1e-2 1.1404 (differences under ~0.02 are within seed noise).
# The MoE trains best at a larger rate than the dense model (its expert outputs are scaled by
# router probabilities below 1, one likely reason). The 2-expert model uses the MoE rate untuned.
LR = {"dense": 3e-3, "moe": 4.5e-3}
ROUTER = {"capacity_factor": 1.25, "router_init_std": 1e-3, "aux_loss_weight": AUX_WEIGHT,
          "z_loss_weight": 1e-3, "router_bias_update_rate": 1e-3}
HEALTH_CAPACITY_FACTOR = 1.25
TARGET_STEP_RATIO = 0.67
TARGET_DROP_RATE = 0.01
TARGET_ENTROPY = 0.9
HEALTH_BATCHES = 16


def bench_training(quick: bool, steps_full: int = STEPS_FULL, seed: int = 0) -> dict[str, Any]:
    tc = TRAIN_QUICK if quick else {"steps": steps_full, "batch": BATCH_FULL, "seq": 128}
    steps, batch, seq = tc["steps"], tc["batch"], tc["seq"]
    eval_every, warmup = max(1, steps // 24), max(1, steps // 20)
    base = MoETransformerConfig(n_layers=2, d_model=64, n_heads=4, d_ff=256, max_seq_len=seq,
                                **ROUTER)
    configs = {
        "dense": base.with_(num_experts=1, router_bias_update_rate=0.0),
        "moe_8x_top1": base.with_(num_experts=8, top_k=1),
        "moe_2x_top1": base.with_(num_experts=2, top_k=1),
    }
    corpus = load_stdlib_corpus(max_bytes=1_000_000 if quick else CORPUS_BYTES)
    flop_idx, _ = sample_batch(corpus.val, 4, seq, torch.Generator().manual_seed(7))
    runs: dict[str, Any] = {}
    for name, cfg in configs.items():
        t0 = time.perf_counter()
        lr = LR["dense"] if cfg.num_experts == 1 else LR["moe"]
        result = train_moe(cfg, steps, batch_size=batch, seq_len=seq, lr=lr,
                           warmup=warmup, eval_every=eval_every, eval_batches=16,
                           corpus=corpus, seed=seed, progress=True)
        run: dict[str, Any] = {
            "config": cfg.to_dict(),
            "lr": lr,
            "params": result.model.num_parameters(),
            "active_flops_per_token": active_flops_per_token(result.model, flop_idx),
            "history": result.history,
            "final_val_loss": result.final_val_loss,
            "total_s": time.perf_counter() - t0,
        }
        if cfg.num_experts > 1:
            # Routing health of the trained router at capacity factor 1.25 on held-out
            # validation batches (each routed as a whole batch of batch*seq tokens), per layer.
            run["final_routing"] = evaluate(result.model, corpus.val, batch, seq,
                                            HEALTH_BATCHES, seed=4321,
                                            capacity_factor=HEALTH_CAPACITY_FACTOR)["routing"]
        runs[name] = run
    target = runs["dense"]["final_val_loss"]
    for name, run in runs.items():
        run["steps_to_dense_final"] = _first_crossing(run["history"], target, "step")
        run["wall_to_dense_final_s"] = _first_crossing(run["history"], target, "wall_s")
        run["step_ratio_vs_dense"] = (run["steps_to_dense_final"] / steps
                                      if run["steps_to_dense_final"] is not None else None)
        run["step_ratio_ok"] = (name == "dense" or (run["step_ratio_vs_dense"] is not None and
                                run["step_ratio_vs_dense"] <= TARGET_STEP_RATIO))
    return {"steps": steps, "batch_tokens": batch * seq, "warmup": warmup, "seed": seed,
            "corpus_train_bytes": corpus.train.numel(), "corpus_val_bytes": corpus.val.numel(),
            "runs": runs, "dense_final_val": target, "target_step_ratio": TARGET_STEP_RATIO}


def _first_crossing(history: list[dict[str, Any]], target: float, key: str) -> float | None:
    """Linear interpolation of ``key`` where val loss first reaches ``target``."""
    prev = None
    for h in history:
        if h["val_loss"] <= target:
            if prev is None:
                return float(h[key])
            frac = (prev["val_loss"] - target) / max(1e-12, prev["val_loss"] - h["val_loss"])
            return float(prev[key] + frac * (h[key] - prev[key]))
        prev = h
    return None


def _plot(dispatch: list[dict[str, Any]], training: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for name, run in training["runs"].items():
        steps = [h["step"] for h in run["history"]]
        walls = [h["wall_s"] for h in run["history"]]
        vals = [h["val_loss"] for h in run["history"]]
        axes[0].plot(steps, vals, marker="o", ms=3, label=name)
        axes[1].plot(walls, vals, marker="o", ms=3, label=name)
    for ax, xlabel in ((axes[0], "step"), (axes[1], "training wall time (s)")):
        ax.axhline(training["dense_final_val"], color="gray", ls="--", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation loss (nats/byte)")
        ax.legend()
    es = [r["experts"] for r in dispatch]
    for key, label in (("sort_tok_s", "sort-based"), ("gather_loop_tok_s", "gather loop"),
                       ("reference_tok_s", "masked reference")):
        axes[2].plot(es, [r[key] for r in dispatch], marker="o", label=label)
    axes[2].set_xscale("log", base=2)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("experts")
    axes[2].set_ylabel("dispatch tokens/s (forward)")
    axes[2].legend()
    fig.suptitle("agentos MoE benchmark")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description="MoE benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer steps")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--steps", type=int, default=STEPS_FULL,
                        help=f"training steps per model (default {STEPS_FULL})")
    parser.add_argument("--seed", type=int, default=0,
                        help="initialisation and data-order seed of the training runs")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # moe.json / moe.png for the default run; other runs do not overwrite it.
    stem = "moe" + ("_quick" if args.quick else "") + (f"_seed{args.seed}" if args.seed else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    out: dict[str, Any] = {
        "quick": args.quick,
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__},
    }

    dispatch = bench_dispatch(args.quick)
    out["dispatch"] = dispatch
    t = Table(title="Dispatch throughput, forward (tokens/s)")
    for c in ("experts", "sort", "gather loop", "masked reference", "× vs reference",
              "× vs gather loop"):
        t.add_column(c, justify="right")
    for r in dispatch:
        t.add_row(str(r["experts"]), f"{r['sort_tok_s']:,.0f}", f"{r['gather_loop_tok_s']:,.0f}",
                  f"{r['reference_tok_s']:,.0f}", f"{r['speedup_vs_reference']:.1f}",
                  f"{r['speedup_vs_gather_loop']:.2f}")
    console.print(t)

    ep = bench_expert_parallel(args.quick)
    out["expert_parallel"] = ep
    t = Table(title="Expert parallelism (gloo, fwd+bwd, 8 experts top-2)")
    for c in ("ranks", "tokens/rank", "step (ms)", "a2a bytes/rank", "off-rank bytes/rank"):
        t.add_column(c, justify="right")
    for r in ep:
        t.add_row(str(r["ranks"]), str(r["tokens_per_rank"]), f"{r['step_s'] * 1e3:.1f}",
                  f"{r['a2a_bytes_per_rank']:,.0f}", f"{r['a2a_off_rank_bytes_per_rank']:,.0f}")
    console.print(t)

    if not args.skip_training:
        training = bench_training(args.quick, args.steps, args.seed)
        out["training"] = training
        t = Table(title=f"Training, {training['steps']} steps × {training['batch_tokens']} bytes")
        for c in ("model", "peak lr", "params", "active MFLOP/token", "final val",
                  "steps to dense final", "ratio", "wall to dense final (s)", "total wall (s)"):
            t.add_column(c, justify="right")
        for name, r in training["runs"].items():
            s2d, w2d = r["steps_to_dense_final"], r["wall_to_dense_final_s"]
            t.add_row(name, f"{r['lr']:g}", f"{r['params']:,}",
                      f"{r['active_flops_per_token'] / 1e6:.2f}", f"{r['final_val_loss']:.4f}",
                      "-" if s2d is None else f"{s2d:.0f}",
                      "-" if r["step_ratio_vs_dense"] is None
                      else f"{r['step_ratio_vs_dense']:.2f}",
                      "-" if w2d is None else f"{w2d:.1f}", f"{r['total_s']:.1f}")
        console.print(t)

        for name, r in training["runs"].items():
            if name != "dense":
                ratio = r["step_ratio_vs_dense"]
                console.print(
                    f"{name}: reaches dense final val {training['dense_final_val']:.4f} at step "
                    + ("never" if ratio is None else f"{r['steps_to_dense_final']:.0f}")
                    + f" of {training['steps']} (ratio "
                    + ("-" if ratio is None else f"{ratio:.2f}")
                    + f", target <= {TARGET_STEP_RATIO}): "
                    + ("[green]MET[/]" if r["step_ratio_ok"] else "[red]MISSED[/]"))

        health = []
        t = Table(title=f"Routing health of the trained routers ({HEALTH_BATCHES} held-out "
                        f"validation batches of {training['batch_tokens']} tokens, capacity "
                        f"factor 1.25)")
        for c in ("model", "usage entropy / log E", "drop rate", "drop rate per layer",
                  "entropy per layer", "tokens per expert", "targets"):
            t.add_column(c, justify="right")
        for name in ("moe_8x_top1", "moe_2x_top1"):
            routing = training["runs"][name]["final_routing"]
            row = {"model": name, **routing,
                   "entropy_ok": routing["normalized_entropy"] >= TARGET_ENTROPY,
                   "drop_ok": routing["drop_rate"] < TARGET_DROP_RATE}
            health.append(row)
            t.add_row(name, f"{routing['normalized_entropy']:.3f}",
                      f"{routing['drop_rate'] * 100:.2f}%",
                      " ".join(f"{d * 100:.2f}%" for d in routing["per_layer_drop_rate"]),
                      " ".join(f"{e:.3f}" for e in routing["per_layer_entropy"]),
                      str(routing["tokens_per_expert"]),
                      ("entropy MET" if row["entropy_ok"] else "entropy MISSED") + ", "
                      + ("drop<1% MET" if row["drop_ok"] else "drop<1% MISSED"))
        out["routing_health"] = health
        console.print(t)
        _plot(dispatch, training, RESULTS / f"{stem}.png")

    out["total_s"] = time.perf_counter() - t_all
    out["time_ok"] = out["total_s"] <= 600
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=2, default=float))
    console.print(f"wrote {RESULTS / (stem + '.json')}"
                  + ("" if args.skip_training else f" and {RESULTS / (stem + '.png')}")
                  + f" in {out['total_s']:.0f}s (target <= 600s: "
                  + ("MET" if out["time_ok"] else "MISSED") + ")")


if __name__ == "__main__":
    main()
