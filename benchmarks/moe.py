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

Learning rates and seeds. Each model trains at its own peak rate (``TUNED_LR``), chosen by a sweep
on seed 0 only, so results on seed 0 are optimistic for the tuned models. The report prints each
model's rate, the seeds it was tuned on and, for every training seed, whether it was one of them;
by default training runs on seed 1, which the sweep never saw. ``--sweep`` runs the grid
(``SWEEP_GRID``, or ``--sweep-lrs``) on ``--seeds`` (default 0) and writes
``benchmarks/results/moe_sweep.json``; ``--lr-from`` that file trains at its best rates and takes
its seeds as the tuning seeds; ``--lr`` sets rates by hand (then marked as not tuned).

Prints rich tables, writes ``benchmarks/results/moe.json`` and ``benchmarks/results/moe.png`` for
the default run; a run with other seeds, steps or ``--quick`` adds that to the file name (``--out``
picks another folder).

Run:  python benchmarks/moe.py [--quick] [--steps N] [--seeds 1 2] [--lr dense=3e-3 moe_8x_top1=4.5e-3]
      python benchmarks/moe.py --sweep [--seeds 0] [--sweep-models dense moe_8x_top1] [--sweep-lrs 3e-3 6e-3]
      python benchmarks/moe.py --lr-from benchmarks/results/moe_sweep.json --seeds 1 2
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
# corpus; 0.66/0.68x after 5,000 and 0.69/0.65x after 7,000 on 16 MB, seeds 0/1), so the run is
# long and the corpus large enough not to repeat much. Without the bias the 8-expert drop rate at
# 1.25 was 0.6-1.4 % after 5,000 steps (5.5 % after 1,800); with it 0.2-0.9 % after 7,000.
TRAIN_QUICK = {"steps": 300, "batch": 16, "seq": 64}
MODELS = ("dense", "moe_8x_top1", "moe_2x_top1")
# Peak learning rate of each model, from a sweep (``--sweep``) at 7,000 steps on seed 0 only; final
# val loss: dense 2e-3 1.2913, 3e-3 1.2271, 4.5e-3 1.2372, 6e-3 1.2370; 8 experts 3e-3 1.1675,
# 4.5e-3 1.1298, 6e-3 1.1507, 1e-2 1.1404 (differences under ~0.02 are within seed noise). The MoE
# trains best at a larger rate than the dense model (its expert outputs are scaled by router
# probabilities below 1, one likely reason). The 2-expert model uses the 8-expert rate, untuned.
# Results on seed 0 are therefore optimistic for the tuned models: the report marks every seed as
# used for tuning or not, and the default run trains on seed 1, which tuning never saw.
TUNED_LR = {"dense": 3e-3, "moe_8x_top1": 4.5e-3, "moe_2x_top1": 4.5e-3}
TUNING = {"seeds": [0], "steps": STEPS_FULL, "untuned_models": ["moe_2x_top1"],
          "source": "sweep recorded in benchmarks/moe.py (TUNED_LR)"}
DEFAULT_SEEDS = [1]
SWEEP_DEFAULT_SEEDS = [0]
SWEEP_GRID = {
    "dense": [2e-3, 3e-3, 4.5e-3, 6e-3],
    "moe_8x_top1": [3e-3, 4.5e-3, 6e-3, 1e-2],
    "moe_2x_top1": [3e-3, 4.5e-3, 6e-3, 1e-2],
}
ROUTER = {"capacity_factor": 1.25, "router_init_std": 1e-3, "aux_loss_weight": AUX_WEIGHT,
          "z_loss_weight": 1e-3, "router_bias_update_rate": 1e-3}
HEALTH_CAPACITY_FACTOR = 1.25
TARGET_STEP_RATIO = 0.67
TARGET_DROP_RATE = 0.01
TARGET_ENTROPY = 0.9
HEALTH_BATCHES = 16


def _training_shape(quick: bool, steps: int | None) -> dict[str, int]:
    """Steps, batch and sequence length of every training run; ``steps`` overrides the preset."""
    tc = dict(TRAIN_QUICK) if quick else {"steps": STEPS_FULL, "batch": BATCH_FULL, "seq": 128}
    if steps is not None:
        tc["steps"] = steps
    tc["eval_every"], tc["warmup"] = max(1, tc["steps"] // 24), max(1, tc["steps"] // 20)
    return tc


def _model_configs(seq: int) -> dict[str, MoETransformerConfig]:
    base = MoETransformerConfig(n_layers=2, d_model=64, n_heads=4, d_ff=256, max_seq_len=seq,
                                **ROUTER)
    return {
        "dense": base.with_(num_experts=1, router_bias_update_rate=0.0),
        "moe_8x_top1": base.with_(num_experts=8, top_k=1),
        "moe_2x_top1": base.with_(num_experts=2, top_k=1),
    }


def _corpus(quick: bool) -> Any:
    return load_stdlib_corpus(max_bytes=1_000_000 if quick else CORPUS_BYTES)


def _train(cfg: MoETransformerConfig, lr: float, tc: dict[str, int], corpus: Any, seed: int) -> Any:
    return train_moe(cfg, tc["steps"], batch_size=tc["batch"], seq_len=tc["seq"], lr=lr,
                     warmup=tc["warmup"], eval_every=tc["eval_every"], eval_batches=16,
                     corpus=corpus, seed=seed, progress=True)


def bench_training(quick: bool, steps: int | None, seed: int, lr_info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Train the three models on one seed at their peak rates; compare with the dense model.

    ``lr_info`` gives each model's ``lr`` and ``tuned_on_seeds`` (the seeds its rate was chosen
    on; None when it was not tuned); the result lists the models whose rate was tuned on this seed.
    """
    tc = _training_shape(quick, steps)
    corpus = _corpus(quick)
    flop_idx, _ = sample_batch(corpus.val, 4, tc["seq"], torch.Generator().manual_seed(7))
    runs: dict[str, Any] = {}
    for name, cfg in _model_configs(tc["seq"]).items():
        t0 = time.perf_counter()
        result = _train(cfg, lr_info[name]["lr"], tc, corpus, seed)
        run: dict[str, Any] = {
            "config": cfg.to_dict(),
            "lr": lr_info[name]["lr"],
            "params": result.model.num_parameters(),
            "active_flops_per_token": active_flops_per_token(result.model, flop_idx),
            "history": result.history,
            "final_val_loss": result.final_val_loss,
            "total_s": time.perf_counter() - t0,
        }
        if cfg.num_experts > 1:
            # Routing health of the trained router at capacity factor 1.25 on held-out
            # validation batches (each routed as a whole batch of batch*seq tokens), per layer.
            run["final_routing"] = evaluate(result.model, corpus.val, tc["batch"], tc["seq"],
                                            HEALTH_BATCHES, seed=4321,
                                            capacity_factor=HEALTH_CAPACITY_FACTOR)["routing"]
        runs[name] = run
    target = runs["dense"]["final_val_loss"]
    for name, run in runs.items():
        run["steps_to_dense_final"] = _first_crossing(run["history"], target, "step")
        run["wall_to_dense_final_s"] = _first_crossing(run["history"], target, "wall_s")
        run["step_ratio_vs_dense"] = (run["steps_to_dense_final"] / tc["steps"]
                                      if run["steps_to_dense_final"] is not None else None)
        run["step_ratio_ok"] = (name == "dense" or (run["step_ratio_vs_dense"] is not None and
                                run["step_ratio_vs_dense"] <= TARGET_STEP_RATIO))
    return {"steps": tc["steps"], "batch_tokens": tc["batch"] * tc["seq"], "warmup": tc["warmup"],
            "seed": seed,
            "lr_tuned_on_this_seed": _tuned_on(lr_info, seed),
            "corpus_train_bytes": corpus.train.numel(), "corpus_val_bytes": corpus.val.numel(),
            "runs": runs, "dense_final_val": target, "target_step_ratio": TARGET_STEP_RATIO}


def _tuned_on(lr_info: dict[str, dict[str, Any]], seed: int) -> list[str]:
    """The models whose learning rate was chosen on ``seed``."""
    return [name for name, info in lr_info.items() if seed in (info["tuned_on_seeds"] or [])]


def bench_sweep(quick: bool, steps: int | None, seeds: list[int],
                grid: dict[str, list[float]]) -> dict[str, Any]:
    """Final validation loss of every model at every peak rate of ``grid``, on every seed.

    The best rate of a model is the one with the lowest mean final loss over ``seeds``; those
    seeds are then the tuning seeds, and results on them are optimistic.
    """
    tc = _training_shape(quick, steps)
    corpus = _corpus(quick)
    configs = _model_configs(tc["seq"])
    rows: list[dict[str, Any]] = []
    for name, lrs in grid.items():
        for lr in lrs:
            for seed in seeds:
                t0 = time.perf_counter()
                result = _train(configs[name], lr, tc, corpus, seed)
                rows.append({"model": name, "lr": lr, "seed": seed, "final_val_loss": result.final_val_loss,
                             "total_s": time.perf_counter() - t0})
    mean: dict[str, dict[float, float]] = {}
    for name, lrs in grid.items():
        mean[name] = {lr: sum(r["final_val_loss"] for r in rows if r["model"] == name and r["lr"] == lr)
                      / len(seeds) for lr in lrs}
    best = {name: min(by_lr, key=by_lr.__getitem__) for name, by_lr in mean.items()}
    return {"steps": tc["steps"], "batch_tokens": tc["batch"] * tc["seq"], "seeds": seeds,
            "grid": grid, "rows": rows,
            "mean_final_val_loss": {name: {f"{lr:g}": v for lr, v in by_lr.items()} for name, by_lr in mean.items()},
            "best_lr": best}


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


def default_lr_info() -> dict[str, dict[str, Any]]:
    """Each model's peak rate from :data:`TUNED_LR` and the seeds it was tuned on."""
    return {name: {"lr": lr, "tuned_on_seeds": None if name in TUNING["untuned_models"] else TUNING["seeds"],
                   "source": "untuned (the 8-expert rate)" if name in TUNING["untuned_models"]
                   else f"{TUNING['source']}, {TUNING['steps']} steps"}
            for name, lr in TUNED_LR.items()}


def lr_info_from_sweep(path: Path) -> dict[str, dict[str, Any]]:
    """Each model's best rate in a ``--sweep`` JSON file, tuned on that sweep's seeds."""
    sweep = json.loads(path.read_text())
    missing = [name for name in MODELS if name not in sweep.get("best_lr", {})]
    if missing:
        raise ValueError(f"{path} has no best rate for {missing}; run --sweep over every model")
    return {name: {"lr": float(sweep["best_lr"][name]), "tuned_on_seeds": list(sweep["seeds"]),
                   "source": f"{path}, {sweep['steps']} steps"} for name in MODELS}


def parse_lr_overrides(items: list[str]) -> dict[str, float]:
    """``--lr`` items: ``NAME=RATE`` sets one model's peak rate, a bare ``RATE`` every model's."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        names = [name] if sep else list(MODELS)
        if sep and name not in MODELS:
            raise ValueError(f"--lr {item!r}: unknown model {name!r}; use one of {', '.join(MODELS)}")
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(f"--lr {item!r}: {value!r} is not a number (e.g. --lr dense=3e-3)") from None
        if not rate > 0:
            raise ValueError(f"--lr {item!r}: the rate must be > 0")
        out.update(dict.fromkeys(names, rate))
    return out


def _stem(base: str, args: argparse.Namespace, default_seeds: list[int]) -> str:
    """Result file name: the default run writes ``<base>``; other runs add what differs."""
    stem = base + ("_quick" if args.quick else "")
    if args.seeds != default_seeds:
        stem += "_seed" + "-".join(str(s) for s in args.seeds)
    if args.steps is not None:
        stem += f"_steps{args.steps}"
    if not args.sweep and (args.lr or args.lr_from):
        stem += "_custom-lr"
    if args.sweep and (args.sweep_lrs or args.sweep_models != list(MODELS)):
        stem += "_partial"
    return stem


def _seed_note(training: dict[str, Any]) -> str:
    tuned = training["lr_tuned_on_this_seed"]
    if not tuned:
        return f"seed {training['seed']}, not used to tune any learning rate"
    return f"seed {training['seed']}, used to tune the rates of {', '.join(tuned)}: optimistic for them"


def run_sweep(args: argparse.Namespace, console: Any) -> None:
    """``--sweep``: train every model at every rate of the grid, print and write the table."""
    from rich.table import Table

    grid = {name: list(args.sweep_lrs or SWEEP_GRID[name]) for name in args.sweep_models}
    t0 = time.perf_counter()
    sweep = bench_sweep(args.quick, args.steps, args.seeds, grid)
    sweep["total_s"] = time.perf_counter() - t0
    sweep["command"] = "python benchmarks/moe.py " + " ".join(args.argv)
    lrs = sorted({lr for rates in grid.values() for lr in rates})
    t = Table(title=f"Learning-rate sweep: final val loss (nats/byte) after {sweep['steps']} steps, "
                    f"mean over seeds {args.seeds}; * best")
    t.add_column("model")
    for lr in lrs:
        t.add_column(f"{lr:g}", justify="right")
    for name in grid:
        cells = []
        for lr in lrs:
            value = sweep["mean_final_val_loss"][name].get(f"{lr:g}")
            mark = "*" if lr == sweep["best_lr"][name] else ""
            cells.append("-" if value is None else f"{value:.4f}{mark}")
        t.add_row(name, *cells)
    console.print(t)
    path = args.out / f"{_stem('moe_sweep', args, SWEEP_DEFAULT_SEEDS)}.json"
    path.write_text(json.dumps(sweep, indent=2, default=float))
    held_out = [s for s in range(max(args.seeds) + 3) if s not in args.seeds][:2]
    console.print(f"wrote {path} in {sweep['total_s']:.0f}s. Rates tuned on seeds {args.seeds}; results on them "
                  f"are optimistic. Check on seeds the sweep did not see:\n"
                  f"  python benchmarks/moe.py --lr-from {path} --seeds {' '.join(map(str, held_out))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MoE benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer steps")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps per model (default {STEPS_FULL}; {TRAIN_QUICK['steps']} with --quick)")
    parser.add_argument("--seeds", "--seed", type=int, nargs="+", default=None,
                        help=f"initialisation and data-order seeds, one training run each (default {DEFAULT_SEEDS}, "
                             f"which the learning rates were not tuned on; --sweep: {SWEEP_DEFAULT_SEEDS})")
    parser.add_argument("--lr", nargs="+", default=[], metavar="[MODEL=]RATE",
                        help=f"peak learning rate, per model ({', '.join(MODELS)}) or for all; "
                             f"default the tuned rates {TUNED_LR}")
    parser.add_argument("--lr-from", type=Path, default=None, metavar="SWEEP_JSON",
                        help="take each model's rate from a --sweep result (and its seeds as the tuning seeds)")
    parser.add_argument("--sweep", action="store_true",
                        help="train every model at every rate of the grid instead; writes moe_sweep*.json")
    parser.add_argument("--sweep-lrs", type=float, nargs="+", default=None,
                        help="rates to sweep for every model (default the grid in SWEEP_GRID)")
    parser.add_argument("--sweep-models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for the results (default {RESULTS})")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.steps is not None and args.steps < 2:
        parser.error("--steps must be >= 2")
    from rich.console import Console
    from rich.table import Table

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        args.seeds = args.seeds or list(SWEEP_DEFAULT_SEEDS)
        run_sweep(args, console)
        return
    args.seeds = args.seeds or list(DEFAULT_SEEDS)
    try:
        lr_info = lr_info_from_sweep(args.lr_from) if args.lr_from else default_lr_info()
        for name, rate in parse_lr_overrides(args.lr).items():
            lr_info[name] = {"lr": rate, "tuned_on_seeds": None, "source": "--lr"}
    except (OSError, ValueError, KeyError) as error:
        parser.error(str(error))
    # moe.json / moe.png for the default run; other runs do not overwrite it.
    stem = _stem("moe", args, DEFAULT_SEEDS)
    t_all = time.perf_counter()
    out: dict[str, Any] = {
        "quick": args.quick,
        "command": "python benchmarks/moe.py " + " ".join(args.argv),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__},
        "lr": lr_info,
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

    t = Table(title="Peak learning rates")
    for c in ("model", "peak lr", "tuned on seeds", "source"):
        t.add_column(c)
    for name, info in lr_info.items():
        seeds = info["tuned_on_seeds"]
        t.add_row(name, f"{info['lr']:g}", "not tuned" if seeds is None else ", ".join(map(str, seeds)),
                  info["source"])
    console.print(t)

    if not args.skip_training:
        out["training"] = []
        for seed in args.seeds:
            training = bench_training(args.quick, args.steps, seed, lr_info)
            out["training"].append(training)
            _print_training(console, training)
        if len(args.seeds) > 1:
            _print_seed_summary(console, out["training"])
        _plot(dispatch, out["training"][0], args.out / f"{stem}.png")

    out["total_s"] = time.perf_counter() - t_all
    out["time_ok"] = out["total_s"] <= 600
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=2, default=float))
    console.print(f"wrote {args.out / (stem + '.json')}"
                  + ("" if args.skip_training else f" and {args.out / (stem + '.png')}")
                  + f" in {out['total_s']:.0f}s (target <= 600s: "
                  + ("MET" if out["time_ok"] else "MISSED") + ")")


def _print_training(console: Any, training: dict[str, Any]) -> None:
    """The training table, the step-ratio targets and the routing health of one seed."""
    from rich.table import Table

    note = _seed_note(training)
    t = Table(title=f"Training, {training['steps']} steps × {training['batch_tokens']} bytes, {note}")
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
                f"{name} ({note}): reaches dense final val {training['dense_final_val']:.4f} at step "
                + ("never" if ratio is None else f"{r['steps_to_dense_final']:.0f}")
                + f" of {training['steps']} (ratio "
                + ("-" if ratio is None else f"{ratio:.2f}")
                + f", target <= {TARGET_STEP_RATIO}): "
                + ("[green]MET[/]" if r["step_ratio_ok"] else "[red]MISSED[/]"))

    health = []
    t = Table(title=f"Routing health of the trained routers, {note} ({HEALTH_BATCHES} held-out "
                    f"validation batches of {training['batch_tokens']} tokens, capacity factor 1.25)")
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
    training["routing_health"] = health
    console.print(t)


def _print_seed_summary(console: Any, trainings: list[dict[str, Any]]) -> None:
    """One row per model and seed, marking the seeds each model's rate was tuned on."""
    from rich.table import Table

    t = Table(title="Across seeds: final val loss and steps to the dense final (ratio)")
    for c in ("model", "seed", "rate tuned on this seed", "final val", "ratio"):
        t.add_column(c, justify="right")
    for name in MODELS:
        for training in trainings:
            r = training["runs"][name]
            ratio = r["step_ratio_vs_dense"]
            t.add_row(name, str(training["seed"]), "yes" if name in training["lr_tuned_on_this_seed"] else "no",
                      f"{r['final_val_loss']:.4f}", "-" if ratio is None else f"{ratio:.2f}")
    console.print(t)


if __name__ == "__main__":
    main()
