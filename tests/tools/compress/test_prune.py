"""Pruning a BERT classifier: masks hold through training, structured pruning shrinks shapes and
keeps outputs when the removed parts are zero, bad input fails before anything changes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from agentos.errors import RecipeError
from agentos.kernels.sparsity import is_nm_sparse
from agentos.tools.compress.distill import distillation_loss
from agentos.tools.compress.prune import Pruner, PruneSpec, prunable_linears, prune_structured
from tests.tools.compress.conftest import tiny_bert


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_prunable_linears_are_the_encoder_linears_only() -> None:
    names = prunable_linears(tiny_bert(layers=1))
    assert sorted(n.split(".", 4)[-1] for n in names) == sorted(
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense"])


@pytest.mark.parametrize(("pattern", "method"), [("unstructured", "magnitude"), ("global", "magnitude"), ("2:4", "magnitude"),
                                                 ("unstructured", "wanda"), ("4:8", "wanda")])
def test_oneshot_masks_hit_the_target_and_zero_exactly_the_masked_weights(pattern: str, method: str) -> None:
    model = tiny_bert()
    pruner = Pruner.for_model(model, PruneSpec(method=method, pattern=pattern, sparsity=0.5))
    if method == "wanda":
        pruner.calibrate(model, [_inputs(0), _inputs(1)])
    pruner.start(0)
    for name, lin in pruner.linears.items():
        assert torch.equal(lin.weight != 0, pruner.masks[name]), name
        if ":" in pattern:
            n, m = map(int, pattern.split(":"))
            assert is_nm_sparse(lin.weight, n, m)
    total = sum(m.numel() for m in pruner.masks.values())
    assert sum(int((~m).sum()) for m in pruner.masks.values()) == total // 2


def test_pruned_weights_stay_zero_through_training() -> None:
    model = tiny_bert()
    pruner = Pruner.for_model(model, PruneSpec(sparsity=0.6))
    pruner.start(5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = {n: lin.weight.detach().clone() for n, lin in pruner.linears.items()}
    model.train()
    for step in range(5):
        out = model(**_inputs(step), labels=torch.tensor([0, 1, 1]))
        optimizer.zero_grad()
        out.loss.backward()
        pruner.after_backward(step)
        optimizer.step()
        pruner.apply()
    for name, lin in pruner.linears.items():
        assert (lin.weight[~pruner.masks[name]] == 0).all()
        assert not torch.equal(lin.weight, before[name])  # the kept weights did train


def test_cubic_schedule_and_rigl_keep_their_sparsity_during_training() -> None:
    for spec in (PruneSpec(sparsity=0.5, schedule="cubic", update_every=2), PruneSpec(pattern="rigl", sparsity=0.8, update_every=2)):
        model = tiny_bert()
        pruner = Pruner.for_model(model, spec)
        pruner.start(12)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        first_masks = None
        for step in range(12):
            pruner.before_step(step)
            out = model(**_inputs(step), labels=torch.tensor([0, 1, 1]))
            optimizer.zero_grad()
            out.loss.backward()
            pruner.after_backward(step)
            optimizer.step()
            pruner.apply()
            if first_masks is None and pruner.masks:
                first_masks = {n: m.clone() for n, m in pruner.masks.items()}
            if spec.pattern == "rigl":
                total = sum(m.numel() for m in pruner.masks.values())
                assert sum(int((~m).sum()) for m in pruner.masks.values()) == pytest.approx(0.8 * total, abs=len(pruner.masks))
        zeros = sum(int((lin.weight == 0).sum()) for lin in pruner.linears.values())
        total = sum(lin.weight.numel() for lin in pruner.linears.values())
        assert zeros / total == pytest.approx(spec.sparsity, abs=0.01)
        if spec.pattern == "rigl":  # masks moved
            assert any(not torch.equal(first_masks[n], pruner.masks[n]) for n in pruner.masks)


def test_movement_pruning_uses_training_signal() -> None:
    model = tiny_bert()
    pruner = Pruner.for_model(model, PruneSpec(method="movement", sparsity=0.5, schedule="cubic", update_every=3))
    pruner.start(9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(9):
        pruner.before_step(step)
        out = model(**_inputs(step), labels=torch.tensor([0, 1, 1]))
        optimizer.zero_grad()
        out.loss.backward()
        pruner.after_backward(step)
        optimizer.step()
        pruner.apply()
    assert pruner.movement and set(pruner.movement) == set(pruner.linears)
    magnitude_masks = {n: lin.weight.abs() for n, lin in pruner.linears.items()}
    assert any(not torch.equal(pruner.masks[n], magnitude_masks[n] >= magnitude_masks[n].median()) for n in pruner.masks)


def test_structured_pruning_shrinks_shapes_and_keeps_outputs_when_removed_parts_are_zero() -> None:
    model = tiny_bert(hidden=32, heads=4, intermediate=64)
    dh = 8
    keep_heads = [torch.tensor([True, False, True, True]), torch.tensor([False, True, True, False])]
    keep_neurons = [torch.arange(64) % 3 != 0, torch.arange(64) < 40]
    with torch.no_grad():  # make the removed parts contribute nothing
        for layer, kh, kn in zip(model.bert.encoder.layer, keep_heads, keep_neurons):
            cols = ~kh.repeat_interleave(dh)
            layer.attention.output.dense.weight[:, cols] = 0
            layer.intermediate.dense.weight[~kn] = 0
            layer.intermediate.dense.bias[~kn] = -10.0  # GELU(-10) ~ 0; the down column is zero anyway
            layer.output.dense.weight[:, ~kn] = 0
    original = _state(model)
    pruned, shape = prune_structured(model, 0.5, keep={"heads": keep_heads, "neurons": keep_neurons})
    assert shape == {"layer_heads": [3, 2], "layer_intermediate": [42, 40]}
    layer0 = pruned.bert.encoder.layer[0]
    assert layer0.attention.self.query.weight.shape == (24, 32) and layer0.attention.output.dense.weight.shape == (32, 24)
    assert layer0.intermediate.dense.weight.shape == (42, 32) and layer0.output.dense.weight.shape == (32, 42)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    inputs = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(pruned(**inputs).logits, model(**inputs).logits, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items()), "the original changed"


def test_structured_by_score_removes_the_fraction_per_layer() -> None:
    pruned, shape = prune_structured(tiny_bert(heads=4, intermediate=64), 0.3)
    assert shape == {"layer_heads": [3, 3], "layer_intermediate": [45, 45]}
    assert pruned.config.layer_heads == [3, 3]


def test_bad_input_fails_before_anything_changes() -> None:
    model = tiny_bert(hidden=36, heads=4, intermediate=60)  # 36 and 60 inputs: no 8-groups
    before = _state(model)
    with pytest.raises(RecipeError, match="pattern 4:8 groups 8 inputs"):
        Pruner.for_model(model, PruneSpec(pattern="4:8"))
    with pytest.raises(RecipeError, match=r"sparsity must be in \[0, 1\)"):
        Pruner.for_model(model, PruneSpec(sparsity=1.0))
    with pytest.raises(RecipeError, match=r"in \[0, 1\)"):
        prune_structured(model, -0.1)
    with pytest.raises(RecipeError, match="no BERT encoder layers"):
        prune_structured(nn.Sequential(nn.Linear(4, 4)), 0.5)
    with pytest.raises(RecipeError, match="no prunable nn.Linear"):
        Pruner.for_model(nn.Sequential(nn.Embedding(3, 4)), PruneSpec())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_distillation_loss_is_zero_for_identical_teacher_and_student_and_positive_otherwise() -> None:
    model = tiny_bert()
    inputs = _inputs()
    with torch.no_grad():
        a = model(**inputs, output_hidden_states=True)
        other = copy.deepcopy(model)
        other.bert.encoder.layer[0].output.dense.weight.normal_(0, 1)
        b = other(**inputs, output_hidden_states=True)
    same = distillation_loss(a.logits, a.logits, student_hidden=a.hidden_states[1:], teacher_hidden=a.hidden_states[1:],
                             attention_mask=inputs["attention_mask"])
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    differ = distillation_loss(b.logits, a.logits, student_hidden=b.hidden_states[1:], teacher_hidden=a.hidden_states[1:],
                               attention_mask=inputs["attention_mask"])
    assert float(differ) > 1e-3
    hidden_only = distillation_loss(a.logits, a.logits, student_hidden=b.hidden_states[1:], teacher_hidden=a.hidden_states[1:])
    assert float(hidden_only) > 0
