"""The training loop shared by fine-tuning and recovery, and evaluation (accuracy, latency).

One loop: AdamW with linear warm-up and decay, batches drawn from a seeded shuffle, optional
distillation from a frozen teacher, optional :class:`~agentos.tools.compress.prune.Pruner` hooks
(schedule, movement, RigL, masks kept at zero after every step). Progress shows with tqdm.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentos.tools.compress.data import Example
from agentos.tools.compress.model import encode

if TYPE_CHECKING:
    import torch
    from torch import nn

    from agentos.tools.compress.prune import Pruner

__all__ = ["DistillSpec", "TrainSpec", "accuracy", "batches", "latency", "train"]


@dataclass
class TrainSpec:
    """Steps (or epochs over the examples when ``steps`` is 0), batch size, learning rate, seed."""

    steps: int = 0
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-5
    warmup: float = 0.06
    max_len: int = 64
    seed: int = 0
    weight_decay: float = 0.01
    freeze_embeddings: bool = True  #: the 11.7 M word-embedding weights stay as pretrained (CPU time)

    def total_steps(self, n_examples: int) -> int:
        """``steps`` if set, else ``ceil(epochs * n / batch_size)``."""
        if self.steps:
            return self.steps
        return max(1, -(-int(self.epochs * n_examples) // self.batch_size))


@dataclass
class DistillSpec:
    """Loss weights of recovery: ``ce_weight * CE + KL + hidden_weight * hidden MSE``."""

    ce_weight: float = 0.5
    hidden_weight: float = 1.0
    temperature: float = 2.0


def batches(examples: list[Example], tokenizer: Any, batch_size: int, max_len: int, *, seed: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Endless (seeded shuffle) or one ordered pass (``seed=None``) of encoded batches with labels."""
    import torch

    rng = random.Random(seed)
    while True:
        order = list(examples)
        if seed is not None:
            rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            chunk = order[i:i + batch_size]
            batch = encode(tokenizer, [e.text for e in chunk], max_len)
            batch["labels"] = torch.tensor([e.label for e in chunk])
            yield batch
        if seed is None:
            return


def train(model: nn.Module, tokenizer: Any, examples: list[Example], spec: TrainSpec, *,
          teacher: nn.Module | None = None, distill: DistillSpec | None = None,
          pruner: Pruner | None = None, progress: bool = True, desc: str = "train") -> list[float]:
    """Train ``model`` in place; returns the loss of every step.

    With ``teacher``, the loss is ``ce_weight * CE + KL + hidden_weight * MSE``
    (:func:`~agentos.tools.compress.distill.distillation_loss`); the teacher is never updated.
    With ``pruner``, its masks hold after every step.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from agentos.tools.compress.distill import distillation_loss

    torch.manual_seed(spec.seed)
    total = spec.total_steps(len(examples))
    distill = distill or DistillSpec()
    frozen = [p for n, p in model.named_parameters() if spec.freeze_embeddings and "embeddings" in n.split(".") and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr, weight_decay=spec.weight_decay)
    warm = max(1, int(spec.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    if teacher is not None:
        teacher.eval()
    if pruner is not None:
        pruner.start(total)
    model.train()
    losses: list[float] = []
    stream = batches(examples, tokenizer, spec.batch_size, spec.max_len, seed=spec.seed)
    bar = tqdm(range(total), desc=desc, disable=not progress, leave=False)
    for step in bar:
        if pruner is not None:
            pruner.before_step(step)
        batch = next(stream)
        labels = batch.pop("labels")
        out = model(**batch, output_hidden_states=teacher is not None)
        loss = F.cross_entropy(out.logits, labels)
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher(**batch, output_hidden_states=True)
            kd = distillation_loss(out.logits, t_out.logits, temperature=distill.temperature,
                                   student_hidden=out.hidden_states[1:], teacher_hidden=t_out.hidden_states[1:],
                                   attention_mask=batch["attention_mask"], hidden_weight=distill.hidden_weight)
            loss = distill.ce_weight * loss + kd
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if pruner is not None:
            pruner.after_backward(step)
        optimizer.step()
        scheduler.step()
        if pruner is not None:
            pruner.apply()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{statistics.fmean(losses[-20:]):.3f}")
    for p in frozen:
        p.requires_grad_(True)
    model.eval()
    return losses


def accuracy(model: nn.Module, tokenizer: Any, examples: list[Example], *, max_len: int = 64, batch_size: int = 64,
             progress: bool = False, desc: str = "evaluate") -> float:
    """Fraction of ``examples`` whose argmax label is right."""
    import torch
    from tqdm.auto import tqdm

    model.eval()
    right = 0
    with torch.inference_mode():
        for batch in tqdm(batches(examples, tokenizer, batch_size, max_len), total=-(-len(examples) // batch_size),
                          desc=desc, disable=not progress, leave=False):
            labels = batch.pop("labels")
            right += int((model(**batch).logits.argmax(dim=-1) == labels).sum())
    return right / len(examples)


def latency(model: nn.Module, tokenizer: Any, examples: list[Example], *, batch_size: int = 32, max_len: int = 64,
            repeats: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and min wall seconds of one forward pass over a fixed batch (inference mode, CPU)."""
    import torch

    batch = encode(tokenizer, [e.text for e in examples[:batch_size]], max_len)
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(**batch)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "batch_size": batch_size,
            "tokens": int(batch["input_ids"].numel()), "threads": torch.get_num_threads()}
