"""Pruning and quantizing a causal language model, judged by perplexity on Python source.

The evaluation text is the Python standard library of the running interpreter (``sysconfig``'s
``stdlib``): every ``.py`` file outside the test packages, sorted by path and split by a hash of
the path, so the split is the same on every machine with the same Python. Files whose hash falls
in bucket 0 of 10 are the evaluation set, bucket 1 the calibration set (Wanda's activations); the
two never share a file. "Held out" means held out from calibration: a code model has likely seen
the standard library in pre-training.

Perplexity is computed as in the Wanda paper's evaluation: the evaluation files are joined and
tokenized once, cut into non-overlapping windows of ``seq_len`` tokens, each window is scored on
its own, and the perplexity is ``exp`` of the mean next-token negative log-likelihood over every
predicted token.

:func:`prune_causal_lm` prunes every ``nn.Linear`` of the decoder layers (attention q/k/v/o and
the MLP's gate/up/down; embeddings and ``lm_head`` stay dense) with :class:`~.prune.Pruner`.
Wanda's input norms are collected in one pass over the dense model (the paper collects them layer
by layer through the already pruned layers).
"""

from __future__ import annotations

import copy
import hashlib
import math
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentos.errors import RecipeError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .prune import PruneSpec

__all__ = [
    "Perplexity",
    "calibration_batches",
    "linear_weight_bytes",
    "perplexity",
    "prune_causal_lm",
    "stdlib_files",
    "stdlib_text",
]

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
_BUCKETS = 10
Split = Literal["eval", "calibration"]


def stdlib_files(split: Split, root: str | Path | None = None) -> list[Path]:
    """The standard library's ``.py`` files of one split, sorted by path.

    Args:
        split: ``"eval"`` (hash bucket 0 of 10) or ``"calibration"`` (bucket 1).
        root: the library directory; the running interpreter's ``stdlib`` by default.

    Raises:
        RecipeError: an unknown split, or no ``.py`` file in ``root``.
    """
    if split not in ("eval", "calibration"):
        raise RecipeError(f"split {split!r} is not 'eval' or 'calibration'")
    base = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    bucket = 0 if split == "eval" else 1
    files = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base)
        if _SKIP_DIRS & set(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        if int(hashlib.sha256(rel.as_posix().encode()).hexdigest(), 16) % _BUCKETS == bucket:
            files.append(path)
    if not files:
        raise RecipeError(f"no .py files of the {split} split under {base}: is it a Python library directory?")
    return files


def stdlib_text(split: Split, root: str | Path | None = None) -> str:
    """The files of ``split`` joined by blank lines (undecodable bytes replaced)."""
    return "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in stdlib_files(split, root))


def _token_ids(tokenizer: Any, text: str, max_tokens: int) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids[:max_tokens]


@dataclass(frozen=True)
class Perplexity:
    """A perplexity measurement.

    Attributes:
        perplexity: ``exp(nll_sum / predicted)``.
        nll_sum: the summed next-token negative log-likelihood (nats).
        predicted: how many tokens were predicted (``windows * (seq_len - 1)``).
        windows: how many windows were scored.
        seq_len: the window length in tokens.
    """

    perplexity: float
    nll_sum: float
    predicted: int
    windows: int
    seq_len: int


def perplexity(model: nn.Module, tokenizer: Any, text: str, *, seq_len: int = 512, max_tokens: int = 16_384,
               progress: Callable[[int, int], None] | None = None) -> Perplexity:
    """Perplexity of ``model`` on ``text`` over non-overlapping windows of ``seq_len`` tokens.

    Only whole windows are scored: the first ``max_tokens // seq_len`` of them.

    Args:
        model: a causal LM whose forward takes ``input_ids`` and returns ``.logits`` [B, T, V].
        tokenizer: its tokenizer (called with ``add_special_tokens=False``).
        text: the text to score.
        seq_len: window length (>= 2).
        max_tokens: at most this many tokens are scored.
        progress: called as ``progress(done, total)`` after each window.

    Raises:
        RecipeError: ``seq_len < 2``, or the text has fewer than ``seq_len`` tokens.
    """
    import torch
    import torch.nn.functional as F

    if seq_len < 2:
        raise RecipeError(f"seq_len must be at least 2, got {seq_len}")
    ids = _token_ids(tokenizer, text, max_tokens)
    windows = len(ids) // seq_len
    if windows == 0:
        raise RecipeError(f"the text has {len(ids)} tokens, fewer than one window of {seq_len}")
    nll = 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for w in range(windows):
                x = torch.tensor([ids[w * seq_len:(w + 1) * seq_len]])  # [1, T]
                logits = model(input_ids=x).logits[0, :-1].float()  # [T-1, V]
                nll += float(F.cross_entropy(logits, x[0, 1:], reduction="sum"))
                if progress is not None:
                    progress(w + 1, windows)
    finally:
        model.train(was_training)
    predicted = windows * (seq_len - 1)
    return Perplexity(math.exp(nll / predicted), nll, predicted, windows, seq_len)


def calibration_batches(tokenizer: Any, text: str, *, samples: int = 16, seq_len: int = 512) -> list[dict[str, torch.Tensor]]:
    """``samples`` consecutive windows of ``seq_len`` tokens from ``text``, as ``{"input_ids": [1, T]}``.

    Raises:
        RecipeError: the text has fewer than ``samples * seq_len`` tokens.
    """
    import torch

    ids = _token_ids(tokenizer, text, samples * seq_len)
    if len(ids) < samples * seq_len:
        raise RecipeError(f"calibration text has {len(ids)} tokens; {samples} samples of {seq_len} need {samples * seq_len}")
    return [{"input_ids": torch.tensor([ids[i * seq_len:(i + 1) * seq_len]])} for i in range(samples)]


def prune_causal_lm(model: nn.Module, spec: PruneSpec, calibration: list[dict[str, torch.Tensor]] | None = None, *,
                    inplace: bool = False) -> tuple[nn.Module, dict[str, float]]:
    """Prune the decoder linears of a causal LM once (no recovery); returns ``(model, sparsity by layer)``.

    Args:
        model: the model; copied first unless ``inplace``.
        spec: a one-shot spec: method ``magnitude`` or ``wanda``, pattern ``unstructured`` or ``N:M``.
        calibration: batches for Wanda's input norms (:func:`calibration_batches`).
        inplace: prune ``model`` itself.

    Raises:
        RecipeError: a spec this one-shot path cannot run (a schedule, movement, RigL, structured),
            Wanda without calibration, or a pattern the layers' widths cannot take. Raised before
            anything is copied or changed.
    """
    from .prune import Pruner, parse_pattern

    spec.validate()
    kind, _, _ = parse_pattern(spec.pattern)
    if spec.schedule != "oneshot" or spec.method == "movement" or kind in ("rigl", "structured"):
        raise RecipeError("an LLM is pruned one-shot without training: use schedule oneshot, method magnitude or "
                          "wanda, and pattern unstructured, global or N:M")
    if spec.method == "wanda" and not calibration:
        raise RecipeError("Wanda needs calibration batches: pass calibration=calibration_batches(tokenizer, text)")
    Pruner.for_model(model, spec)  # checks the shapes against the pattern before the copy
    target = model if inplace else copy.deepcopy(model)
    pruner = Pruner.for_model(target, spec)
    if spec.method == "wanda":
        pruner.calibrate(target, calibration or [])
    pruner.compute_masks(spec.sparsity)
    pruner.apply()
    return target, pruner.report()


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes held by the weights (and quantization scales) of every linear outside ``lm_head``.

    Counts ``nn.Linear.weight`` and the ``qweight``/``scale`` buffers of the weight-only layers of
    :mod:`agentos.kernels.quant`: what the decoder's linears take in memory.
    """
    from torch import nn

    total = 0
    for name, module in model.named_modules():
        if "lm_head" in name.split("."):
            continue
        if isinstance(module, nn.Linear):
            total += module.weight.nelement() * module.weight.element_size()
        for buffer_name in ("qweight", "scale"):
            buffer = module._buffers.get(buffer_name)
            if buffer is not None:
                total += buffer.nelement() * buffer.element_size()
    return total
