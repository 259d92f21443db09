"""Pruning a causal LM and its perplexity: a tiny random Qwen2 model against float64 references."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from agentos.errors import RecipeError

VOCAB = 64
DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tiny_qwen(hidden: int = 32, intermediate: int = 64, seed: int = 0) -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    return Qwen2ForCausalLM(config).eval()


class CharTokenizer:
    """One token per character (its code point modulo the vocabulary)."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert not add_special_tokens
        return {"input_ids": [ord(c) % VOCAB for c in text]}


def _state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_perplexity_is_exp_of_the_mean_next_token_nll_over_whole_windows_against_a_float64_reference() -> None:
    import torch

    from agentos.tools.compress.llm import perplexity

    model = tiny_qwen()
    g = torch.Generator().manual_seed(1)
    text = "".join(chr(int(c)) for c in torch.randint(32, 127, (100,), generator=g))
    got = perplexity(model, CharTokenizer(), text, seq_len=16, max_tokens=90)
    ids = CharTokenizer()(text, add_special_tokens=False)["input_ids"][:90]
    nll, predicted = 0.0, 0
    with torch.no_grad():
        for w in range(90 // 16):  # 5 whole windows; the last 10 tokens are not scored
            x = torch.tensor([ids[w * 16:(w + 1) * 16]])
            logp = model(input_ids=x).logits[0].double().log_softmax(-1)  # [T, V]
            nll -= float(logp[torch.arange(15), x[0, 1:]].sum())
            predicted += 15
    assert (got.windows, got.predicted, got.seq_len) == (5, predicted, 16)
    assert got.nll_sum == pytest.approx(nll, rel=1e-5)
    assert got.perplexity == pytest.approx(math.exp(nll / predicted), rel=1e-5)
    # a random model over 64 tokens is near uniform: the perplexity is near the vocabulary size
    assert 32 < got.perplexity < 128


def test_a_text_shorter_than_one_window_or_a_window_under_two_tokens_is_a_clear_error() -> None:
    from agentos.tools.compress.llm import perplexity

    model = tiny_qwen()
    with pytest.raises(RecipeError, match="fewer than one window of 16"):
        perplexity(model, CharTokenizer(), "short", seq_len=16)
    with pytest.raises(RecipeError, match="at least 2"):
        perplexity(model, CharTokenizer(), "a long enough text", seq_len=1)


@pytest.mark.parametrize(("method", "pattern"), [("magnitude", "unstructured"), ("wanda", "unstructured"),
                                                 ("magnitude", "2:4"), ("wanda", "2:4")])
def test_pruning_hits_the_sparsity_in_every_decoder_linear_keeps_embeddings_dense_and_copies_the_model(
        method: str, pattern: str) -> None:
    from agentos.kernels.sparsity import is_nm_sparse, sparsity_of
    from agentos.tools.compress.llm import calibration_batches, prune_causal_lm
    from agentos.tools.compress.prune import PruneSpec

    model = tiny_qwen()
    before = _state(model)
    calib = calibration_batches(CharTokenizer(), "def f(x):\n    return x + 1\n" * 20, samples=4, seq_len=32)
    pruned, report = prune_causal_lm(model, PruneSpec(method=method, pattern=pattern, sparsity=0.5),  # type: ignore[arg-type]
                                     calib if method == "wanda" else None)
    assert _same(_state(model), before), "the original model was changed"
    names = {n.rsplit(".", 1)[-1] for n in report}
    assert names == set(DECODER_LINEARS) and len(report) == 2 * len(DECODER_LINEARS)
    modules = dict(pruned.named_modules())
    for name in report:
        weight = modules[name].weight.detach()
        assert sparsity_of(weight) == 0.5, name  # 32x32, 64x32, ...: half of every row exactly
        if pattern == "2:4":
            assert is_nm_sparse(weight, 2, 4), name
    assert sparsity_of(pruned.model.embed_tokens.weight.detach()) == 0.0
    assert pruned.lm_head.weight.data_ptr() == pruned.model.embed_tokens.weight.data_ptr()  # still tied


def test_wanda_keeps_the_weights_whose_inputs_are_large_where_magnitude_would_not() -> None:
    import torch

    from agentos.tools.compress.llm import prune_causal_lm
    from agentos.tools.compress.prune import PruneSpec

    model = tiny_qwen()
    down = model.model.layers[0].mlp.down_proj
    with torch.no_grad():
        down.weight[:, :32] *= 0.1  # small weights on the first half of the inputs...
    big_inputs = {}

    def scale_inputs(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0].clone()
        x[..., :32] *= 1000.0  # ...whose activations are a thousand times larger
        big_inputs["seen"] = True
        return (x,)

    down.register_forward_pre_hook(scale_inputs)
    calib = [{"input_ids": torch.randint(0, VOCAB, (1, 32), generator=torch.Generator().manual_seed(2))}]
    by_wanda, _ = prune_causal_lm(model, PruneSpec(method="wanda", sparsity=0.5), calib)
    by_magnitude, _ = prune_causal_lm(model, PruneSpec(method="magnitude", sparsity=0.5))
    kept_first_half = lambda m: float((m.model.layers[0].mlp.down_proj.weight[:, :32] != 0).float().mean())  # noqa: E731
    assert big_inputs["seen"]
    assert kept_first_half(by_wanda) > 0.9
    assert kept_first_half(by_magnitude) < 0.2


@pytest.mark.parametrize(("spec", "calibrate", "message"), [
    ({"sparsity": 1.0}, False, "sparsity"),
    ({"sparsity": -0.1}, False, "sparsity"),
    ({"schedule": "cubic"}, False, "one-shot"),
    ({"pattern": "structured"}, False, "one-shot"),
    ({"method": "wanda"}, False, "calibration"),
    ({"pattern": "4:8"}, False, "cannot take"),
])
def test_bad_specs_are_refused_before_the_model_changes(spec: dict[str, Any], calibrate: bool, message: str) -> None:
    from agentos.tools.compress.llm import prune_causal_lm
    from agentos.tools.compress.prune import PruneSpec

    model = tiny_qwen(hidden=36, intermediate=60)  # 36 and 60 inputs: not groups of 8
    before = _state(model)
    with pytest.raises(RecipeError, match=message):
        prune_causal_lm(model, PruneSpec(**spec), inplace=True)
    assert _same(_state(model), before)


def test_inplace_pruning_changes_the_given_model() -> None:
    from agentos.kernels.sparsity import sparsity_of
    from agentos.tools.compress.llm import prune_causal_lm
    from agentos.tools.compress.prune import PruneSpec

    model = tiny_qwen()
    pruned, _ = prune_causal_lm(model, PruneSpec(sparsity=0.5), inplace=True)
    assert pruned is model
    assert sparsity_of(model.model.layers[1].self_attn.q_proj.weight.detach()) == 0.5


def test_stdlib_splits_are_disjoint_fixed_by_path_and_leave_out_test_packages(tmp_path: Path) -> None:
    from agentos.tools.compress.llm import stdlib_files, stdlib_text

    evaluation, calibration = stdlib_files("eval"), stdlib_files("calibration")
    assert evaluation and calibration and not set(evaluation) & set(calibration)
    assert all("test" not in p.parts and p.suffix == ".py" for p in evaluation + calibration)
    # the split is a function of the relative path alone: a copy of the tree splits the same way
    for i in range(40):
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / f"m{i}.py").write_text(f"x = {i}\n")
        (tmp_path / "test").mkdir(exist_ok=True)
        (tmp_path / "test" / f"m{i}.py").write_text("skipped\n")
    copy = tmp_path.parent / (tmp_path.name + "-copy")
    import shutil

    shutil.copytree(tmp_path, copy)
    rel = lambda files, root: [p.relative_to(root) for p in files]  # noqa: E731
    assert rel(stdlib_files("eval", tmp_path), tmp_path) == rel(stdlib_files("eval", copy), copy)
    assert "skipped" not in stdlib_text("eval", tmp_path) + stdlib_text("calibration", tmp_path)
    with pytest.raises(RecipeError, match="split"):
        stdlib_files("train")  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="no .py files"):
        stdlib_files("eval", tmp_path / "pkg" / "m0.py")


def test_weight_only_int8_and_int4_take_a_quarter_and_an_eighth_of_the_float_bytes_plus_scales() -> None:
    from agentos.kernels.quant import quantize_weight_only
    from agentos.tools.compress.llm import linear_weight_bytes

    model = tiny_qwen(hidden=64, intermediate=128)
    linears = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in DECODER_LINEARS]
    weights = sum(m.weight.nelement() for m in linears)
    rows = sum(m.out_features for m in linears)
    dense = linear_weight_bytes(model)
    assert dense == 4 * weights  # float32; lm_head (the tied embedding) is left out
    int8 = linear_weight_bytes(quantize_weight_only(model, 8, skip=("lm_head",)))
    int4 = linear_weight_bytes(quantize_weight_only(model, 4, group_size=32, skip=("lm_head",)))
    assert int8 == weights + 4 * rows  # one byte an entry plus a float32 scale per output row
    assert int4 == weights // 2 + 4 * (weights // 32)  # half a byte an entry plus a scale per group of 32
    assert linear_weight_bytes(model) == dense  # the model itself was copied, not changed
