"""Training the MoE transformer under DeepSpeed (``deepspeed.initialize``), on CPU with gloo.

Two choices of MoE layer:

* ``moe_impl="agentos"`` — the model as is (our router and sort-based dispatch); DeepSpeed runs
  the optimizer, gradient clipping and data parallelism across ranks;
* ``moe_impl="deepspeed"`` — each MoE FFN is replaced by ``deepspeed.moe.layer.MoE`` (DeepSpeed's
  top-k gate and all-to-all), with expert parallelism over all ranks when the experts divide
  evenly (``ep_size = world_size``). The seed example (``examples/moe_two_experts.py``) uses it
  with 2 experts.

Each rank is a process started by :func:`agentos.kernels.launch.spawn`; rank r reads its own
random windows of the corpus (seeded by rank).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Literal

from agentos.tools.moe.config import MoETransformerConfig

__all__ = ["train_with_deepspeed"]

MoEImpl = Literal["agentos", "deepspeed"]


def train_with_deepspeed(
    config: MoETransformerConfig,
    steps: int,
    *,
    moe_impl: MoEImpl = "deepspeed",
    world_size: int = 1,
    batch_size: int = 8,
    seq_len: int = 128,
    lr: float = 3e-3,
    eval_every: int = 50,
    eval_batches: int = 4,
    seed: int = 0,
    max_bytes: int = 4_000_000,
    out_dir: str | Path | None = None,
    timeout_s: float = 1800.0,
) -> list[dict[str, Any]]:
    """Train with DeepSpeed on ``world_size`` local CPU ranks; returns rank 0's eval history.

    Args:
        config: the model configuration.
        steps: optimizer steps.
        moe_impl: ``"agentos"`` or ``"deepspeed"`` MoE layers (see the module docstring).
        world_size: data-parallel ranks (gloo); DeepSpeed MoE also shards experts over them.
        out_dir: with ``moe_impl="agentos"``, rank 0 saves a checkpoint there at the end
            (loadable with :func:`agentos.tools.moe.load_model`).

    Raises:
        ImportError: DeepSpeed is not installed (``pip install "agentos-kit[ml]"``).
        ValueError: ``steps < 1`` or an unknown ``moe_impl``.
        agentos.kernels.launch.RankFailed: a rank failed (its traceback is in the message).
    """
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise ImportError(
            'DeepSpeed is not installed: pip install "agentos-kit[ml]" (or DS_BUILD_OPS=0 pip '
            "install deepspeed)"
        )
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if moe_impl not in ("agentos", "deepspeed"):
        raise ValueError(f"moe_impl must be 'agentos' or 'deepspeed', got {moe_impl!r}")
    from agentos.kernels.launch import spawn

    opts = {"steps": steps, "moe_impl": moe_impl, "batch_size": batch_size, "seq_len": seq_len,
            "lr": lr, "eval_every": eval_every, "eval_batches": eval_batches, "seed": seed,
            "max_bytes": max_bytes, "out_dir": str(out_dir) if out_dir is not None else None}
    results = spawn(_rank_main, world_size, config.to_dict(), opts, timeout_s=timeout_s)
    return list(results[0])


def _rank_main(
    rank: int, world_size: int, config_dict: dict[str, Any], opts: dict[str, Any]
) -> list[dict[str, Any]]:
    import os

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(world_size)
    os.environ["LOCAL_RANK"], os.environ["LOCAL_WORLD_SIZE"] = str(rank), str(world_size)
    import deepspeed
    import torch

    from agentos.tools.moe.checkpoint import save_checkpoint
    from agentos.tools.moe.data import load_stdlib_corpus, sample_batch
    from agentos.tools.moe.model import MoETransformer
    from agentos.tools.moe.train import evaluate, lr_at

    deepspeed.init_distributed(dist_backend="gloo")
    config = MoETransformerConfig.from_dict(config_dict)
    torch.manual_seed(opts["seed"])
    model = MoETransformer(config)
    ds_layers: list[Any] = []
    if opts["moe_impl"] == "deepspeed":
        ds_layers = _swap_in_deepspeed_moe(model, config, world_size)
        from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

        params: Any = split_params_into_different_moe_groups_for_optimizer(
            [{"params": list(model.parameters()), "name": "all"}]
        )
    else:
        params = model.parameters()
    ds_config = {
        "train_micro_batch_size_per_gpu": opts["batch_size"],
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "optimizer": {"type": "AdamW",
                      "params": {"lr": opts["lr"], "betas": [0.9, 0.95], "weight_decay": 0.01,
                                 "torch_adam": True}},
        "steps_per_print": 10**9,
    }
    engine, optimizer, _, _ = deepspeed.initialize(
        model=model, model_parameters=params, config=ds_config
    )
    corpus = load_stdlib_corpus(max_bytes=opts["max_bytes"])
    gen = torch.Generator().manual_seed(opts["seed"] * 1000 + rank)
    history: list[dict[str, Any]] = []
    wall = 0.0
    steps = opts["steps"]
    for step in range(steps):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, opts["lr"], min(20, steps))
        x, y = sample_batch(corpus.train, opts["batch_size"], opts["seq_len"], gen)
        out = engine(x, y)
        loss = out.loss + out.aux_loss + sum((m.last_aux for m in ds_layers), start=0.0)
        engine.backward(loss)
        engine.step()
        wall += time.perf_counter() - t0
        done = step + 1
        if done % opts["eval_every"] == 0 or done == steps:
            ev = evaluate(model, corpus.val, opts["batch_size"], opts["seq_len"],
                          opts["eval_batches"])
            history.append({"step": done, "train_loss": float(out.loss.detach()),
                            "val_loss": ev["loss"], "wall_s": wall, "routing": ev["routing"],
                            "world_size": world_size, "moe_impl": opts["moe_impl"]})
    if rank == 0 and opts["out_dir"] and opts["moe_impl"] == "agentos":
        save_checkpoint(opts["out_dir"], {"model": model.state_dict()},
                        {"config": config.to_dict(), "step": steps, "wall_s": wall,
                         "history": history, "trainer": "deepspeed"})
    if any(not math.isfinite(h["val_loss"]) for h in history):
        raise FloatingPointError(f"rank {rank}: validation loss is not finite: {history}")
    return history


def _swap_in_deepspeed_moe(model: Any, config: MoETransformerConfig, world_size: int) -> list[Any]:
    """Replace each MoE FFN by DeepSpeed's MoE layer (expert = our dense FFN shape)."""
    from deepspeed.moe.layer import MoE
    from torch import Tensor, nn

    from agentos.kernels.moe import MoELayer
    from agentos.tools.moe.model import DenseFFN

    ep_size = world_size if config.num_experts % world_size == 0 else 1

    class DeepSpeedMoEFFN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.moe = MoE(
                hidden_size=config.d_model,
                expert=DenseFFN(config.d_model, config.d_ff, config.activation),
                num_experts=config.num_experts, ep_size=ep_size, k=config.top_k,
                capacity_factor=config.capacity_factor or 1.0,
                eval_capacity_factor=config.capacity_factor or 1.0,
                drop_tokens=config.capacity_factor is not None,
                noisy_gate_policy="RSample" if config.noisy_gating else None,
                use_residual=False,
            )
            self.last_aux: Tensor | float = 0.0

        def forward(self, x: Tensor) -> Tensor:
            y, aux, _ = self.moe(x)  # aux: DeepSpeed's (unweighted) balance loss
            self.last_aux = aux * config.aux_loss_weight
            return y

    layers = []
    for block in model.blocks:
        if isinstance(block.ffn, MoELayer):
            block.ffn = DeepSpeedMoEFFN()
            layers.append(block.ffn)
    return layers
