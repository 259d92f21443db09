"""The pipeline end to end on a tiny BERT and the checked-in slice: recipe validation, export
round trips (Hugging Face, sparse file, int8), the CLI, the agent tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from agentos.errors import RecipeError
from agentos.tools.compress.export import load_sparse
from agentos.tools.compress.model import encode, load_classifier
from agentos.tools.compress.pipeline import compress, load_exported
from agentos.tools.compress.recipe import Recipe, load_recipe


def _recipe(tiny_dir: Path, slice_path: Path, out: Path, **overrides: object) -> Recipe:
    fields: dict[str, object] = dict(
        name="tiny", model=str(tiny_dir), max_seq_len=32,
        data={"path": str(slice_path), "train_limit": 64, "eval_limit": 30},
        prune={"method": "magnitude", "pattern": "unstructured", "sparsity": 0.5, "schedule": "cubic", "update_every": 2},
        recover={"steps": 6, "batch_size": 16}, evaluate={"latency_repeats": 1, "latency_batch": 4}, export=str(out))
    fields.update(overrides)
    return Recipe(**fields)


@pytest.mark.parametrize(("fields", "needle"), [
    ({"prune": {"sparsity": 1.0}}, r"prune.sparsity: sparsity must be in \[0, 1\)"),
    ({"prune": {"sparsity": -0.2}}, r"in \[0, 1\)"),
    ({"prune": {"pattern": "4:2"}}, "0 < N < M"),
    ({"prune": {"pattern": "2:4", "schedule": "cubic"}, "recover": {}}, "N:M pattern has one sparsity"),
    ({"prune": {"schedule": "cubic"}}, "add recover"),
    ({"prune": {"method": "movement"}, "recover": {}}, "use schedule: cubic"),
    ({"recover": {}}, "recover needs a prune section"),
    ({"model": "minilm"}, "add finetune"),
    ({"pruen": {}}, "pruen: Extra inputs are not permitted"),
])
def test_invalid_recipes_fail_when_built(fields: dict, needle: str) -> None:
    with pytest.raises(RecipeError, match=needle):
        Recipe(**fields)


def test_yaml_recipe_loads_and_bad_files_say_why(tmp_path: Path) -> None:
    good = tmp_path / "r.yaml"
    good.write_text(yaml.safe_dump({"name": "x", "prune": {"pattern": "2:4"}, "quantize": "int8_dynamic"}))
    assert load_recipe(good).prune.pattern == "2:4"
    with pytest.raises(RecipeError, match="no recipe file"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(RecipeError, match="must hold a mapping"):
        load_recipe(tmp_path / "list.yaml")


def test_a_pattern_the_model_cannot_take_fails_before_training(tiny_dir: Path, slice_path: Path, tmp_path: Path) -> None:
    calls: list[str] = []
    recipe = _recipe(tiny_dir, slice_path, tmp_path / "out", prune={"pattern": "1:5"}, recover=None)  # 32 inputs
    with pytest.raises(RecipeError, match="pattern 1:5 groups 5 inputs"):
        compress(recipe, progress=False, log=calls.append)
    assert calls == [] and not (tmp_path / "out").exists()


def test_gradual_pruning_with_distillation_exports_a_directory_transformers_loads(tiny_dir: Path, slice_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "out"
    report = compress(_recipe(tiny_dir, slice_path, out, quantize="int8_dynamic"), progress=False)
    assert report.sparsity == pytest.approx(0.5, abs=1e-3)
    assert all(s == pytest.approx(0.5, abs=1e-2) for s in report.sparsity_per_layer.values())
    assert 0 <= report.accuracy <= 1 and report.eval_examples == 30 and report.accuracy_quantized is not None
    assert json.loads((out / "report.json").read_text())["sparsity"] == report.sparsity
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    reference, tokenizer = load_classifier(out)
    masks = {}
    for name, module in loaded.named_modules():
        if name.startswith("bert.encoder.layer") and isinstance(module, torch.nn.Linear):
            assert (module.weight == 0).float().mean() == pytest.approx(0.5, abs=1e-2), name
            masks[name] = module.weight != 0
    sparse_state = load_sparse(out / "sparse_model.pt")
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(sparse_state[key], value, rtol=0, atol=0)
    assert report.sizes["sparse_model.pt"] < report.sizes["model.safetensors"]
    batch = encode(tokenizer, ["a fine film", "dull and long"], 32)
    int8, _ = load_exported(out, int8=True)
    with torch.no_grad():
        torch.testing.assert_close(int8(**batch).logits, loaded(**batch).logits, atol=0.1, rtol=0.1)


def test_structured_export_is_smaller_and_loads_with_its_shapes(tiny_dir: Path, slice_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "structured"
    report = compress(_recipe(tiny_dir, slice_path, out, prune={"pattern": "structured", "sparsity": 0.5},
                              recover={"steps": 2, "batch_size": 8}), progress=False)
    assert report.sparsity == pytest.approx(0.5, abs=0.01)
    dense_size = (tiny_dir / "model.safetensors").stat().st_size
    assert report.sizes["model.safetensors"] < dense_size
    loaded = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True).eval()
    assert loaded.bert.encoder.layer[0].attention.self.query.out_features == 16  # 2 of 4 heads of width 8
    assert loaded.bert.encoder.layer[1].intermediate.dense.out_features == 32
    ours, tokenizer = load_classifier(out)
    batch = encode(tokenizer, ["a fine film"], 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, ours(**batch).logits)


def test_cli_compress_runs_a_recipe_and_reports_errors(tiny_dir: Path, slice_path: Path, tmp_path: Path) -> None:
    from agentos.cli import app

    recipe = _recipe(tiny_dir, slice_path, tmp_path / "cli", prune={"pattern": "2:4"}, recover=None,
                     evaluate={"dense_baseline": False, "latency_repeats": 1, "latency_batch": 2})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump()))
    runner = CliRunner()
    result = runner.invoke(app, ["compress", str(path), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sparsity"] == pytest.approx(0.5)
    table = runner.invoke(app, ["compress", str(path), "--no-progress"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "energy of the compressed accuracy pass" in table.stdout
    assert "mJ per example" in table.stdout
    bad = runner.invoke(app, ["compress", str(tmp_path / "nope.yaml")])
    assert bad.exit_code != 0 and "no recipe file" in str(bad.exception)


def test_compress_tool_returns_the_report_and_turns_recipe_errors_into_retries(tiny_dir: Path, slice_path: Path, tmp_path: Path) -> None:
    from agentos.errors import ToolRetry
    from agentos.tools.compress.tools import compress as tool

    recipe = _recipe(tiny_dir, slice_path, tmp_path / "tool", prune={"pattern": "unstructured", "sparsity": 0.3}, recover=None,
                     evaluate={"dense_baseline": False, "latency_repeats": 1, "latency_batch": 2})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump()))
    out = tool(recipe_path=str(path))
    assert out["sparsity"] == pytest.approx(0.3, abs=1e-3) and out["export_dir"] == str(tmp_path / "tool")
    path.write_text(yaml.safe_dump({"prune": {"sparsity": 2}}))
    with pytest.raises(ToolRetry, match=r"\[0, 1\)"):
        tool(recipe_path=str(path))


def test_weight_only_int8_is_evaluated_and_exported_smaller(tiny_dir: Path, slice_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "w8"
    report = compress(_recipe(tiny_dir, slice_path, out, prune=None, recover=None, quantize="int8_weight",
                              evaluate={"dense_baseline": False, "latency_repeats": 1, "latency_batch": 2}), progress=False)
    assert report.accuracy_quantized is not None and abs(report.accuracy_quantized - report.accuracy) <= 0.1
    assert (out / "model_int8_weight.pt").stat().st_size == report.sizes["model_int8_weight.pt"]


def test_the_report_carries_the_energy_of_each_accuracy_pass_with_its_method(tiny_dir: Path, slice_path: Path, tmp_path: Path) -> None:
    report = compress(_recipe(tiny_dir, slice_path, tmp_path / "e", prune=None, recover=None, quantize="int8_dynamic",
                              evaluate={"dense_baseline": True, "latency_repeats": 1, "latency_batch": 2}), progress=False)
    assert set(report.energy) == {"dense", "compressed", "quantized"}
    for entry in report.energy.values():
        assert entry["joules"] > 0 and entry["seconds"] > 0 and entry["method"]
        assert entry["mj_per_example"] == pytest.approx(1e3 * entry["joules"] / report.eval_examples)
    assert json.loads((tmp_path / "e" / "report.json").read_text())["energy"] == report.energy


def test_sentiment_classifier_without_a_cache_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agentos.tools.compress.pipeline import sentiment_classifier, sentiment_classifier_dir

    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path))
    assert sentiment_classifier_dir() == tmp_path / "compress" / "minilm-sentiment"
    with pytest.raises(RecipeError, match="train_if_missing=True"):
        sentiment_classifier(train_if_missing=False)
