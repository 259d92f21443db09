"""The compression pipeline: load or fine-tune -> prune -> recover -> quantize -> evaluate -> export.

:func:`compress` runs one :class:`~agentos.tools.compress.recipe.Recipe` and returns a
:class:`CompressReport` (accuracy of the dense teacher and of the result, measured sparsity per
layer, size of every exported weight file, CPU latency per batch, the energy of each accuracy
pass from :class:`~agentos.kernels.energy.EnergyMeter` with its method, seconds per stage).
:func:`sentiment_classifier` gives the fine-tuned float32 MiniLM sentiment classifier other code
can call (fine-tuned once and cached under the agentos data dir).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.config import data_dir
from agentos.tools.compress.data import Splits, load_examples, split_examples
from agentos.tools.compress.recipe import Recipe

if TYPE_CHECKING:
    from torch import nn

__all__ = ["CompressReport", "SENTIMENT_RECIPE", "compress", "load_exported", "sentiment_classifier", "sentiment_classifier_dir"]

#: How the cached sentiment classifier is made: one epoch over the first 1,600 of the 8,454
#: training sentences (seed 0), max 64 tokens, word embeddings frozen (CPU time on 2 shared cores).
SENTIMENT_RECIPE = Recipe(name="minilm-sentiment", model="minilm", data={"train_limit": 1600},
                          finetune={"epochs": 1.0, "batch_size": 32, "lr": 1e-4}, evaluate={"dense_baseline": False})


@dataclass
class CompressReport:
    """What a run measured. Sizes in bytes, latency in seconds per batch, accuracy in [0, 1]."""

    name: str
    seed: int
    accuracy_dense: float | None = None
    accuracy: float | None = None
    accuracy_quantized: float | None = None
    eval_examples: int = 0
    sparsity: float = 0.0  #: fraction of zeros over all prunable linear weights
    sparsity_per_layer: dict[str, float] = field(default_factory=dict)
    parameters: int = 0  #: parameters in the float model's tensors (structured pruning lowers it)
    sizes: dict[str, int] = field(default_factory=dict)
    latency_dense: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    latency_quantized: dict[str, float] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: per evaluated model (``dense``, ``compressed``, ``quantized``): the accuracy pass's
    #: ``joules``, ``mj_per_example`` and ``method`` (``modelled`` where no counter can be read)
    energy: dict[str, dict[str, Any]] = field(default_factory=dict)
    export_dir: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def sentiment_classifier_dir() -> Path:
    """Where :func:`sentiment_classifier` caches the fine-tuned model."""
    return data_dir() / "compress" / "minilm-sentiment"


def sentiment_classifier(*, train_if_missing: bool = True, progress: bool = False) -> tuple[nn.Module, Any]:
    """The fine-tuned float32 MiniLM sentiment classifier and its tokenizer (eval mode).

    Labels: 0 negative, 1 positive (see :mod:`agentos.tools.compress.data`). Max 64 tokens were
    used in training. The first call fine-tunes :data:`SENTIMENT_RECIPE` (a few minutes on a
    CPU) and saves the result under :func:`sentiment_classifier_dir`; later calls load it.

    Raises:
        DataNotInstalled: it must be trained and the sentences are not installed.
        RecipeError: it is not cached and ``train_if_missing`` is false.
    """
    from agentos.errors import RecipeError
    from agentos.tools.compress.model import load_classifier

    folder = sentiment_classifier_dir()
    if not (folder / "config.json").is_file():
        if not train_if_missing:
            raise RecipeError(f"no fine-tuned sentiment classifier at {folder}: call sentiment_classifier() "
                              "with train_if_missing=True (or run agentos compress with model: minilm)")
        recipe = SENTIMENT_RECIPE.model_copy(update={"export": str(folder)})
        compress(recipe, progress=progress)
    model, tokenizer = load_classifier(folder)
    return model.eval(), tokenizer


def load_exported(folder: str | Path, *, int8: bool = False) -> tuple[nn.Module, Any]:
    """Load a directory :func:`compress` exported; with ``int8``, its int8 dynamic weights.

    Raises:
        RecipeError: ``int8`` was asked and the directory has no ``model_int8_dynamic.pt``.
    """
    import torch

    from agentos.errors import RecipeError
    from agentos.kernels.quant import quantize_dynamic_int8
    from agentos.tools.compress.model import load_classifier

    model, tokenizer = load_classifier(folder)
    if int8:
        path = Path(folder) / "model_int8_dynamic.pt"
        if not path.is_file():
            raise RecipeError(f"{folder} has no model_int8_dynamic.pt: export with quantize: int8_dynamic")
        model = quantize_dynamic_int8(model, inplace=True)
        model.load_state_dict(torch.load(path, weights_only=False))
    return model.eval(), tokenizer


def _splits(recipe: Recipe) -> Splits:
    examples = load_examples(Path(recipe.data.path) if recipe.data.path else None)
    splits = split_examples(examples, seed=recipe.data.seed, dev=recipe.data.dev, test=recipe.data.test)
    if recipe.data.train_limit:
        splits.train[:] = splits.train[:recipe.data.train_limit]
    return splits


def _parameters(model: nn.Module) -> int:
    return sum(t.numel() for t in model.state_dict().values() if hasattr(t, "numel"))


def _metered(report: CompressReport, key: str, examples: int, evaluate: Any) -> Any:
    """``evaluate()`` inside an energy window; its joules go to ``report.energy[key]``."""
    from agentos.kernels.energy import EnergyMeter

    meter = EnergyMeter("auto")
    with meter as window:
        result = evaluate()
    reading = window.reading
    report.energy[key] = {"joules": reading.joules, "mj_per_example": 1e3 * reading.joules / max(examples, 1),
                          "seconds": reading.seconds, "method": reading.energy.method}
    return result


def compress(recipe: Recipe, *, progress: bool = True, log: Any = None) -> CompressReport:
    """Run ``recipe``; writes the export directory (with ``report.json``) when it names one.

    Args:
        recipe: what to do.
        progress: show tqdm bars.
        log: called with one line of text per stage (e.g. ``print``); default silent.

    Raises:
        RecipeError: a bad recipe or a model without the modules it names (before any change).
        DataNotInstalled: the sentences are not installed and the recipe names no data path.
    """
    import torch

    from agentos.kernels.quant import quantize_dynamic_int8, quantize_weight_only
    from agentos.tools.compress.export import export_hf
    from agentos.tools.compress.model import load_classifier
    from agentos.tools.compress.prune import Pruner, bert_layers, prunable_linears, prune_structured
    from agentos.tools.compress.train import DistillSpec, TrainSpec, accuracy, batches, latency, train

    say = log or (lambda line: None)
    report = CompressReport(name=recipe.name, seed=recipe.seed, recipe=recipe.model_dump())
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        report.stage_seconds[name] = round(now - clock, 2)
        clock = now

    splits = _splits(recipe)
    evaluation = splits.test if recipe.evaluate.split == "test" else splits.dev
    if recipe.data.eval_limit:
        evaluation = evaluation[:recipe.data.eval_limit]
    report.eval_examples = len(evaluation)
    source = sentiment_classifier_dir() if recipe.model == "minilm-sentiment" else recipe.model
    if recipe.model == "minilm-sentiment" and not (sentiment_classifier_dir() / "config.json").is_file():
        sentiment_classifier(progress=progress)
    model, tokenizer = load_classifier(source, seed=recipe.seed)
    pruner = None
    if recipe.prune is not None:  # check the model's shapes before anything is trained or changed
        spec = recipe.prune_spec()
        if spec.pattern == "structured":
            bert_layers(model)
        else:
            Pruner.for_model(model, spec)
    stage("load")
    say(f"data: {len(splits.train)} train / {len(splits.dev)} dev / {len(splits.test)} test (seed {recipe.data.seed}); "
        f"evaluating on {len(evaluation)} {recipe.evaluate.split}")
    max_len = recipe.max_seq_len
    if recipe.finetune is not None:
        f = recipe.finetune
        losses = train(model, tokenizer, splits.train, TrainSpec(steps=f.steps, epochs=f.epochs, batch_size=f.batch_size,
                       lr=f.lr, max_len=max_len, seed=recipe.seed), progress=progress, desc="fine-tune")
        stage("finetune")
        say(f"fine-tuned {len(losses)} steps, last loss {losses[-1]:.3f}")
    model.eval()
    if recipe.evaluate.dense_baseline:
        report.accuracy_dense = _metered(report, "dense", len(evaluation), lambda: accuracy(
            model, tokenizer, evaluation, max_len=max_len, progress=progress, desc="dense"))
        report.latency_dense = latency(model, tokenizer, evaluation, batch_size=recipe.evaluate.latency_batch,
                                       max_len=max_len, repeats=recipe.evaluate.latency_repeats)
        stage("evaluate_dense")
        say(f"dense accuracy {report.accuracy_dense:.4f}")
    student, structured = model, None
    if recipe.prune is not None:
        spec = recipe.prune_spec()
        teacher = model
        if spec.pattern == "structured":
            student, structured = prune_structured(model, spec.sparsity)
        else:
            student = copy.deepcopy(model)
            pruner = Pruner.for_model(student, spec)
            if spec.method == "wanda":
                calibration = [b for b, _ in zip(batches(splits.train, tokenizer, 32, max_len, seed=recipe.seed),
                                                 range(recipe.prune.calibration_batches))]
                pruner.calibrate(student, calibration)
            if recipe.recover is None:
                pruner.start(0)
        stage("prune")
        if recipe.recover is not None:
            r = recipe.recover
            train(student, tokenizer, splits.train, TrainSpec(steps=r.steps, batch_size=r.batch_size, lr=r.lr, max_len=max_len,
                  seed=recipe.seed + 1), teacher=teacher if r.distill else None,
                  distill=DistillSpec(ce_weight=r.ce_weight, hidden_weight=r.hidden_weight, temperature=r.temperature),
                  pruner=pruner, progress=progress, desc="recover")
            stage("recover")
        if pruner is not None:
            report.sparsity_per_layer = pruner.report()
            zeros = sum(int((lin.weight == 0).sum()) for lin in pruner.linears.values())
            report.sparsity = zeros / sum(lin.weight.numel() for lin in pruner.linears.values())
        elif structured is not None:  # fraction of each layer's units removed, and of the linears' weights
            heads, width = model.config.num_attention_heads, model.config.intermediate_size
            for i, (h, f) in enumerate(zip(structured["layer_heads"], structured["layer_intermediate"])):
                report.sparsity_per_layer[f"layer{i}.heads"] = 1 - h / heads
                report.sparsity_per_layer[f"layer{i}.neurons"] = 1 - f / width
            before = sum(m.weight.numel() for m in prunable_linears(model).values())
            report.sparsity = 1 - sum(m.weight.numel() for m in prunable_linears(student).values()) / before
        del teacher
    student.eval()
    report.parameters = _parameters(student)
    report.accuracy = _metered(report, "compressed", len(evaluation), lambda: accuracy(
        student, tokenizer, evaluation, max_len=max_len, progress=progress, desc="evaluate"))
    report.latency = latency(student, tokenizer, evaluation, batch_size=recipe.evaluate.latency_batch, max_len=max_len,
                             repeats=recipe.evaluate.latency_repeats)
    stage("evaluate")
    say(f"accuracy {report.accuracy:.4f}, sparsity {report.sparsity:.3f}, latency {report.latency['median_s'] * 1e3:.1f} ms/batch")
    quantized = None
    if recipe.quantize != "none":
        if recipe.quantize == "int8_dynamic":
            quantized = quantize_dynamic_int8(student)
        else:
            quantized = quantize_weight_only(student, 8 if recipe.quantize == "int8_weight" else 4, skip=("classifier",))
        report.accuracy_quantized = _metered(report, "quantized", len(evaluation), lambda: accuracy(
            quantized, tokenizer, evaluation, max_len=max_len, progress=progress, desc="quantized"))
        report.latency_quantized = latency(quantized, tokenizer, evaluation, batch_size=recipe.evaluate.latency_batch,
                                           max_len=max_len, repeats=recipe.evaluate.latency_repeats)
        stage("quantize")
        say(f"{recipe.quantize}: accuracy {report.accuracy_quantized:.4f}, latency {report.latency_quantized['median_s'] * 1e3:.1f} ms/batch")
    if recipe.export:
        out = Path(recipe.export)
        if out.exists():
            shutil.rmtree(out)
        masks = pruner.masks if pruner is not None else None
        report.sizes = export_hf(student, tokenizer, out, masks=masks, structured=structured,
                                 quantized=quantized if recipe.quantize == "int8_dynamic" else None)
        if quantized is not None and recipe.quantize != "int8_dynamic":
            torch.save(quantized.state_dict(), out / f"model_{recipe.quantize}.pt")
            report.sizes[f"model_{recipe.quantize}.pt"] = (out / f"model_{recipe.quantize}.pt").stat().st_size
        report.export_dir = str(out)
        stage("export")
        (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
        say(f"exported to {out}: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in report.sizes.items()))
    return report
