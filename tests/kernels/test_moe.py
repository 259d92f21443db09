"""MoE kernels against float64 references on fresh seeded random inputs, forward and backward."""

from __future__ import annotations

import math

import pytest
import torch

from agentos.kernels.moe import (
    Experts,
    MoELayer,
    Router,
    RouterConfig,
    expert_capacity,
    ffn,
    load_balancing_loss,
    moe_dispatch,
    router_z_loss,
    top_k_route,
)

F64 = torch.float64


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in module.named_parameters()}


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_experts": 4, "top_k": 5}, "top_k=5 exceeds num_experts=4"),
        ({"num_experts": 0}, "num_experts must be"),
        ({"num_experts": 4, "top_k": 0}, "top_k must be"),
        ({"num_experts": 4, "capacity_factor": 0.0}, "capacity_factor must be"),
        ({"num_experts": 4, "capacity_factor": -1.0}, "capacity_factor must be"),
        ({"num_experts": 4, "capacity_factor": float("inf")}, "capacity_factor must be"),
        ({"num_experts": 4, "policy": "expert_choice", "capacity_factor": None}, "needs a capacity"),
        ({"num_experts": 4, "policy": "hash"}, "policy must be"),
        ({"num_experts": 4, "aux_loss_weight": -0.1}, "aux_loss_weight"),
    ],
)
def test_invalid_router_config_fails_at_construction(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        RouterConfig(**kwargs)


def test_router_init_std() -> None:
    torch.manual_seed(0)
    assert abs(float(Router(256, RouterConfig(8)).gate.weight.std()) - 256**-0.5) < 0.01
    small = Router(256, RouterConfig(8, init_std=1e-3))
    assert float(small.gate.weight.std()) < 2e-3
    probs = small(torch.randn(64, 256)).probs  # near-uniform routing at initialisation
    assert torch.allclose(probs, torch.full_like(probs, 1 / 8), atol=0.01)
    with pytest.raises(ValueError, match="init_std"):
        RouterConfig(8, init_std=-1.0)


def test_mismatched_bank_is_refused() -> None:
    torch.manual_seed(0)
    router = Router(8, RouterConfig(4))
    with pytest.raises(ValueError, match="same num_experts"):
        moe_dispatch(torch.randn(5, 8), router(torch.randn(5, 8)), Experts(3, 8, 16))
    with pytest.raises(ValueError, match="flatten"):
        router(torch.randn(2, 5, 8))


# --- equivalences with dense FFNs ----------------------------------------------------------------


def check_one_expert_equals_dense_ffn(
    gated: bool, device: torch.device | str = "cpu", d_model: int = 12, d_hidden: int = 24
) -> None:
    """A 1-expert MoE layer equals its expert as a dense FFN in float64 on ``device``: outputs
    and the gradients of the input and every expert weight (also used by the GPU tests)."""
    torch.manual_seed(1)
    layer = MoELayer(d_model, d_hidden, RouterConfig(1, capacity_factor=None), gated=gated,
                     dtype=F64, device=device)
    x = torch.randn(2, 9, d_model, dtype=F64, device=device, requires_grad=True)
    y, routing = layer(x)
    ex = layer.experts
    w_in = ex.w_in.detach()[0].clone().requires_grad_()
    w_out = ex.w_out.detach()[0].clone().requires_grad_()
    w_gate = ex.w_gate.detach()[0].clone().requires_grad_() if ex.w_gate is not None else None
    x2 = x.detach().clone().requires_grad_()
    y_dense = ffn(x2.reshape(-1, d_model), w_in, w_out, w_gate, ex.activation).reshape(x.shape)
    assert y.device == x.device and routing.dropped == 0
    torch.testing.assert_close(y, y_dense, rtol=1e-12, atol=1e-12)

    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_dense * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ex.w_in.grad[0], w_in.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ex.w_out.grad[0], w_out.grad, rtol=1e-12, atol=1e-12)
    if w_gate is not None:
        torch.testing.assert_close(ex.w_gate.grad[0], w_gate.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gated", [False, True])
def test_one_expert_equals_dense_ffn(gated: bool) -> None:
    check_one_expert_equals_dense_ffn(gated)


@pytest.mark.parametrize("num_experts", [2, 5])
def test_top_all_experts_equals_weighted_dense_mixture(num_experts: int) -> None:
    torch.manual_seed(2)
    cfg = RouterConfig(num_experts, top_k=num_experts, capacity_factor=None)
    layer = MoELayer(10, 20, cfg, dtype=F64)
    x = torch.randn(31, 10, dtype=F64)
    y, routing = layer(x)
    assert routing.dropped == 0 and routing.weight.numel() == 31 * num_experts

    probs = torch.softmax(x @ layer.router.gate.weight.t(), dim=-1)  # [N, E]
    y_ref = sum(probs[:, e : e + 1] * layer.experts.expert(e, x) for e in range(num_experts))
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)

    g = torch.randn_like(y)
    (y * g).sum().backward()
    got = _grads(layer)
    layer.zero_grad()
    (y_ref * g).sum().backward()
    want = _grads(layer)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-12, msg=name)


# --- auxiliary losses -----------------------------------------------------------------------------


@pytest.mark.parametrize("num_experts", [2, 8, 16])
def test_load_balancing_loss_known_values(num_experts: int) -> None:
    N = 4 * num_experts
    uniform_p = torch.full((N, num_experts), 1.0 / num_experts, dtype=F64)
    balanced = torch.arange(N) % num_experts
    assert load_balancing_loss(uniform_p, balanced, num_experts).item() == pytest.approx(1.0)

    collapsed_p = torch.zeros(N, num_experts, dtype=F64)
    collapsed_p[:, 0] = 1.0
    collapsed = torch.zeros(N, dtype=torch.long)
    assert load_balancing_loss(collapsed_p, collapsed, num_experts).item() == pytest.approx(
        num_experts
    )

    # Through the router: zero gate weights give uniform probabilities; the weight is applied.
    cfg = RouterConfig(num_experts, capacity_factor=None, aux_loss_weight=0.05, z_loss_weight=0.0)
    logits = torch.zeros(N, num_experts, dtype=F64)
    routing = top_k_route(logits, cfg)
    f = torch.bincount(routing.expert_index, minlength=num_experts).double() / N
    expected = 0.05 * num_experts * (f / num_experts).sum()  # = 0.05 * 1
    assert routing.aux_loss.item() == pytest.approx(expected.item())
    assert routing.aux_loss.item() == pytest.approx(0.05)
    big = torch.zeros(N, num_experts, dtype=F64)
    big[:, 0] = 1e4
    assert top_k_route(big, cfg).aux_loss.item() == pytest.approx(0.05 * num_experts)


def test_default_aux_weight_and_z_loss_value() -> None:
    torch.manual_seed(3)
    assert RouterConfig(4).aux_loss_weight == 0.01
    logits = torch.randn(17, 4, dtype=F64)
    manual = torch.logsumexp(logits, -1).pow(2).mean()
    torch.testing.assert_close(router_z_loss(logits), manual)
    routing = top_k_route(logits, RouterConfig(4, z_loss_weight=0.1))
    torch.testing.assert_close(routing.z_loss, 0.1 * manual)


# --- capacity and dropping ------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("capacity_factor", [0.5, 1.0, 1.25, 2.0])
def test_dropped_tokens_match_capacity_formula(top_k: int, capacity_factor: float) -> None:
    torch.manual_seed(4)
    N, E = 97, 6
    logits = torch.randn(N, E, dtype=F64) + torch.linspace(0, 2, E, dtype=F64)  # skewed
    routing = top_k_route(logits, RouterConfig(E, top_k, capacity_factor))
    C = math.ceil(capacity_factor * N * top_k / E)
    assert routing.capacity == C == expert_capacity(N, E, top_k, capacity_factor)

    chosen = logits.topk(top_k, dim=-1).indices  # [N, K]
    requested = torch.bincount(chosen.reshape(-1), minlength=E)
    kept = routing.tokens_per_expert()
    torch.testing.assert_close(kept, requested.clamp(max=C))
    assert routing.dropped == int((requested - C).clamp(min=0).sum())
    assert routing.stats().drop_rate == pytest.approx(routing.dropped / (N * top_k))

    # Priority: first choices before second choices, earlier tokens first.
    priority = [(k, n, int(chosen[n, k])) for k in range(top_k) for n in range(N)]
    filled = [0] * E
    expect_kept = set()
    for k, n, e in priority:
        if filled[e] < C:
            filled[e] += 1
            expect_kept.add((n, e))
    got = set(zip(routing.token_index.tolist(), routing.expert_index.tolist(), strict=True))
    assert got == expect_kept


def test_expert_choice_fills_every_expert() -> None:
    torch.manual_seed(5)
    N, E = 40, 4
    router = Router(8, RouterConfig(E, top_k=1, policy="expert_choice", capacity_factor=1.0))
    routing = router(torch.randn(N, 8))
    assert routing.tokens_per_expert().tolist() == [10] * E
    chosen = torch.zeros(N, dtype=torch.bool)
    chosen[routing.token_index] = True
    assert routing.dropped == int((~chosen).sum())
    assert routing.stats().normalized_entropy == pytest.approx(1.0)


def test_noisy_gating_only_in_training() -> None:
    torch.manual_seed(6)
    router = Router(8, RouterConfig(4, noisy=True))
    x = torch.randn(64, 8)
    router.eval()
    torch.testing.assert_close(router.logits(x), router.logits(x))
    router.train()
    a, b = router.logits(x), router.logits(x)
    assert not torch.allclose(a, b)
    router(x).weight.sum().backward()
    assert router.noise is not None and router.noise.weight.grad is not None
    assert router.noise.weight.grad.abs().sum() > 0


# --- sort-based dispatch against the reference loop ------------------------------------------------


@pytest.mark.parametrize(("num_experts", "top_k"), [(1, 1), (4, 1), (4, 2), (8, 1), (8, 2)])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("policy", ["top_k", "expert_choice"])
def test_sort_dispatch_matches_reference(
    num_experts: int, top_k: int, gated: bool, policy: str
) -> None:
    torch.manual_seed(7 + num_experts * 10 + top_k)
    cfg = RouterConfig(num_experts, top_k, capacity_factor=1.0, policy=policy)  # type: ignore[arg-type]
    layer = MoELayer(16, 24, cfg, gated=gated, activation="silu" if gated else "gelu", dtype=F64)
    check_dispatch_impls_agree(layer, torch.randn(3, 23, 16, dtype=F64))


def check_dispatch_impls_agree(layer: MoELayer, x: torch.Tensor) -> None:
    """sort, gather_loop and the masked reference give the same outputs and gradients (input,
    experts, router) in float64, all on ``x``'s device (also used by the GPU tests)."""
    g = torch.randn_like(x)
    results = {}
    for impl in ("sort", "reference", "gather_loop"):
        layer.impl = impl  # type: ignore[assignment]
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        y, routing = layer(xi)
        assert y.device == x.device and routing.token_index.device == x.device
        ((y * g).sum() + routing.loss).backward()
        results[impl] = (y.detach(), xi.grad, _grads(layer))
    y0, gx0, gp0 = results["reference"]
    for impl in ("sort", "gather_loop"):
        y1, gx1, gp1 = results[impl]
        torch.testing.assert_close(y1, y0, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gx1, gx0, rtol=1e-10, atol=1e-12)
        for name in gp0:
            torch.testing.assert_close(gp1[name], gp0[name], rtol=1e-10, atol=1e-12, msg=name)
    assert gp0["router.gate.weight"].abs().sum() > 0


def test_empty_input_and_stats() -> None:
    torch.manual_seed(8)
    layer = MoELayer(8, 16, RouterConfig(4, 2))
    y, routing = layer(torch.randn(0, 8))
    assert y.shape == (0, 8)
    assert routing.aux_loss.item() == 0.0 and routing.stats().drop_rate == 0.0
    _, routing = layer(torch.randn(400, 8))
    s = routing.stats()
    assert sum(s.tokens_per_expert) == 800 - routing.dropped
    assert 0 < s.usage_entropy <= math.log(4) + 1e-9
    assert set(s.as_dict()) >= {"tokens_per_expert", "drop_rate", "usage_entropy"}


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_moe_dispatch_is_free_of_per_token_python_loops(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the grouped matmul on, float32 runs all experts in one grouped matmul per weight;
    float64 (no grouped kernel) loops once per non-empty expert. Neither loops per token."""
    import agentos.kernels.moe.dispatch as dispatch

    monkeypatch.setattr(dispatch, "GROUPED_MM_ON_CPU", True)
    torch.manual_seed(9)
    calls = {"ffn": 0, "grouped_mm": 0}
    real_ffn, real_gmm = dispatch.ffn, torch._grouped_mm

    def counting_ffn(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["ffn"] += 1
        return real_ffn(*args, **kwargs)

    def counting_gmm(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["grouped_mm"] += 1
        return real_gmm(*args, **kwargs)

    monkeypatch.setattr(dispatch, "ffn", counting_ffn)
    monkeypatch.setattr(torch, "_grouped_mm", counting_gmm)
    bank = Experts(4, 8, 16, dtype=dtype)
    routing = Router(8, RouterConfig(4, 2, None), dtype=dtype)(torch.randn(500, 8, dtype=dtype))
    moe_dispatch(torch.randn(500, 8, dtype=dtype), routing, bank)
    assert calls == ({"ffn": 0, "grouped_mm": 2} if dtype == torch.float32
                     else {"ffn": 4, "grouped_mm": 0})


@pytest.mark.parametrize(("d_model", "d_hidden", "grouped"),
                         [(16, 32, True), (5, 7, True), (16, 32, False)])  # (5, 7): loop fallback
@pytest.mark.parametrize("gated", [False, True])
def test_grouped_ffn_float32_matches_float64_loop(
    d_model: int, d_hidden: int, grouped: bool, gated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grouped-matmul path and the expert loop in float32 equal the float64 loop, with
    experts that get no rows, forward and backward, counts as ints or a tensor."""
    import agentos.kernels.moe.dispatch as dispatch
    from agentos.kernels.moe import grouped_ffn

    monkeypatch.setattr(dispatch, "GROUPED_MM_ON_CPU", grouped)
    torch.manual_seed(10 + d_model + gated)
    bank = Experts(5, d_model, d_hidden, gated=gated, activation="silu")
    bank64 = Experts(5, d_model, d_hidden, gated=gated, activation="silu", dtype=F64)
    bank64.load_state_dict({k: v.double() for k, v in bank.state_dict().items()})
    counts = [7, 0, 12, 0, 4]
    x = torch.randn(sum(counts), d_model, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    grouped_ffn(x, counts, bank).sum().backward()  # a broadcast output gradient is accepted
    assert x.grad is not None and x.grad.abs().sum() > 0
    y = grouped_ffn(x, torch.tensor(counts), bank)
    y64 = grouped_ffn(x64, counts, bank64)
    g = torch.randn_like(y64)
    grads = torch.autograd.grad(y, [x, *bank.parameters()], g.float())
    grads64 = torch.autograd.grad(y64, [x64, *bank64.parameters()], g)
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, grads64):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)
    assert grads[1][1].abs().sum() == 0 and grads[1][3].abs().sum() == 0  # idle experts
    with pytest.raises(ValueError, match="must sum to"):
        grouped_ffn(x, [7, 0, 12, 0, 5], bank)


# --- auxiliary-loss-free (bias) load balancing -------------------------------------------------


def test_bias_balancing_is_opt_in_and_validated() -> None:
    assert RouterConfig(8).bias_update_rate == 0.0
    assert Router(16, RouterConfig(8)).expert_bias is None
    assert "expert_bias" not in Router(16, RouterConfig(8)).state_dict()
    with pytest.raises(ValueError, match="bias_update_rate"):
        RouterConfig(8, bias_update_rate=-1e-3)
    with pytest.raises(ValueError, match="bias_update_rate"):
        RouterConfig(8, policy="expert_choice", bias_update_rate=1e-3)


def test_bias_moves_load_toward_balance_and_leaves_weights_unbiased() -> None:
    torch.manual_seed(0)
    E, N = 4, 512
    router = Router(8, RouterConfig(E, top_k=1, capacity_factor=None, bias_update_rate=0.05))
    x = torch.randn(N, 8)
    with torch.no_grad():  # skewed logits: expert 0 gets most tokens
        router.gate.weight.mul_(0.1)
    skew = torch.tensor([1.0, 0.0, -0.5, -1.0])
    router.logits = lambda t: router.gate(t) + skew  # type: ignore[method-assign]

    def loads() -> torch.Tensor:
        return router(x).tokens_per_expert().to(torch.float64)

    before = loads()
    router.update_bias()  # consumes the load of the forward above
    for _ in range(60):
        router(x)
        router.update_bias()
    after = loads()
    assert before.max() / N > 0.6  # skewed to start with
    assert after.std() < 0.5 * before.std() and after.max() / N < 0.4
    assert float(router.expert_bias[0]) < 0 < float(router.expert_bias[3])
    # Combine weights are the unbiased probabilities of the chosen experts.
    r = router(x)
    assert torch.allclose(r.weight, r.probs[r.token_index, r.expert_index])
    assert not router.expert_bias.requires_grad
    # The bias is a checkpointed buffer, adopted even by a router built without the option.
    fresh = Router(8, RouterConfig(E, top_k=1, capacity_factor=None))
    fresh.load_state_dict(router.state_dict())
    assert torch.equal(fresh.expert_bias, router.expert_bias)
