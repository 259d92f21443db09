"""Mixture-of-Experts kernels: routing, sort-based dispatch, expert parallelism.

Re-exports the public names of :mod:`.routing`, :mod:`.experts`, :mod:`.dispatch`,
:mod:`.layer` and :mod:`.parallel`.
"""

from __future__ import annotations

from agentos.kernels.moe.dispatch import (
    Permuted,
    grouped_ffn,
    moe_dispatch,
    moe_gather_loop,
    moe_reference,
    permute,
    unpermute_combine,
)
from agentos.kernels.moe.experts import Activation, Experts, ffn
from agentos.kernels.moe.layer import DispatchImpl, MoELayer
from agentos.kernels.moe.parallel import (
    AllToAll,
    ExpertParallelMoE,
    all_reduce_grads,
    all_to_all,
    exchange_counts,
)
from agentos.kernels.moe.routing import (
    Policy,
    Router,
    RouterConfig,
    Routing,
    RoutingStats,
    expert_capacity,
    expert_choice_route,
    load_balancing_loss,
    router_z_loss,
    top_k_route,
)

__all__ = [
    "Activation",
    "AllToAll",
    "DispatchImpl",
    "ExpertParallelMoE",
    "Experts",
    "MoELayer",
    "Permuted",
    "Policy",
    "Router",
    "RouterConfig",
    "Routing",
    "RoutingStats",
    "all_reduce_grads",
    "all_to_all",
    "exchange_counts",
    "expert_capacity",
    "expert_choice_route",
    "ffn",
    "grouped_ffn",
    "load_balancing_loss",
    "moe_dispatch",
    "moe_gather_loop",
    "moe_reference",
    "permute",
    "router_z_loss",
    "top_k_route",
    "unpermute_combine",
]
