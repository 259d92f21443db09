"""Importance scores for pruning: magnitude, Wanda, movement, and per-head / per-neuron scores.

Higher means more important; :mod:`agentos.kernels.sparsity.masks` prunes the lowest.

- Magnitude: ``|W|``.
- Wanda (Sun et al., 2023, "A Simple and Effective Pruning Approach for Large Language Models"):
  ``|W_oi| * ||X_i||_2``, the weight times the L2 norm of its input feature over calibration
  tokens; compared per output row.
- Movement (Sanh et al., 2020): ``S = -sum_t W_t * dL/dW_t`` accumulated during fine-tuning;
  weights moving away from zero score high.
- Structured: a head scores the L2 norm of its query/key/value rows and output-projection
  columns; an FFN neuron the L2 norm of its up-projection row and down-projection column.

Legend of dimension letters used in shape comments:
    N  calibration tokens (flattened batch x sequence)
    O  output features, I  input features
    H  heads, Dh  head width (D = H * Dh)
    F  FFN neurons (intermediate width), D  model width
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "activation_norms",
    "head_scores",
    "head_scores_reference",
    "magnitude",
    "movement_update",
    "neuron_scores",
    "neuron_scores_reference",
    "wanda",
    "wanda_reference",
]


def magnitude(weight: Tensor) -> Tensor:
    """``|W|``, elementwise."""
    return weight.detach().abs()


def activation_norms(inputs: Tensor) -> Tensor:
    """L2 norm of each input feature over calibration tokens: ``[..., I] -> [I]``.

    For streaming over batches, sum squares yourself and take the root at the end
    (``sqrt(sum_b ||X_b||^2)``); this is the one-batch case.
    """
    x = inputs.detach().reshape(-1, inputs.shape[-1]).to(torch.float64)  # [N, I]
    return x.pow(2).sum(dim=0).sqrt()  # [I]


def wanda(weight: Tensor, input_norms: Tensor) -> Tensor:
    """Wanda score ``|W_oi| * ||X_i||``: ``[O, I]`` and ``[I]`` -> ``[O, I]``.

    Raises:
        ValueError: ``input_norms`` does not have one entry per input feature.
    """
    if weight.dim() != 2 or input_norms.shape != (weight.shape[1],):
        raise ValueError(
            f"wanda needs a [O, I] weight and [I] input norms, got {tuple(weight.shape)} and "
            f"{tuple(input_norms.shape)}; collect the norms from this layer's inputs"
        )
    return weight.detach().abs() * input_norms.to(weight.dtype)[None, :]  # [O, I]


def wanda_reference(weight: Tensor, inputs: Tensor) -> Tensor:
    """Plain reference: the norm and product written out per element in float64 loops."""
    w = weight.detach().to(torch.float64).tolist()
    x = inputs.detach().reshape(-1, inputs.shape[-1]).to(torch.float64).tolist()
    norms = [sum(row[i] ** 2 for row in x) ** 0.5 for i in range(len(w[0]))]
    return torch.tensor([[abs(w[o][i]) * norms[i] for i in range(len(norms))] for o in range(len(w))],
                        dtype=torch.float64)


def movement_update(score: Tensor, weight: Tensor, grad: Tensor) -> Tensor:
    """One step of movement scoring: ``S - W * dL/dW`` (returns a new tensor)."""
    return score - weight.detach() * grad.detach()


def head_scores(q: Tensor, k: Tensor, v: Tensor, out: Tensor, heads: int) -> Tensor:
    """L2 norm of each head's weights: q/k/v ``[D, D]`` (rows = outputs) and out ``[D, D]``.

    Head ``h`` owns rows ``h*Dh:(h+1)*Dh`` of q, k and v and the same columns of ``out``.

    Raises:
        ValueError: the width is not divisible by ``heads``.
    """
    width = q.shape[0]
    if heads < 1 or width % heads:
        raise ValueError(f"width {width} is not divisible into {heads} heads")
    dh = width // heads
    sq = sum(w.detach().to(torch.float64).reshape(heads, dh, -1).pow(2).sum(dim=(1, 2)) for w in (q, k, v))  # [H]
    sq = sq + out.detach().to(torch.float64).reshape(out.shape[0], heads, dh).pow(2).sum(dim=(0, 2))  # [H]
    return sq.sqrt()


def head_scores_reference(q: Tensor, k: Tensor, v: Tensor, out: Tensor, heads: int) -> Tensor:
    """Plain reference for :func:`head_scores`: slice each head's rows and columns."""
    dh = q.shape[0] // heads
    scores = []
    for h in range(heads):
        rows = slice(h * dh, (h + 1) * dh)
        total = sum(float(w[rows].double().pow(2).sum()) for w in (q, k, v)) + float(out[:, rows].double().pow(2).sum())
        scores.append(total ** 0.5)
    return torch.tensor(scores, dtype=torch.float64)


def neuron_scores(up: Tensor, down: Tensor) -> Tensor:
    """L2 norm per FFN neuron: ``up`` ``[F, D]`` (row f) and ``down`` ``[D, F]`` (column f) -> ``[F]``.

    Raises:
        ValueError: ``up`` and ``down`` disagree on the number of neurons.
    """
    if up.shape[0] != down.shape[1]:
        raise ValueError(f"up {tuple(up.shape)} and down {tuple(down.shape)} must share F (up rows, down columns)")
    return (up.detach().to(torch.float64).pow(2).sum(dim=1) + down.detach().to(torch.float64).pow(2).sum(dim=0)).sqrt()


def neuron_scores_reference(up: Tensor, down: Tensor) -> Tensor:
    """Plain reference for :func:`neuron_scores`."""
    return torch.tensor([(float(up[f].double().pow(2).sum()) + float(down[:, f].double().pow(2).sum())) ** 0.5
                         for f in range(up.shape[0])], dtype=torch.float64)
