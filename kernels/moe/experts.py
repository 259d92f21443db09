"""A bank of E feed-forward experts stored as stacked weight tensors.

Stacked weights (``[E, D, H]``) rather than E ``nn.Linear`` modules make it cheap to slice the bank
for expert parallelism and to copy a dense MLP into every expert (sparse upcycling).

Legend:
    E  experts
    D  model width
    H  expert hidden width
    M  tokens given to one expert
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Activation", "Experts", "ffn"]

Activation = Literal["gelu", "silu", "relu"]

_ACTIVATIONS = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}


def ffn(
    x: Tensor,
    w_in: Tensor,
    w_out: Tensor,
    w_gate: Tensor | None = None,
    activation: Activation = "gelu",
) -> Tensor:
    """One feed-forward network: ``act(x W_in) W_out``, or gated ``(act(x W_gate) * x W_in) W_out``.

    Args:
        x: ``[M, D]`` tokens.
        w_in: ``[D, H]``.
        w_out: ``[H, D]``.
        w_gate: ``[D, H]`` for a gated (SwiGLU-style) FFN, else ``None``.
        activation: ``"gelu"``, ``"silu"`` or ``"relu"``.

    Returns:
        ``[M, D]``.
    """
    act = _ACTIVATIONS[activation]
    h = x @ w_in  # [M, H]
    h = act(x @ w_gate) * h if w_gate is not None else act(h)  # [M, H]
    return h @ w_out  # [M, D]


class Experts(nn.Module):
    """E independent FFN experts with weights ``w_in [E, D, H]``, ``w_out [E, H, D]``
    (and ``w_gate [E, D, H]`` when ``gated``)."""

    def __init__(
        self,
        num_experts: int,
        d_model: int,
        d_hidden: int,
        *,
        gated: bool = False,
        activation: Activation = "gelu",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Raises: ValueError: a size is < 1 or the activation is unknown."""
        super().__init__()
        for name, value in (("num_experts", num_experts), ("d_model", d_model),
                            ("d_hidden", d_hidden)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.num_experts = num_experts
        self.d_model = d_model
        self.d_hidden = d_hidden
        self.activation: Activation = activation
        kw = {"dtype": dtype, "device": device}
        self.w_in = nn.Parameter(torch.randn(num_experts, d_model, d_hidden, **kw) * d_model**-0.5)
        self.w_out = nn.Parameter(
            torch.randn(num_experts, d_hidden, d_model, **kw) * d_hidden**-0.5
        )
        self.w_gate: nn.Parameter | None = None
        if gated:
            self.w_gate = nn.Parameter(
                torch.randn(num_experts, d_model, d_hidden, **kw) * d_model**-0.5
            )

    @property
    def gated(self) -> bool:
        return self.w_gate is not None

    def expert(self, e: int, x: Tensor) -> Tensor:
        """Run expert ``e`` on ``x: [M, D]``. Returns ``[M, D]``."""
        w_gate = self.w_gate[e] if self.w_gate is not None else None
        return ffn(x, self.w_in[e], self.w_out[e], w_gate, self.activation)

    def shard(self, start: int, stop: int) -> Experts:
        """A new bank holding copies of experts ``start:stop`` (for expert parallelism)."""
        if not 0 <= start < stop <= self.num_experts:
            raise ValueError(f"bad expert range {start}:{stop} for {self.num_experts} experts")
        out = Experts(
            stop - start, self.d_model, self.d_hidden, gated=self.gated,
            activation=self.activation, dtype=self.w_in.dtype, device=self.w_in.device,
        )
        with torch.no_grad():
            out.w_in.copy_(self.w_in[start:stop])
            out.w_out.copy_(self.w_out[start:stop])
            if self.w_gate is not None and out.w_gate is not None:
                out.w_gate.copy_(self.w_gate[start:stop])
        return out

    def extra_repr(self) -> str:
        return (f"num_experts={self.num_experts}, d_model={self.d_model}, "
                f"d_hidden={self.d_hidden}, gated={self.gated}, activation={self.activation}")
