"""The MoE language-model tool: config, corpus, checkpoints, resumable training, API, upcycling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentos.tools.moe import (
    ByteTokenizer,
    CheckpointError,
    MoETransformer,
    MoETransformerConfig,
    generate,
    load_model,
    preset,
    score,
    train_moe,
)
from agentos.tools.moe.checkpoint import load_checkpoint, save_checkpoint
from agentos.tools.moe.data import load_stdlib_corpus
from tests.markers import requires_module

TINY = preset("tiny")
TRAIN_KW = {"batch_size": 4, "seq_len": 32, "max_bytes": 300_000, "progress": False}


@pytest.fixture(scope="module")
def corpus():  # type: ignore[no-untyped-def]
    return load_stdlib_corpus(max_bytes=300_000)


def test_package_import_does_not_import_torch() -> None:
    code = ("import sys, agentos.tools.moe as m; m.MoETransformerConfig; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"num_experts": 2, "top_k": 3}, "top_k=3 exceeds num_experts=2"),
        ({"d_model": 30, "n_heads": 4}, "not divisible"),
        ({"moe_layers": (0, 5)}, "out of range"),
        ({"capacity_factor": 0.0}, "capacity_factor"),
        ({"n_layers": 0}, "n_layers"),
    ],
)
def test_config_validated_at_construction(changes: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        TINY.with_(**changes)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


def test_config_roundtrip_and_moe_layers() -> None:
    cfg = TINY.with_(n_layers=4, moe_layers=(1, 3))
    assert MoETransformerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.moe_layer_indices == (1, 3)
    assert TINY.with_(num_experts=1).moe_layer_indices == ()
    model = MoETransformer(cfg)
    out = model(torch.randint(0, 256, (2, 16)))
    assert out.logits.shape == (2, 16, 256) and len(out.routings) == 2


def test_tokenizer_roundtrip() -> None:
    tok = ByteTokenizer()
    text = "def f(x):\n    return 'ü→'\n"
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError):
        tok.decode([300])


def test_corpus_is_stdlib_and_split_is_disjoint(corpus) -> None:  # type: ignore[no-untyped-def]
    import sysconfig

    assert corpus.root == sysconfig.get_paths()["stdlib"]
    assert corpus.train.numel() > 100_000 and corpus.val.numel() > 1_000
    assert corpus.val.numel() < corpus.train.numel()
    again = load_stdlib_corpus(max_bytes=300_000)
    assert torch.equal(again.val, corpus.val)


def test_checkpoint_refuses_corrupt_or_truncated(tmp_path: Path) -> None:
    state = {"w": torch.arange(1000.0)}
    save_checkpoint(tmp_path, state, {"step": 3})
    loaded, meta = load_checkpoint(tmp_path)
    assert torch.equal(loaded["w"], state["w"]) and meta == {"step": 3}

    payload = next(tmp_path.glob("state-*.pt"))
    data = payload.read_bytes()
    payload.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    payload.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_training_reduces_loss_and_resume_equals_one_run(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    kw = {**TRAIN_KW, "corpus": corpus, "eval_every": 10, "eval_batches": 2, "warmup": 4}
    straight = train_moe(TINY, 24, **kw)
    assert straight.history[-1]["val_loss"] < straight.history[0]["val_loss"] + 0.5
    assert straight.history[-1]["val_loss"] < 5.0  # well below log(256) = 5.55 at init

    first = train_moe(TINY, 24, out_dir=tmp_path, stop_at=13, **kw)  # "preempted" at step 13
    assert first.checkpoint == tmp_path
    resumed = train_moe(TINY, 24, out_dir=tmp_path, **kw)
    assert resumed.resumed_from == 13
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert [h["step"] for h in resumed.history] == [10, 13, 20, 24]

    with pytest.raises(ValueError, match="different config"):
        train_moe(TINY.with_(top_k=2), 30, out_dir=tmp_path, **kw)


def test_generate_and_score_from_checkpoint(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    train_moe(TINY, 8, out_dir=tmp_path, corpus=corpus, eval_every=8, eval_batches=1,
              **{k: v for k, v in TRAIN_KW.items() if k != "max_bytes"})
    text = generate(tmp_path, "import ", max_new_tokens=20, seed=1)
    assert isinstance(text, str) and len(text.encode("utf-8", "replace")) > 0
    assert generate(tmp_path, "x", max_new_tokens=5, temperature=0) == generate(
        load_model(tmp_path), "x", max_new_tokens=5, temperature=0
    )
    s = score(tmp_path, "import os\n" * 20)  # 200 bytes: several windows of max_seq_len=64
    assert s["tokens"] == 199 and s["loss"] > 0
    assert len(s["routing"]) == 2 and sum(s["routing"][0]["tokens_per_expert"]) > 0
    assert {"drop_rate", "normalized_entropy"} <= set(s["routing"][0])


# --- sparse upcycling ------------------------------------------------------------------------------


def _tiny_qwen2():  # type: ignore[no-untyped-def]
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return Qwen2ForCausalLM(cfg).double().eval()


@pytest.mark.parametrize("top_k", [1, 2])
def test_upcycled_qwen2_equals_dense_at_init(top_k: int) -> None:
    from agentos.tools.moe.upcycle import UpcycledMLP, moe_aux_loss, upcycle_qwen2

    model = _tiny_qwen2()
    ids = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        dense = model(ids).logits
    upcycle_qwen2(model, num_experts=4, top_k=top_k)
    assert all(isinstance(layer.mlp, UpcycledMLP) for layer in model.model.layers)
    moe = model(ids).logits
    torch.testing.assert_close(moe, dense, rtol=1e-10, atol=1e-10)
    (moe.sum() + moe_aux_loss(model)).backward()
    mlp = model.model.layers[0].mlp
    assert mlp.moe.router.gate.weight.grad is not None
    assert mlp.moe.experts.w_in.grad is not None and mlp.moe.experts.w_in.grad.abs().sum() > 0
    assert model.config.moe_upcycling["num_experts"] == 4


def test_upcycle_rejects_bad_models() -> None:
    from agentos.tools.moe.upcycle import upcycle_qwen2

    with pytest.raises(ValueError, match="no .model.layers"):
        upcycle_qwen2(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="out of range"):
        upcycle_qwen2(_tiny_qwen2(), layers=[7])
    with pytest.raises(ValueError, match="top_k=5 exceeds"):
        upcycle_qwen2(_tiny_qwen2(), num_experts=4, top_k=5)


def _packaged_qwen_gguf() -> Path | None:
    root = Path.home() / ".agentos" / "models"
    hits = sorted(root.rglob("*[Qq]wen2.5-[Cc]oder-0.5[Bb]*.gguf")) if root.is_dir() else []
    return hits[0] if hits else None


@pytest.mark.slow
@requires_module("gguf")
def test_upcycle_real_qwen2_5_coder_gguf() -> None:
    path = _packaged_qwen_gguf()
    if path is None:
        pytest.skip("Qwen2.5-Coder-0.5B GGUF not in ~/.agentos/models/ (packaged separately)")
    from transformers import AutoModelForCausalLM

    from agentos.tools.moe.upcycle import upcycle_qwen2

    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, torch_dtype=torch.float32
    ).eval()
    ids = torch.tensor([[785, 1795, 25, 2, 151643][:4]])
    with torch.no_grad():
        dense = model(ids).logits
        upcycle_qwen2(model, num_experts=4, top_k=2)
        moe = model(ids).logits
    torch.testing.assert_close(moe, dense, rtol=1e-4, atol=1e-4)


# --- DeepSpeed -----------------------------------------------------------------------------------


@pytest.mark.distributed
@requires_module("deepspeed")
def test_deepspeed_moe_trains_on_two_gloo_ranks() -> None:
    from agentos.tools.moe import train_with_deepspeed

    cfg = TINY.with_(num_experts=2, n_layers=1)
    history = train_with_deepspeed(cfg, 6, moe_impl="deepspeed", world_size=2, batch_size=2,
                                   seq_len=16, eval_every=3, eval_batches=1, max_bytes=200_000,
                                   timeout_s=240)
    assert [h["step"] for h in history] == [3, 6]
    assert history[-1]["val_loss"] < 5.6 and history[-1]["world_size"] == 2


def test_router_bias_balancing_option_trains_and_checkpoints(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    assert TINY.router_bias_update_rate == 0.0
    with pytest.raises(ValueError, match="router_bias_update_rate"):
        TINY.with_(router_bias_update_rate=-1.0)
    cfg = TINY.with_(router_bias_update_rate=1e-2)
    assert MoETransformerConfig.from_dict(cfg.to_dict()) == cfg
    result = train_moe(cfg, 6, out_dir=tmp_path, corpus=corpus, eval_every=3, **TRAIN_KW)
    biases = {k: v for k, v in result.model.state_dict().items() if k.endswith("expert_bias")}
    assert len(biases) == len(cfg.moe_layer_indices)
    assert all(v.abs().sum() > 0 for v in biases.values())  # updated after the steps
    state, _ = load_checkpoint(tmp_path)
    for k, v in biases.items():
        assert torch.equal(state["model"][k], v)


def test_evaluate_at_another_capacity_factor_leaves_the_model_as_trained(corpus) -> None:  # type: ignore[no-untyped-def]
    """Routing health of a router trained without capacity is measured at capacity 1.25 (or
    any other), and the model routes as it was trained afterwards, also after a bad value."""
    from agentos.tools.moe.train import evaluate

    torch.manual_seed(0)
    model = MoETransformer(TINY.with_(num_experts=8, top_k=1, capacity_factor=None))
    as_trained = evaluate(model, corpus.val, 4, 32, 2)
    tight = evaluate(model, corpus.val, 4, 32, 2, capacity_factor=0.5)
    assert as_trained["routing"]["drop_rate"] == 0.0
    assert tight["routing"]["drop_rate"] >= 0.5  # capacity for half the tokens at most
    assert tight["loss"] != as_trained["loss"]  # dropped tokens skip their FFN
    with pytest.raises(ValueError, match="capacity_factor must be"):
        evaluate(model, corpus.val, 4, 32, 2, capacity_factor=-1.0)
    routers = [m for m in model.modules() if hasattr(m, "expert_bias")]
    assert routers and all(r.config.capacity_factor is None for r in routers)
    assert evaluate(model, corpus.val, 4, 32, 2) == as_trained
