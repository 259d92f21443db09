"""Routers for Mixture-of-Experts layers: who goes to which expert, with what weight.

Two policies:

* ``"top_k"`` — each token picks its ``k`` highest-scoring experts (k=1 is Switch Transformer,
  k=2 is GShard). With a capacity factor, each expert accepts at most
  ``C = ceil(capacity_factor * N * k / E)`` assignments; the rest are *dropped* (the token skips
  that expert; the residual stream carries it). Priority is GShard's: every token's first choice
  before any token's second choice, earlier tokens before later ones. ``capacity_factor=None``
  is the no-drop mode.
* ``"expert_choice"`` — each expert picks its ``C`` highest-scoring tokens (Zhou et al., 2022).
  Perfect load balance by construction; a token may get zero or several experts.

The router's output, :class:`Routing`, is a flat list of *kept assignments*
``(token, expert, weight)``; the dispatch kernels in :mod:`agentos.kernels.moe.dispatch` consume it.

Auxiliary losses: the Switch load-balancing loss ``E * sum_e f_e * P_e`` (``f_e`` the fraction of
assignments routed to ``e`` before dropping, ``P_e`` the mean router probability of ``e``; equals
1 under uniform routing and ``E`` under collapsed routing) and the ST-MoE router z-loss
``mean(logsumexp(logits)^2)``.

Legend of dimension letters used in shape comments:
    N  tokens (flattened batch x sequence)
    D  model width
    E  experts
    K  experts per token (top_k)
    C  expert capacity (assignments an expert accepts)
    A  kept assignments (<= N*K for top-k, E*C for expert choice)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Policy",
    "Router",
    "RouterConfig",
    "Routing",
    "RoutingStats",
    "expert_capacity",
    "expert_choice_route",
    "load_balancing_loss",
    "router_z_loss",
    "top_k_route",
]

Policy = Literal["top_k", "expert_choice"]


@dataclass(frozen=True)
class RouterConfig:
    """How tokens are routed to experts. Validated when built.

    Attributes:
        num_experts: E, the number of experts (>= 1).
        top_k: experts per token (1 = Switch, 2 = GShard). For ``expert_choice`` it sets the
            average number of experts per token used in the capacity formula.
        capacity_factor: slack over a perfectly balanced load; ``None`` means no capacity limit
            (no token is ever dropped). Required (not ``None``) for ``expert_choice``.
        policy: ``"top_k"`` or ``"expert_choice"``.
        noisy: add learned Gaussian noise to the logits while training (Shazeer et al., 2017).
        normalize_weights: renormalise the k chosen probabilities to sum to 1. ``None`` picks
            the usual default: off for k=1 (Switch scales by the raw probability), on for k>1.
        aux_loss_weight: weight of the load-balancing loss in :attr:`Routing.loss`.
        z_loss_weight: weight of the router z-loss in :attr:`Routing.loss`.
        init_std: standard deviation of the gate's initial weights; ``None`` uses
            ``d_model ** -0.5``. A small value (e.g. 1e-3) starts training from near-uniform,
            balanced routing, which keeps early capacity drops low.
        bias_update_rate: auxiliary-loss-free load balancing (DeepSeek-V3): ``u > 0`` keeps a
            per-expert bias (a non-gradient buffer, saved with the state dict) that is added to
            the logits for the top-k *selection* only, never to the combine weights; after each
            optimizer step :meth:`Router.update_bias` does
            ``bias += u * sign(mean_load - load_e)``. ``0.0`` (default) turns it off. Top-k only.

    Raises:
        ValueError: on any invalid combination; the message says which value to change.
    """

    num_experts: int
    top_k: int = 1
    capacity_factor: float | None = 1.25
    policy: Policy = "top_k"
    noisy: bool = False
    normalize_weights: bool | None = None
    aux_loss_weight: float = 0.01
    z_loss_weight: float = 0.001
    init_std: float | None = None
    bias_update_rate: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.num_experts, int) or self.num_experts < 1:
            raise ValueError(f"num_experts must be an int >= 1, got {self.num_experts!r}")
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {self.top_k!r}")
        if self.top_k > self.num_experts:
            raise ValueError(
                f"top_k={self.top_k} exceeds num_experts={self.num_experts}: "
                f"use top_k <= {self.num_experts} or add experts"
            )
        if self.policy not in ("top_k", "expert_choice"):
            raise ValueError(f"policy must be 'top_k' or 'expert_choice', got {self.policy!r}")
        if self.capacity_factor is not None and not (
            math.isfinite(self.capacity_factor) and self.capacity_factor > 0
        ):
            raise ValueError(
                f"capacity_factor must be a finite number > 0 (e.g. 1.25), or None for no "
                f"token dropping; got {self.capacity_factor!r}"
            )
        if self.policy == "expert_choice" and self.capacity_factor is None:
            raise ValueError(
                "expert_choice routing needs a capacity: set capacity_factor (e.g. 1.0), "
                "or use policy='top_k' for the no-drop mode"
            )
        for name in ("aux_loss_weight", "z_loss_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.bias_update_rate) and self.bias_update_rate >= 0):
            raise ValueError(
                f"bias_update_rate must be a finite number >= 0 (e.g. 1e-3; 0 turns it off), "
                f"got {self.bias_update_rate!r}"
            )
        if self.bias_update_rate > 0 and self.policy != "top_k":
            raise ValueError(
                "bias_update_rate (bias load balancing) needs policy='top_k'; expert_choice is "
                "balanced by construction: set bias_update_rate=0"
            )
        if self.init_std is not None and not (math.isfinite(self.init_std) and self.init_std >= 0):
            raise ValueError(f"init_std must be a finite number >= 0 or None, got {self.init_std!r}")

    @property
    def renormalize(self) -> bool:
        """Whether the chosen probabilities are renormalised to sum to 1 per token."""
        return self.top_k > 1 if self.normalize_weights is None else self.normalize_weights


def expert_capacity(
    num_tokens: int, num_experts: int, top_k: int, capacity_factor: float | None
) -> int | None:
    """Assignments one expert accepts: ``ceil(capacity_factor * N * k / E)``, or ``None``.

    ``None`` (no limit) when ``capacity_factor`` is ``None``.
    """
    if capacity_factor is None:
        return None
    return int(math.ceil(capacity_factor * num_tokens * top_k / num_experts))


@dataclass(frozen=True)
class RoutingStats:
    """Health of one routing decision (plain Python numbers, for logs and tables)."""

    tokens_per_expert: list[int]
    drop_rate: float
    """Fraction of requested assignments that were dropped (top-k), or fraction of tokens that
    no expert picked (expert choice)."""
    usage_entropy: float
    """Entropy (nats) of the distribution of kept assignments over experts; ``log E`` is
    perfectly balanced."""
    max_entropy: float
    """``log E``."""
    aux_loss: float
    z_loss: float

    @property
    def normalized_entropy(self) -> float:
        """``usage_entropy / log E`` in [0, 1] (1.0 when E == 1)."""
        return 1.0 if self.max_entropy == 0 else self.usage_entropy / self.max_entropy

    def as_dict(self) -> dict[str, object]:
        return {
            "tokens_per_expert": self.tokens_per_expert,
            "drop_rate": self.drop_rate,
            "usage_entropy": self.usage_entropy,
            "normalized_entropy": self.normalized_entropy,
            "aux_loss": self.aux_loss,
            "z_loss": self.z_loss,
        }


@dataclass
class Routing:
    """The routing of N tokens to E experts, as flat kept assignments.

    ``token_index``, ``expert_index`` and ``weight`` are aligned, one entry per kept assignment.
    ``weight`` is differentiable with respect to the router parameters.
    """

    token_index: Tensor  # [A] int64
    expert_index: Tensor  # [A] int64
    weight: Tensor  # [A] float, the combine weight
    probs: Tensor  # [N, E] router probabilities
    num_tokens: int
    num_experts: int
    capacity: int | None
    num_requested: int
    """Assignments before dropping (N*K for top-k; for expert choice, N — see ``dropped``)."""
    dropped: int
    """Dropped assignments (top-k) or tokens no expert picked (expert choice)."""
    aux_loss: Tensor  # [] weighted load-balancing loss
    z_loss: Tensor  # [] weighted router z-loss
    requested_per_expert: Tensor | None = None
    """``[E]`` int64 assignments per expert *before* capacity dropping (top-k only)."""

    @property
    def loss(self) -> Tensor:
        """The auxiliary loss to add to the task loss (weighted balance + weighted z-loss)."""
        return self.aux_loss + self.z_loss

    def tokens_per_expert(self) -> Tensor:
        """Kept assignments per expert. Returns ``[E]`` int64."""
        return torch.bincount(self.expert_index, minlength=self.num_experts)

    def stats(self) -> RoutingStats:
        """Summarise this routing (synchronises with the device once)."""
        counts = self.tokens_per_expert().to(torch.float64)  # [E]
        total = float(counts.sum())
        if total > 0:
            p = counts / total
            entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        else:
            entropy = 0.0
        return RoutingStats(
            tokens_per_expert=[int(c) for c in counts.tolist()],
            drop_rate=self.dropped / self.num_requested if self.num_requested else 0.0,
            usage_entropy=entropy,
            max_entropy=math.log(self.num_experts),
            aux_loss=float(self.aux_loss.detach()),
            z_loss=float(self.z_loss.detach()),
        )


def _softmax(logits: Tensor) -> Tensor:
    """Softmax over experts in at least float32 (float64 stays float64)."""
    return logits.softmax(dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


def load_balancing_loss(probs: Tensor, expert_index: Tensor, num_experts: int) -> Tensor:
    """Switch Transformer balance loss ``E * sum_e f_e * P_e`` (unweighted).

    Args:
        probs: ``[N, E]`` router probabilities.
        expert_index: ``[N, K]`` (or ``[N*K]``) chosen experts *before* capacity dropping.
        num_experts: E.

    Returns:
        A scalar: 1.0 for perfectly uniform routing, E when every token goes to one expert with
        probability 1. Zero when there are no tokens. Differentiable through ``probs`` only.
    """
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    counts = torch.bincount(expert_index.reshape(-1), minlength=num_experts)  # [E]
    f = counts.to(probs.dtype) / expert_index.numel()  # [E] fraction of assignments
    p_mean = probs.mean(dim=0)  # [E] mean router probability
    return num_experts * (f * p_mean).sum()


def router_z_loss(logits: Tensor) -> Tensor:
    """ST-MoE router z-loss ``mean_n logsumexp(logits_n)^2`` (unweighted); 0 for no tokens."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return torch.logsumexp(logits, dim=-1).square().mean()


def top_k_route(
    logits: Tensor, config: RouterConfig, selection_bias: Tensor | None = None
) -> Routing:
    """Top-k routing with optional capacity dropping (see the module docstring).

    Args:
        logits: ``[N, E]`` router logits (already noised, if noisy gating is on).
        config: the router configuration; ``config.policy`` is ignored here.
        selection_bias: optional ``[E]`` bias added to the logits to *choose* the experts only;
            the combine weights stay the unbiased router probabilities (DeepSeek-V3).

    Returns:
        The kept assignments, ordered by (choice rank, token).
    """
    N, E = logits.shape
    K = config.top_k
    probs = _softmax(logits)  # [N, E]
    if selection_bias is None:
        top_p, top_e = probs.topk(K, dim=-1)  # [N, K], [N, K]
    else:
        scores = logits.detach() + selection_bias.to(logits.dtype)  # [N, E]
        top_e = scores.topk(K, dim=-1).indices  # [N, K]
        top_p = probs.gather(1, top_e)  # [N, K] unbiased weights
    if config.renormalize:
        top_p = top_p / top_p.sum(dim=-1, keepdim=True)

    # Flatten choice-rank-major: all first choices (tokens in order), then all second choices.
    flat_e = top_e.t().reshape(-1)  # [K*N]
    flat_p = top_p.t().reshape(-1)  # [K*N]
    flat_t = torch.arange(N, device=logits.device).repeat(K)  # [K*N]

    capacity = expert_capacity(N, E, K, config.capacity_factor)
    if capacity is None:
        keep = torch.ones_like(flat_e, dtype=torch.bool)  # [K*N]
    else:
        # Position of each assignment in its expert's queue, in priority order.
        order = torch.argsort(flat_e, stable=True)  # [K*N]
        counts = torch.bincount(flat_e, minlength=E)  # [E]
        starts = torch.cumsum(counts, 0) - counts  # [E]
        pos_sorted = torch.arange(flat_e.numel(), device=logits.device) - starts[flat_e[order]]
        position = torch.empty_like(pos_sorted).scatter_(0, order, pos_sorted)  # [K*N]
        keep = position < capacity  # [K*N]

    aux = load_balancing_loss(probs, top_e, E) * config.aux_loss_weight
    z = router_z_loss(logits) * config.z_loss_weight
    kept = int(keep.sum())
    return Routing(
        token_index=flat_t[keep],
        expert_index=flat_e[keep],
        weight=flat_p[keep],
        probs=probs,
        num_tokens=N,
        num_experts=E,
        capacity=capacity,
        num_requested=N * K,
        dropped=N * K - kept,
        aux_loss=aux,
        z_loss=z,
        requested_per_expert=torch.bincount(top_e.reshape(-1), minlength=E),
    )


def expert_choice_route(logits: Tensor, config: RouterConfig) -> Routing:
    """Expert-choice routing: each expert takes its ``C`` highest-probability tokens.

    ``C = min(N, ceil(capacity_factor * N * top_k / E))``. The load-balancing loss is zero
    (balance holds by construction); the z-loss applies.

    Args:
        logits: ``[N, E]`` router logits.
        config: the router configuration (``capacity_factor`` must be set).

    Returns:
        The assignments, ordered by expert; ``dropped`` counts tokens that no expert chose.
    """
    N, E = logits.shape
    capacity = expert_capacity(N, E, config.top_k, config.capacity_factor)
    assert capacity is not None  # guaranteed by RouterConfig validation
    C = min(N, capacity)
    probs = _softmax(logits)  # [N, E]
    weight, token = probs.t().topk(C, dim=-1)  # [E, C], [E, C]
    expert = torch.arange(E, device=logits.device)[:, None].expand(E, C)  # [E, C]
    chosen = torch.zeros(N, dtype=torch.bool, device=logits.device)
    chosen[token.reshape(-1)] = True
    return Routing(
        token_index=token.reshape(-1),
        expert_index=expert.reshape(-1),
        weight=weight.reshape(-1),
        probs=probs,
        num_tokens=N,
        num_experts=E,
        capacity=C,
        num_requested=N,
        dropped=N - int(chosen.sum()),
        aux_loss=logits.sum() * 0.0,
        z_loss=router_z_loss(logits) * config.z_loss_weight,
    )


class Router(nn.Module):
    """A linear gate ``[D] -> [E]`` followed by the configured routing policy.

    With ``config.noisy``, training-mode logits get ``randn * softplus(x @ W_noise)`` added
    (Shazeer et al., 2017); evaluation is deterministic.
    """

    def __init__(
        self,
        d_model: int,
        config: RouterConfig,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Raises: ValueError: ``d_model < 1``."""
        super().__init__()
        if d_model < 1:
            raise ValueError(f"d_model must be >= 1, got {d_model}")
        self.config = config
        self.gate = nn.Linear(d_model, config.num_experts, bias=False, dtype=dtype, device=device)
        std = d_model**-0.5 if config.init_std is None else config.init_std
        nn.init.normal_(self.gate.weight, std=std)
        self.noise: nn.Linear | None = None
        if config.noisy:
            self.noise = nn.Linear(
                d_model, config.num_experts, bias=False, dtype=dtype, device=device
            )
            nn.init.zeros_(self.noise.weight)
        self.expert_bias: Tensor | None
        if config.bias_update_rate > 0:
            # Selection-only bias (no gradient); a buffer, so checkpoints carry it.
            self.register_buffer(
                "expert_bias", torch.zeros(config.num_experts, dtype=torch.float32, device=device)
            )
            self.register_buffer(
                "_load", torch.zeros(config.num_experts, dtype=torch.float32, device=device),
                persistent=False,
            )
        else:
            self.expert_bias = None

    def _enable_bias_buffers(self) -> None:
        device = self.gate.weight.device
        self.expert_bias = None
        del self.expert_bias
        self.register_buffer("expert_bias", torch.zeros(self.config.num_experts, device=device))
        self.register_buffer("_load", torch.zeros(self.config.num_experts, device=device),
                             persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # A checkpoint trained with bias balancing carries ``expert_bias``: adopt it even when
        # this router was built without the option, so inference selects experts as trained.
        if self.expert_bias is None and prefix + "expert_bias" in state_dict:
            self._enable_bias_buffers()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def update_bias(self) -> None:
        """Apply ``bias += u * sign(mean_load - load_e)`` with the per-expert loads (before
        capacity dropping) accumulated by training-mode forwards since the last call, then reset
        them. A no-op when bias balancing is off or no training forward ran."""
        if self.expert_bias is None or float(self._load.sum()) == 0:
            return
        load = self._load
        self.expert_bias.add_(self.config.bias_update_rate * torch.sign(load.mean() - load))
        load.zero_()

    def logits(self, x: Tensor) -> Tensor:
        """Router logits for ``x: [N, D]``; noisy in training mode. Returns ``[N, E]``."""
        logits = self.gate(x)  # [N, E]
        if self.noise is not None and self.training:
            logits = logits + torch.randn_like(logits) * F.softplus(self.noise(x))
        return logits

    def forward(self, x: Tensor) -> Routing:
        """Route ``x: [N, D]``.

        Raises:
            ValueError: ``x`` is not 2-D with last dimension ``d_model``.
        """
        if x.dim() != 2 or x.shape[1] != self.gate.in_features:
            raise ValueError(
                f"Router expects [N, {self.gate.in_features}] tokens, got {tuple(x.shape)}; "
                "flatten batch and sequence first"
            )
        logits = self.logits(x)
        if self.config.policy == "expert_choice":
            return expert_choice_route(logits, self.config)
        routing = top_k_route(logits, self.config, self.expert_bias)
        if self.expert_bias is not None and self.training:
            with torch.no_grad():
                # Load before dropping: all chosen experts (kept + dropped) of these tokens.
                assert routing.requested_per_expert is not None
                self._load += routing.requested_per_expert.to(self._load.dtype)
        return routing
