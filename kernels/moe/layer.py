"""A Mixture-of-Experts feed-forward layer: router + expert bank + sort-based dispatch.

Legend:
    N  tokens (all leading dimensions flattened)
    D  model width
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from agentos.kernels.moe.dispatch import moe_dispatch, moe_gather_loop, moe_reference
from agentos.kernels.moe.experts import Activation, Experts
from agentos.kernels.moe.routing import Router, RouterConfig, Routing

__all__ = ["DispatchImpl", "MoELayer"]

DispatchImpl = Literal["sort", "reference", "gather_loop"]

_IMPLS = {"sort": moe_dispatch, "reference": moe_reference, "gather_loop": moe_gather_loop}


class MoELayer(nn.Module):
    """Drop-in replacement for a transformer FFN: ``y = sum_k w_k * expert_k(x)``.

    The auxiliary routing loss of the last forward is ``layer.last_routing.loss``; the forward also
    returns the :class:`Routing` so a caller can add it to its task loss.
    """

    def __init__(
        self,
        d_model: int,
        d_hidden: int,
        router: RouterConfig,
        *,
        gated: bool = False,
        activation: Activation = "gelu",
        impl: DispatchImpl = "sort",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Raises: ValueError: an unknown ``impl`` or an invalid size (see :class:`Experts`)."""
        super().__init__()
        if impl not in _IMPLS:
            raise ValueError(f"impl must be one of {sorted(_IMPLS)}, got {impl!r}")
        self.impl: DispatchImpl = impl
        self.router = Router(d_model, router, dtype=dtype, device=device)
        self.experts = Experts(
            router.num_experts, d_model, d_hidden, gated=gated, activation=activation,
            dtype=dtype, device=device,
        )
        self.last_routing: Routing | None = None

    @property
    def config(self) -> RouterConfig:
        return self.router.config

    def forward(self, x: Tensor) -> tuple[Tensor, Routing]:
        """Apply the layer to ``x: [..., D]``. Returns ``(y [..., D], routing over N tokens)``."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # [N, D]
        routing = self.router(flat)
        y = _IMPLS[self.impl](flat, routing, self.experts)  # [N, D]
        self.last_routing = routing
        return y.reshape(shape), routing
