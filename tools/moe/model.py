"""A small decoder-only transformer whose FFNs are MoE layers (in the blocks the config names).

Pre-norm blocks: ``x + attn(ln(x))`` then ``x + ffn(ln(x))``; causal attention through
``scaled_dot_product_attention``; learned position embeddings; output head tied to the token
embedding. MoE FFNs come from :class:`agentos.kernels.moe.MoELayer`.

Legend:
    B  batch
    T  sequence length
    D  model width
    H  heads;  Dh = D / H
    V  vocabulary (256 bytes)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agentos.kernels.moe import MoELayer, RouterConfig, Routing
from agentos.tools.moe.config import MoETransformerConfig

__all__ = ["DenseFFN", "ModelOutput", "MoETransformer"]


@dataclass
class ModelOutput:
    logits: Tensor  # [B, T, V]
    aux_loss: Tensor  # [] sum of the MoE layers' routing losses
    routings: list[Routing]  # one per MoE layer, in block order
    loss: Tensor | None = None  # [] next-token cross-entropy, when targets were given


class DenseFFN(nn.Module):
    """``act(x W_in) W_out`` — the same shape as one expert."""

    def __init__(self, d_model: int, d_ff: int, activation: str) -> None:
        super().__init__()
        self.w_in = nn.Linear(d_model, d_ff, bias=False)
        self.w_out = nn.Linear(d_ff, d_model, bias=False)
        self.act = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.w_out(self.act(self.w_in(x)))  # [B, T, D]


class _Attention(nn.Module):
    def __init__(self, cfg: MoETransformerConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, Dh]
        o = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, T, Dh]
        return self.proj(o.transpose(1, 2).reshape(B, T, D))  # [B, T, D]


class _Block(nn.Module):
    def __init__(self, cfg: MoETransformerConfig, moe: bool) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = _Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ffn: nn.Module
        if moe:
            router = RouterConfig(
                num_experts=cfg.num_experts, top_k=cfg.top_k,
                capacity_factor=cfg.capacity_factor, policy=cfg.policy,
                noisy=cfg.noisy_gating, aux_loss_weight=cfg.aux_loss_weight,
                z_loss_weight=cfg.z_loss_weight, init_std=cfg.router_init_std,
            )
            self.ffn = MoELayer(cfg.d_model, cfg.d_ff, router, activation=cfg.activation)
        else:
            self.ffn = DenseFFN(cfg.d_model, cfg.d_ff, cfg.activation)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Routing | None]:
        x = x + self.drop(self.attn(self.ln1(x)))  # [B, T, D]
        h = self.ln2(x)
        routing: Routing | None = None
        if isinstance(self.ffn, MoELayer):
            y, routing = self.ffn(h)
        else:
            y = self.ffn(h)
        return x + self.drop(y), routing


class MoETransformer(nn.Module):
    """Decoder-only language model over bytes; see the module docstring."""

    def __init__(self, config: MoETransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.max_seq_len, config.d_model)
        moe = set(config.moe_layer_indices)
        self.blocks = nn.ModuleList(_Block(config, i in moe) for i in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> ModelOutput:
        """Logits for byte ids ``idx: [B, T]``; with ``targets: [B, T]`` also the mean loss.

        Raises:
            ValueError: ``T`` exceeds ``max_seq_len``.
        """
        B, T = idx.shape
        if T > self.config.max_seq_len:
            raise ValueError(
                f"sequence of {T} tokens exceeds max_seq_len={self.config.max_seq_len}: "
                "truncate the input or build the model with a larger max_seq_len"
            )
        pos = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)[None]  # [B, T, D]
        routings: list[Routing] = []
        for block in self.blocks:
            x, routing = block(x)
            if routing is not None:
                routings.append(routing)
        logits = self.ln_f(x) @ self.tok_emb.weight.t()  # [B, T, V]
        aux = sum((r.loss for r in routings), start=x.new_zeros(()))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
        return ModelOutput(logits=logits, aux_loss=aux, routings=routings, loss=loss)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
