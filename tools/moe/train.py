"""Training the MoE transformer on the standard-library corpus, resumable from checkpoints.

The pure pieces (learning-rate schedule, evaluation) are functions; :func:`train_moe` is the loop
that drives them, writes checkpoints and shows progress with tqdm.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from agentos.tools.moe.checkpoint import load_checkpoint, save_checkpoint
from agentos.tools.moe.config import MoETransformerConfig
from agentos.tools.moe.data import Corpus, load_stdlib_corpus, sample_batch
from agentos.tools.moe.model import MoETransformer

__all__ = ["TrainResult", "enable_router_bias", "evaluate", "lr_at", "train_moe",
           "update_router_biases"]


def enable_router_bias(model: torch.nn.Module, rate: float) -> int:
    """Turn on auxiliary-loss-free bias balancing (rate ``u``) in every top-k router of
    ``model``; call before loading a state dict that holds the biases. A no-op for ``rate == 0``.

    Returns:
        The number of routers changed.
    """
    from agentos.kernels.moe.routing import Router

    if rate <= 0:
        return 0
    n = 0
    for module in model.modules():
        if isinstance(module, Router) and module.expert_bias is None:
            module.config = replace(module.config, bias_update_rate=rate)
            module._enable_bias_buffers()
            n += 1
    return n


def update_router_biases(model: torch.nn.Module) -> None:
    """Apply one bias update in every router that has bias balancing on (after a step)."""
    from agentos.kernels.moe.routing import Router

    for module in model.modules():
        if isinstance(module, Router):
            module.update_bias()


@dataclass
class TrainResult:
    """What a training run produced."""

    model: MoETransformer
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per evaluation: step, train_loss, val_loss, wall_s, routing."""
    checkpoint: Path | None = None
    resumed_from: int = 0

    @property
    def final_val_loss(self) -> float:
        return float(self.history[-1]["val_loss"]) if self.history else math.nan


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup to ``peak`` then cosine decay to ``peak / 10`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


_TRAINED = "trained"


@torch.no_grad()
def evaluate(
    model: MoETransformer, data: torch.Tensor, batch_size: int, seq_len: int, batches: int,
    seed: int = 1234, capacity_factor: float | None | str = _TRAINED,
) -> dict[str, Any]:
    """Mean next-byte loss on fixed windows of ``data`` (same windows for every model).

    ``capacity_factor`` routes at another capacity than the model was built with (``None``: no
    dropping), e.g. to report the drop rate of a router trained without capacity at 1.25.

    Returns:
        ``{"loss": float, "routing": {"drop_rate", "normalized_entropy", "tokens_per_expert",
        "per_layer_drop_rate", "per_layer_entropy"}}`` (routing averaged over batches and MoE
        layers, and per MoE layer averaged over batches; empty for a dense model).
    """
    if capacity_factor != _TRAINED:
        with _capacity(model, capacity_factor):  # type: ignore[arg-type]
            return evaluate(model, data, batch_size, seq_len, batches, seed)
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    drops: list[float] = []
    entropies: list[float] = []
    counts: torch.Tensor | None = None
    layer_drops: dict[int, list[float]] = {}
    layer_entropies: dict[int, list[float]] = {}
    for _ in range(batches):
        x, y = sample_batch(data, batch_size, seq_len, gen)
        out = model(x, y)
        assert out.loss is not None
        losses.append(float(out.loss))
        for i, r in enumerate(out.routings):
            s = r.stats()
            layer_drops.setdefault(i, []).append(s.drop_rate)
            layer_entropies.setdefault(i, []).append(s.normalized_entropy)
            drops.append(s.drop_rate)
            entropies.append(s.normalized_entropy)
            c = torch.tensor(s.tokens_per_expert)
            counts = c if counts is None else counts + c
    model.train(was_training)
    routing: dict[str, Any] = {}
    if drops:
        routing = {
            "drop_rate": sum(drops) / len(drops),
            "normalized_entropy": sum(entropies) / len(entropies),
            "tokens_per_expert": counts.tolist() if counts is not None else [],
            "per_layer_drop_rate": [sum(v) / len(v) for _, v in sorted(layer_drops.items())],
            "per_layer_entropy": [sum(v) / len(v) for _, v in sorted(layer_entropies.items())],
        }
    return {"loss": sum(losses) / len(losses), "routing": routing}


@contextmanager
def _capacity(model: torch.nn.Module, capacity_factor: float | None) -> Iterator[None]:
    """Route every top-k router of ``model`` at ``capacity_factor`` inside the block."""
    from agentos.kernels.moe.routing import Router

    routers = [m for m in model.modules() if isinstance(m, Router)]
    saved = [r.config for r in routers]
    try:
        for r in routers:
            r.config = replace(r.config, capacity_factor=capacity_factor)  # validates the value
        yield
    finally:
        for r, config in zip(routers, saved):
            r.config = config


def train_moe(
    config: MoETransformerConfig,
    steps: int,
    *,
    out_dir: str | Path | None = None,
    resume: bool = True,
    batch_size: int = 16,
    seq_len: int = 128,
    lr: float = 3e-3,
    warmup: int = 20,
    weight_decay: float = 0.01,
    eval_every: int = 50,
    eval_batches: int = 8,
    checkpoint_every: int = 100,
    seed: int = 0,
    corpus: Corpus | None = None,
    max_bytes: int = 8_000_000,
    progress: bool = True,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    max_wall_s: float | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train a byte-level MoE transformer for ``steps`` optimizer steps (in total).

    With ``out_dir`` a checkpoint is written every ``checkpoint_every`` steps and at the end;
    with ``resume`` (default) an existing checkpoint there is loaded first and training continues
    from its step with the same optimizer state, data order and history.

    Args:
        config: the model; must equal the checkpoint's config when resuming.
        steps: total optimizer steps (a resumed run does ``steps - checkpoint_step`` more).
        out_dir: checkpoint directory, or ``None`` for no checkpoints.
        corpus: preloaded corpus; default reads the Python standard library.
        on_eval: called with each history entry (for live tables/plots).
        max_wall_s: stop early (with a checkpoint) after this much training wall time.
        stop_at: stop early (with a checkpoint) after this many steps; the learning-rate
            schedule still spans ``steps``, so resuming later continues the same run exactly.

    Returns:
        The trained model and its evaluation history.

    Raises:
        ValueError: ``steps < 1``, ``seq_len > config.max_seq_len``, or resuming a checkpoint
            whose config differs.
        CheckpointError: the checkpoint in ``out_dir`` is corrupt or truncated.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if seq_len > config.max_seq_len:
        raise ValueError(f"seq_len={seq_len} exceeds config.max_seq_len={config.max_seq_len}")
    corpus = corpus or load_stdlib_corpus(max_bytes=max_bytes)

    torch.manual_seed(seed)
    model = MoETransformer(config)
    enable_router_bias(model, config.router_bias_update_rate)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.95),
    )
    gen = torch.Generator().manual_seed(seed)
    result = TrainResult(model=model)
    start_step, wall_offset = 0, 0.0

    ckpt_dir = Path(out_dir) if out_dir is not None else None
    if ckpt_dir is not None and resume and (ckpt_dir / "manifest.json").exists():
        state, meta = load_checkpoint(ckpt_dir)
        saved = MoETransformerConfig.from_dict(meta["config"])
        if saved != config:
            raise ValueError(
                f"checkpoint in {ckpt_dir} was trained with a different config ({saved}); use "
                "that config, another out_dir, or resume=False"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_step = int(meta["step"])
        wall_offset = float(meta["wall_s"])
        result.history = list(meta["history"])
        result.resumed_from = start_step

    def checkpoint(step: int, wall: float) -> None:
        if ckpt_dir is None:
            return
        save_checkpoint(
            ckpt_dir,
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "data_rng": gen.get_state(), "torch_rng": torch.get_rng_state()},
            {"config": config.to_dict(), "step": step, "wall_s": wall,
             "history": result.history, "seq_len": seq_len, "batch_size": batch_size},
        )
        result.checkpoint = ckpt_dir

    from tqdm.auto import tqdm

    # Into a log file (not a terminal) a line every 30 s, not one per 0.1 s.
    bar = tqdm(total=steps, initial=start_step, disable=not progress, desc="train_moe",
               unit="step", dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30.0)
    model.train()
    wall = wall_offset  # training time only (evaluation and checkpoints excluded)
    train_loss = math.nan
    for step in range(start_step, steps):
        t_step = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        x, y = sample_batch(corpus.train, batch_size, seq_len, gen)
        out = model(x, y)
        assert out.loss is not None
        loss = out.loss + out.aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        update_router_biases(model)
        train_loss = float(out.loss.detach())
        done = step + 1
        bar.set_postfix(loss=f"{train_loss:.3f}", refresh=False)  # shown by update's refresh
        bar.update(1)
        wall += time.perf_counter() - t_step
        out_of_time = (max_wall_s is not None and wall >= max_wall_s) or done == stop_at
        if done % eval_every == 0 or done == steps or out_of_time:
            ev = evaluate(model, corpus.val, batch_size, seq_len, eval_batches)
            entry = {"step": done, "train_loss": train_loss, "val_loss": ev["loss"],
                     "wall_s": wall, "tokens": done * batch_size * seq_len,
                     "routing": ev["routing"]}
            result.history.append(entry)
            bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{ev['loss']:.3f}")
            if on_eval is not None:
                on_eval(entry)
        if done % checkpoint_every == 0 or done == steps or out_of_time:
            checkpoint(done, wall)
        if out_of_time:
            break
    bar.close()
    return result

