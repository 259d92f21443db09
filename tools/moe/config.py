"""Configuration of the decoder-only MoE transformer (pure Python: no torch import).

Presets name shapes that recur: ``tiny`` for tests, ``small`` for the benchmark and the agent tool,
``two_experts`` for the seed example (2 experts, top-1, every FFN a MoE layer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

__all__ = ["MoETransformerConfig", "PRESETS", "preset"]

Policy = Literal["top_k", "expert_choice"]


@dataclass(frozen=True)
class MoETransformerConfig:
    """Shape and routing of a decoder-only transformer whose FFNs may be MoE layers.

    Attributes:
        n_layers: transformer blocks.
        d_model: residual width; must be divisible by ``n_heads``.
        n_heads: attention heads.
        d_ff: hidden width of each FFN (of each expert in MoE layers).
        num_experts: experts per MoE layer; 1 with no ``moe_layers`` gives a dense model.
        top_k: experts per token.
        capacity_factor: expert capacity slack; ``None`` never drops a token.
        moe_layers: indices of blocks whose FFN is a MoE layer; ``None`` means every block when
            ``num_experts > 1``, none otherwise.
        policy: ``"top_k"`` or ``"expert_choice"``.
        noisy_gating: learned noise on router logits while training.
        aux_loss_weight: load-balancing loss weight.
        z_loss_weight: router z-loss weight.
        router_init_std: initial std of the router gate weights (``None``: ``d_model ** -0.5``).
        router_bias_update_rate: auxiliary-loss-free load balancing (DeepSeek-V3) — the rate
            ``u`` of the per-expert selection bias (see ``RouterConfig.bias_update_rate``);
            ``0.0`` (default) turns it off. Applied by :func:`enable_router_bias` (called by
            ``train_moe``); the bias is updated after every optimizer step.
        vocab_size: 256 for the byte-level tokenizer.
        max_seq_len: longest context (learned position embeddings).
        activation: FFN activation.
        dropout: dropout probability on attention and residual paths.

    Raises:
        ValueError: when built with inconsistent values; the message says which to change.
    """

    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 512
    num_experts: int = 8
    top_k: int = 1
    capacity_factor: float | None = 1.25
    moe_layers: tuple[int, ...] | None = None
    policy: Policy = "top_k"
    noisy_gating: bool = False
    aux_loss_weight: float = 0.01
    z_loss_weight: float = 0.001
    router_init_std: float | None = None
    router_bias_update_rate: float = 0.0
    vocab_size: int = 256
    max_seq_len: int = 256
    activation: Literal["gelu", "silu", "relu"] = "gelu"
    dropout: float = 0.0
    _resolved_moe_layers: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_ff", "num_experts", "top_k",
                     "vocab_size", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}: pick "
                f"n_heads among the divisors of d_model"
            )
        if self.top_k > self.num_experts:
            raise ValueError(
                f"top_k={self.top_k} exceeds num_experts={self.num_experts}: use top_k <= "
                f"{self.num_experts} or add experts"
            )
        if self.capacity_factor is not None and not (
            math.isfinite(self.capacity_factor) and self.capacity_factor > 0
        ):
            raise ValueError(
                f"capacity_factor must be > 0 (e.g. 1.25) or None for no dropping, got "
                f"{self.capacity_factor!r}"
            )
        if self.policy == "expert_choice" and self.capacity_factor is None:
            raise ValueError("policy='expert_choice' needs a capacity_factor (e.g. 1.0)")
        if not (math.isfinite(self.router_bias_update_rate)
                and self.router_bias_update_rate >= 0):
            raise ValueError(
                f"router_bias_update_rate must be >= 0 (0 turns it off), got "
                f"{self.router_bias_update_rate!r}"
            )
        if self.router_bias_update_rate > 0 and self.policy != "top_k":
            raise ValueError("router_bias_update_rate > 0 needs policy='top_k'")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.moe_layers is None:
            layers = tuple(range(self.n_layers)) if self.num_experts > 1 else ()
        else:
            layers = tuple(sorted(set(int(i) for i in self.moe_layers)))
            bad = [i for i in layers if not 0 <= i < self.n_layers]
            if bad:
                raise ValueError(
                    f"moe_layers {bad} out of range for n_layers={self.n_layers}: use indices "
                    f"0..{self.n_layers - 1}"
                )
        object.__setattr__(self, "_resolved_moe_layers", layers)

    @property
    def moe_layer_indices(self) -> tuple[int, ...]:
        """The blocks whose FFN is a MoE layer."""
        return self._resolved_moe_layers

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict that :meth:`from_dict` rebuilds."""
        d = asdict(self)
        d.pop("_resolved_moe_layers", None)
        if d["moe_layers"] is not None:
            d["moe_layers"] = list(d["moe_layers"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MoETransformerConfig:
        """Raises: ValueError: unknown keys or invalid values."""
        known = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MoETransformerConfig keys: {sorted(unknown)}")
        d = dict(d)
        if d.get("moe_layers") is not None:
            d["moe_layers"] = tuple(d["moe_layers"])
        return cls(**d)

    def with_(self, **changes: Any) -> MoETransformerConfig:
        """A validated copy with some fields changed."""
        return replace(self, **changes)


PRESETS: dict[str, MoETransformerConfig] = {
    "tiny": MoETransformerConfig(n_layers=2, d_model=32, n_heads=2, d_ff=64, num_experts=4,
                                 max_seq_len=64),
    "small": MoETransformerConfig(n_layers=4, d_model=128, n_heads=4, d_ff=512, num_experts=8),
    "two_experts": MoETransformerConfig(n_layers=4, d_model=128, n_heads=4, d_ff=512,
                                        num_experts=2, top_k=1),
    "dense_small": MoETransformerConfig(n_layers=4, d_model=128, n_heads=4, d_ff=512,
                                        num_experts=1),
}


def preset(name: str) -> MoETransformerConfig:
    """A named configuration.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
