"""Sparse upcycling (Komatsuzaki et al., 2022): turn a dense Qwen2's MLPs into MoE layers.

Every expert starts as a copy of the dense MLP (SwiGLU: ``down(silu(gate(x)) * up(x))``) and the
per-token combine weights are renormalised to sum to 1, so at initialisation the upcycled model
computes exactly what the dense one did (when no token is dropped: ``capacity_factor=None``).
Training then lets the router specialise the experts.

Legend:
    B  batch;  T  sequence;  D  hidden size;  H  intermediate size;  E  experts
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from agentos.kernels.moe import MoELayer, RouterConfig, Routing

__all__ = ["UpcycledMLP", "moe_aux_loss", "upcycle_qwen2"]


class UpcycledMLP(nn.Module):
    """A MoE layer with the call signature of a Hugging Face MLP: ``[B, T, D] -> [B, T, D]``.

    The routing of the last call is kept in :attr:`last_routing` (its ``loss`` is the auxiliary
    loss to add when fine-tuning; see :func:`moe_aux_loss`).
    """

    def __init__(self, mlp: nn.Module, router: RouterConfig, expert_noise: float = 0.0) -> None:
        """Copy ``mlp``'s ``gate_proj``/``up_proj``/``down_proj`` into every expert.

        Raises:
            ValueError: ``mlp`` lacks those projections (not a Qwen2/Llama-style SwiGLU MLP).
        """
        super().__init__()
        missing = [n for n in ("gate_proj", "up_proj", "down_proj") if not hasattr(mlp, n)]
        if missing:
            raise ValueError(
                f"{type(mlp).__name__} has no {missing}: only SwiGLU MLPs (Qwen2, Llama) can be "
                "upcycled"
            )
        gate, up, down = mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight
        H, D = gate.shape  # nn.Linear weights are [out, in]
        self.moe = MoELayer(
            D, H, router, gated=True, activation="silu", dtype=gate.dtype, device=gate.device
        )
        experts = self.moe.experts
        assert experts.w_gate is not None
        with torch.no_grad():
            E = router.num_experts
            experts.w_gate.copy_(gate.t()[None].expand(E, D, H))  # [E, D, H]
            experts.w_in.copy_(up.t()[None].expand(E, D, H))  # [E, D, H]
            experts.w_out.copy_(down.t()[None].expand(E, H, D))  # [E, H, D]
            if expert_noise > 0:
                for p in (experts.w_gate, experts.w_in, experts.w_out):
                    p.add_(torch.randn_like(p) * expert_noise * p.std())
            self.moe.router.gate.weight.normal_(std=0.02)
        self.last_routing: Routing | None = None

    def forward(self, hidden_states: Tensor) -> Tensor:
        y, routing = self.moe(hidden_states)  # [B, T, D]
        self.last_routing = routing
        return y


def upcycle_qwen2(
    model: nn.Module,
    num_experts: int = 4,
    top_k: int = 2,
    capacity_factor: float | None = None,
    layers: Iterable[int] | None = None,
    expert_noise: float = 0.0,
    aux_loss_weight: float = 0.01,
) -> nn.Module:
    """Replace the MLPs of a Hugging Face Qwen2 (or Llama-style) causal LM in place.

    Args:
        model: e.g. ``Qwen2ForCausalLM``; its decoder layers are ``model.model.layers``.
        num_experts: E experts per upcycled MLP.
        top_k: experts per token; combine weights are renormalised to sum to 1.
        capacity_factor: ``None`` (default) drops no token, which keeps outputs equal at init.
        layers: which decoder layers to upcycle (default: all).
        expert_noise: relative Gaussian noise added to the expert copies (0 keeps exact equality).

    Returns:
        The same ``model`` object, upcycled; ``model.config.moe_upcycling`` records the settings.

    Raises:
        ValueError: the model has no ``model.layers`` with SwiGLU MLPs, a layer index is out of
            range, or the routing settings are invalid (see :class:`RouterConfig`).
    """
    decoder = getattr(getattr(model, "model", None), "layers", None)
    if decoder is None:
        raise ValueError(
            f"{type(model).__name__} has no .model.layers: pass a Qwen2ForCausalLM (or another "
            "Llama-style causal LM)"
        )
    chosen = list(range(len(decoder))) if layers is None else sorted(set(layers))
    bad = [i for i in chosen if not 0 <= i < len(decoder)]
    if bad:
        raise ValueError(f"layers {bad} out of range: the model has {len(decoder)} layers")
    router = RouterConfig(
        num_experts, top_k, capacity_factor, normalize_weights=True,
        aux_loss_weight=aux_loss_weight,
    )
    for i in chosen:
        decoder[i].mlp = UpcycledMLP(decoder[i].mlp, router, expert_noise)
    settings: dict[str, Any] = {"num_experts": num_experts, "top_k": top_k,
                                "capacity_factor": capacity_factor, "layers": chosen}
    if hasattr(model, "config"):
        model.config.moe_upcycling = settings
    return model


def moe_aux_loss(model: nn.Module) -> Tensor:
    """Sum of the routing losses of every :class:`UpcycledMLP` from the last forward."""
    losses = [m.last_routing.loss for m in model.modules()
              if isinstance(m, UpcycledMLP) and m.last_routing is not None]
    if not losses:
        return torch.zeros(())
    return torch.stack(losses).sum()
