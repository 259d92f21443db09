"""Pruning a transformer: masks over its linear layers, and physical removal of heads and neurons.

:class:`Pruner` owns the masks of the prunable linears (every ``nn.Linear`` inside the encoder
layers: attention query/key/value/output and both FFN linears; embeddings, pooler and classifier
stay dense). It builds masks from scores (:mod:`agentos.kernels.sparsity`), keeps pruned weights
at zero through training (:meth:`Pruner.apply` after every optimizer step, gradients masked
before it), follows a cubic schedule, accumulates movement scores, and runs RigL updates.

:func:`prune_structured` removes the lowest-scoring heads and FFN neurons from the module shapes of
a BERT model (a copy), so the model really is smaller and faster.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from agentos.errors import RecipeError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "Method",
    "PruneSpec",
    "Pruner",
    "bert_layers",
    "collect_input_norms",
    "parse_pattern",
    "prunable_linears",
    "prune_structured",
]

Method = Literal["magnitude", "wanda", "movement"]
_SKIP = ("embeddings", "pooler", "classifier", "lm_head")


def parse_pattern(pattern: str) -> tuple[str, int, int]:
    """``"unstructured"`` / ``"global"`` / ``"N:M"`` / ``"structured"`` / ``"rigl"`` -> (kind, n, m).

    Raises:
        RecipeError: an unknown pattern or an N:M that is not ``0 < N < M``.
    """
    if pattern in ("unstructured", "global", "structured", "rigl"):
        return pattern, 0, 0
    n_text, sep, m_text = pattern.partition(":")
    if sep and n_text.isdigit() and m_text.isdigit() and 0 < int(n_text) < int(m_text):
        return "nm", int(n_text), int(m_text)
    raise RecipeError(f"prune.pattern {pattern!r} is not one of unstructured, global, structured, rigl or N:M "
                      "with 0 < N < M (e.g. 2:4, 4:8)")


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` whose name has no embeddings/pooler/classifier/lm_head part, by name.

    Raises:
        RecipeError: the model has none.
    """
    from torch import nn

    found = {name: m for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and not any(part in _SKIP for part in name.split("."))}
    if not found:
        raise RecipeError(f"{type(model).__name__} has no prunable nn.Linear layers (outside {', '.join(_SKIP)})")
    return found


def bert_layers(model: nn.Module) -> list[nn.Module]:
    """The ``BertLayer`` list of a BERT model (``model.bert.encoder.layer`` or ``model.encoder.layer``).

    Raises:
        RecipeError: the model has no BERT encoder layers.
    """
    base = getattr(model, "bert", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not all(hasattr(layer, "attention") and hasattr(layer, "intermediate") for layer in layers):
        raise RecipeError(f"{type(model).__name__} has no BERT encoder layers (bert.encoder.layer[i].attention / "
                          ".intermediate / .output): structured pruning supports BERT models only")
    return list(layers)


def collect_input_norms(model: nn.Module, batches: list[dict[str, torch.Tensor]], names: list[str]) -> dict[str, torch.Tensor]:
    """Per-input-feature L2 norms of each named linear's inputs over calibration batches (Wanda)."""
    import torch

    modules = dict(model.named_modules())
    squares: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)  # [N, I]
            squares[name] = squares.get(name, 0) + x.pow(2).sum(dim=0)  # type: ignore[assignment]
        handles.append(modules[name].register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: squares[name].sqrt() for name in names}


@dataclass
class PruneSpec:
    """What to prune: method (scores), pattern, target sparsity, schedule.

    Attributes:
        method: ``magnitude``, ``wanda`` (needs calibration batches) or ``movement`` (needs
            training: scores accumulate during recovery).
        pattern: ``unstructured`` (per layer), ``global`` (one threshold), ``N:M``, ``rigl``
            (unstructured at a fixed sparsity, masks updated by prune-and-regrow) or ``structured``.
        sparsity: target fraction of zeros in the prunable linears, in ``[0, 1)`` (for
            ``structured``: the fraction of heads and of FFN neurons removed per layer).
        schedule: ``oneshot`` (prune once before recovery) or ``cubic`` (from 0 to ``sparsity``
            over the first ``schedule_fraction`` of the recovery steps, masks every
            ``update_every`` steps).
    """

    method: Method = "magnitude"
    pattern: str = "unstructured"
    sparsity: float = 0.5
    schedule: Literal["oneshot", "cubic"] = "oneshot"
    schedule_fraction: float = 0.75
    update_every: int = 10
    rigl_initial_fraction: float = 0.3

    def validate(self) -> None:
        """Raise :class:`RecipeError` for a bad field (before any model is touched)."""
        from agentos.kernels.sparsity import check_sparsity

        try:
            check_sparsity(self.sparsity)
        except ValueError as error:
            raise RecipeError(f"prune.sparsity: {error}") from None
        kind, n, m = parse_pattern(self.pattern)
        if self.method not in ("magnitude", "wanda", "movement"):
            raise RecipeError(f"prune.method {self.method!r} is not magnitude, wanda or movement")
        if kind == "nm" and self.schedule != "oneshot":
            raise RecipeError("an N:M pattern has one sparsity (1 - N/M): use schedule: oneshot")
        if kind == "global" and self.method == "wanda":
            raise RecipeError("Wanda scores are not comparable across layers: use pattern unstructured or N:M with wanda")
        if kind == "structured" and self.method != "magnitude":
            raise RecipeError("structured pruning scores heads and neurons by weight norm: use method magnitude")
        if self.method == "movement" and self.schedule == "oneshot":
            raise RecipeError("movement scores come from training: use schedule: cubic with method movement")
        if not 0 < self.schedule_fraction <= 1 or self.update_every < 1:
            raise RecipeError("prune.schedule_fraction must be in (0, 1] and prune.update_every >= 1")


@dataclass
class Pruner:
    """The masks of a model's prunable linears and how they change during training.

    Build with :meth:`for_model` (validates before anything changes); the model is modified only
    by :meth:`apply`.
    """

    spec: PruneSpec
    linears: dict[str, nn.Linear]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    movement: dict[str, torch.Tensor] = field(default_factory=dict)
    input_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    total_steps: int = 0

    @classmethod
    def for_model(cls, model: nn.Module, spec: PruneSpec) -> Pruner:
        """Check the spec against the model's shapes and return a pruner with no masks yet.

        Raises:
            RecipeError: a bad spec, no prunable linears, or an N:M pattern a layer cannot take.
        """
        spec.validate()
        linears = prunable_linears(model)
        kind, n, m = parse_pattern(spec.pattern)
        if kind == "nm":
            bad = [f"{name} ({lin.in_features} inputs)" for name, lin in linears.items() if lin.in_features % m]
            if bad:
                raise RecipeError(f"pattern {spec.pattern} groups {m} inputs, which these layers cannot take: "
                                  f"{', '.join(bad[:5])}; choose M dividing their input width")
        return cls(spec, linears)

    # --- scores and masks ------------------------------------------------------------------

    def scores(self) -> dict[str, torch.Tensor]:
        """The current importance score of every prunable weight."""
        from agentos.kernels.sparsity import magnitude, wanda

        if self.spec.method == "wanda":
            if not self.input_norms:
                raise RecipeError("Wanda needs calibration activations: call calibrate() first")
            return {n: wanda(lin.weight, self.input_norms[n]) for n, lin in self.linears.items()}
        if self.spec.method == "movement" and self.movement:
            return dict(self.movement)
        return {n: magnitude(lin.weight) for n, lin in self.linears.items()}

    def calibrate(self, model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> None:
        """Record the input norms of every prunable linear (for Wanda)."""
        self.input_norms = collect_input_norms(model, batches, list(self.linears))

    def compute_masks(self, sparsity: float) -> None:
        """(Re)build every mask at ``sparsity`` from the current scores."""
        from agentos.kernels.sparsity import global_unstructured_masks, nm_mask, unstructured_mask

        kind, n, m = parse_pattern(self.spec.pattern)
        scores = self.scores()
        if kind == "global":
            self.masks = global_unstructured_masks(scores, sparsity)
        elif kind == "nm":
            self.masks = {name: nm_mask(s, n, m) for name, s in scores.items()}
        else:
            per_row = self.spec.method == "wanda"
            self.masks = {name: unstructured_mask(s, sparsity, per_row=per_row) for name, s in scores.items()}

    def apply(self) -> None:
        """Zero every pruned weight (in place)."""
        import torch

        with torch.no_grad():
            for name, mask in self.masks.items():
                self.linears[name].weight.mul_(mask.to(self.linears[name].weight.dtype))

    def mask_grads(self) -> None:
        """Zero the gradients of pruned weights (so the optimizer sees none)."""
        for name, mask in self.masks.items():
            grad = self.linears[name].weight.grad
            if grad is not None:
                grad.mul_(mask.to(grad.dtype))

    # --- the training hooks --------------------------------------------------------------------

    def start(self, total_steps: int) -> None:
        """Called before training: one-shot and N:M masks are built and applied here."""
        self.total_steps = total_steps
        if self.spec.schedule == "oneshot":
            self.compute_masks(self.spec.sparsity)
            self.apply()

    def target(self, step: int) -> float:
        """The sparsity the schedule wants at ``step``."""
        from agentos.kernels.sparsity import cubic_sparsity

        if self.spec.schedule == "oneshot":
            return self.spec.sparsity
        end = max(1, math.floor(self.spec.schedule_fraction * self.total_steps))
        return cubic_sparsity(step, self.spec.sparsity, start=0, end=end)

    def before_step(self, step: int) -> None:
        """Grow sparsity along the cubic schedule every ``update_every`` steps."""
        if self.spec.schedule == "cubic" and (step % self.spec.update_every == 0 or step == self.total_steps - 1):
            self.compute_masks(self.target(step))
            self.apply()

    def after_backward(self, step: int) -> None:
        """Movement accumulation and RigL prune-and-regrow (need the dense gradients), then masks grads."""
        from agentos.kernels.sparsity import movement_update, rigl_drop_fraction, rigl_update

        if self.spec.method == "movement":
            for name, lin in self.linears.items():
                if lin.weight.grad is not None:
                    base = self.movement.get(name)
                    self.movement[name] = movement_update(base if base is not None else lin.weight.detach() * 0, lin.weight, lin.weight.grad)
        kind, _, _ = parse_pattern(self.spec.pattern)
        rigl_stop = math.floor(0.75 * self.total_steps)
        if kind == "rigl" and self.masks and 0 < step < rigl_stop and step % self.spec.update_every == 0:
            fraction = rigl_drop_fraction(step, rigl_stop, self.spec.rigl_initial_fraction)
            import torch

            with torch.no_grad():
                for name, lin in self.linears.items():
                    if lin.weight.grad is None:
                        continue
                    mask, weight = rigl_update(lin.weight, self.masks[name], lin.weight.grad, fraction)
                    self.masks[name] = mask
                    lin.weight.copy_(weight)
        self.mask_grads()

    def report(self) -> dict[str, float]:
        """Measured sparsity (fraction of exact zeros) of every prunable weight, by name."""
        from agentos.kernels.sparsity import sparsity_of

        return {name: sparsity_of(lin.weight.detach()) for name, lin in self.linears.items()}


def _keep_rows(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    from torch import nn

    new = nn.Linear(linear.in_features, int(keep.sum()), bias=linear.bias is not None)
    new.weight.data = linear.weight.data[keep].clone()
    if linear.bias is not None:
        new.bias.data = linear.bias.data[keep].clone()
    return new


def _keep_cols(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    from torch import nn

    new = nn.Linear(int(keep.sum()), linear.out_features, bias=linear.bias is not None)
    new.weight.data = linear.weight.data[:, keep].clone()
    if linear.bias is not None:
        new.bias.data = linear.bias.data.clone()
    return new


def prune_structured(model: nn.Module, fraction: float, *, heads: bool = True, neurons: bool = True,
                     inplace: bool = False, keep: dict[str, list[torch.Tensor]] | None = None) -> tuple[nn.Module, dict[str, list[int]]]:
    """Remove the lowest-norm ``fraction`` of heads and FFN neurons from every BERT layer.

    Each layer loses ``floor(fraction * units)`` heads (keeping at least one) and as many FFN
    neurons; the query/key/value rows and output-projection columns of a removed head, and the
    up-projection row and down-projection column of a removed neuron, are deleted from the
    module shapes. ``config.layer_heads`` / ``config.layer_intermediate`` record what is left.

    Args:
        model: a BERT model (``BertForSequenceClassification`` or ``BertModel``).
        fraction: share of heads and of neurons to remove, in ``[0, 1)``.
        heads, neurons: which kinds of unit to remove.
        inplace: change ``model`` itself instead of a copy.
        keep: explicit ``{"heads": [bool mask per layer], "neurons": [...]}`` instead of scores.

    Returns:
        ``(pruned model, {"layer_heads": [...], "layer_intermediate": [...]})``.

    Raises:
        RecipeError: fraction outside ``[0, 1)`` or a model without BERT layers (nothing changed).
    """
    import torch

    from agentos.kernels.sparsity import check_sparsity, head_scores, neuron_scores, structured_mask

    try:
        check_sparsity(fraction)
    except ValueError as error:
        raise RecipeError(f"structured fraction: {error}") from None
    bert_layers(model)  # raises before the copy
    target = model if inplace else copy.deepcopy(model)
    config = target.config
    head_dim = config.hidden_size // config.num_attention_heads
    shape: dict[str, list[int]] = {"layer_heads": [], "layer_intermediate": []}
    for i, layer in enumerate(bert_layers(target)):
        attention = layer.attention.self
        n_heads = attention.query.out_features // head_dim
        q, k, v, o = attention.query.weight, attention.key.weight, attention.value.weight, layer.attention.output.dense.weight
        if keep is not None:
            keep_heads = keep["heads"][i]
        elif heads:
            keep_heads = structured_mask(head_scores(q, k, v, o, n_heads), fraction)
        else:
            keep_heads = torch.ones(n_heads, dtype=torch.bool)
        rows = keep_heads.repeat_interleave(head_dim)  # [H*Dh]
        attention.query, attention.key, attention.value = (_keep_rows(m, rows) for m in (attention.query, attention.key, attention.value))
        attention.num_attention_heads = int(keep_heads.sum())
        attention.all_head_size = attention.num_attention_heads * head_dim
        layer.attention.output.dense = _keep_cols(layer.attention.output.dense, rows)
        up, down = layer.intermediate.dense, layer.output.dense
        if keep is not None:
            keep_neurons = keep["neurons"][i]
        elif neurons:
            keep_neurons = structured_mask(neuron_scores(up.weight, down.weight), fraction)
        else:
            keep_neurons = torch.ones(up.out_features, dtype=torch.bool)
        layer.intermediate.dense = _keep_rows(up, keep_neurons)
        layer.output.dense = _keep_cols(down, keep_neurons)
        shape["layer_heads"].append(attention.num_attention_heads)
        shape["layer_intermediate"].append(int(keep_neurons.sum()))
    config.layer_heads, config.layer_intermediate = shape["layer_heads"], shape["layer_intermediate"]
    return target, shape
