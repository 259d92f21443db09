"""GGUF metadata, and the engine options built on it: context size, KV cache, speculative drafts."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from agentos.errors import UserError
from agentos.runtime.llm.engine import EngineConfig, build_params, context_size
from agentos.runtime.llm.gguf_meta import kv_bytes_per_token, read_gguf
from tests.markers import requires_module


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_gguf(path: Path, *, context: int = 32768, vocab: tuple[str, ...] = ("a", "b", "<eos>"),
               layers: int = 28, heads: int = 12, heads_kv: int = 2, embd: int = 1536) -> Path:
    """A GGUF header with a Qwen2-like shape and no tensors (enough for the metadata)."""
    kv = [
        ("general.architecture", 8, _string("qwen2")),
        ("qwen2.context_length", 4, struct.pack("<I", context)),
        ("qwen2.block_count", 4, struct.pack("<I", layers)),
        ("qwen2.embedding_length", 4, struct.pack("<I", embd)),
        ("qwen2.attention.head_count", 4, struct.pack("<I", heads)),
        ("qwen2.attention.head_count_kv", 4, struct.pack("<I", heads_kv)),
        ("qwen2.rope.freq_base", 6, struct.pack("<f", 1e6)),
        ("tokenizer.ggml.model", 8, _string("gpt2")),
        ("tokenizer.ggml.tokens", 9,
         struct.pack("<IQ", 8, len(vocab)) + b"".join(_string(t) for t in vocab)),
        ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(vocab)) + b"\1\0\0\0" * len(vocab)),
        ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", len(vocab) - 1)),
    ]  # fmt: skip
    body = b"".join(_string(k) + struct.pack("<I", t) + v for k, t, v in kv)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + body)
    return path


def test_metadata_gives_context_and_kv_shape(tmp_path: Path) -> None:
    info = read_gguf(write_gguf(tmp_path / "m.gguf", context=16384))
    assert (info.architecture, info.context_length, info.n_layer) == ("qwen2", 16384, 28)
    assert (info.n_head, info.n_head_kv, info.key_length, info.value_length) == (12, 2, 128, 128)
    # Qwen2.5-1.5B: 28 layers x 2 KV heads x (128 + 128) x 2 bytes
    assert kv_bytes_per_token(info) == 28_672
    assert kv_bytes_per_token(info, "q8_0") == 28 * 2 * 256 * 34 // 32
    with pytest.raises(UserError, match="q8_0"):
        kv_bytes_per_token(info, "q3")


def test_tokenizer_fingerprint_tells_vocabularies_apart(tmp_path: Path) -> None:
    small = read_gguf(write_gguf(tmp_path / "s.gguf", layers=24, embd=896, heads=14))
    big = read_gguf(write_gguf(tmp_path / "b.gguf"))
    other = read_gguf(write_gguf(tmp_path / "o.gguf", vocab=("a", "c", "<eos>")))
    assert small.tokenizer == big.tokenizer  # another shape, the same tokens
    assert other.tokenizer != big.tokenizer


def test_not_a_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGML" + bytes(20))
    with pytest.raises(UserError, match="not a GGUF file"):
        read_gguf(bad)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(write_gguf(tmp_path / "full.gguf").read_bytes()[:60])
    with pytest.raises(UserError, match="truncated"):
        read_gguf(truncated)


def test_context_is_the_trained_one_capped_by_kv_memory(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "m.gguf", context=32768)
    # 32768 tokens x 28,672 bytes x 2 slots = 1,792 MiB
    assert context_size(model, EngineConfig(kv_memory_mib=4096)) == 32768
    capped = context_size(model, EngineConfig(kv_memory_mib=512))
    assert capped == 512 * 2**20 // (28_672 * 2) // 256 * 256 == 9216
    # a quantized cache fits about twice the tokens
    assert context_size(model, EngineConfig(kv_memory_mib=512, kv_cache_type="q8_0")) == 17408
    assert context_size(model, EngineConfig(n_ctx=1024, kv_memory_mib=16)) == 1024  # explicit wins
    with pytest.raises(UserError, match="does not fit"):
        context_size(model, EngineConfig(kv_memory_mib=16, n_parallel=8))


def test_a_draft_model_counts_against_the_kv_memory(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "m.gguf")
    draft = write_gguf(tmp_path / "d.gguf", layers=24, embd=896, heads=14)  # 12,288 bytes a token
    config = EngineConfig(kv_memory_mib=512, speculative="draft", draft_model=str(draft))
    assert context_size(model, config) == 512 * 2**20 // ((28_672 + 12_288) * 2) // 256 * 256


def test_engine_options_are_validated() -> None:
    for bad, match in [({"speculative": "eagle"}, "speculative"), ({"kv_cache_type": "q2"}, "kv_cache_type"),
                       ({"draft_max": 0}, "draft_max"), ({"cache_ram_mib": -1}, "cache_ram_mib"),
                       ({"n_ctx": 100}, "n_ctx"), ({"kv_memory_mib": 1}, "kv_memory_mib")]:
        with pytest.raises(UserError, match=match):
            EngineConfig(**bad)  # type: ignore[arg-type]


@requires_module("xllamacpp")
def test_parameters_for_speculation_kv_type_and_prompt_cache(tmp_path: Path) -> None:
    import xllamacpp as xl

    model = write_gguf(tmp_path / "m.gguf")
    draft = write_gguf(tmp_path / "d.gguf", layers=24, embd=896, heads=14)
    kinds = xl.common_speculative_type

    plain = build_params(model, EngineConfig(n_ctx=2048, n_parallel=2, speculative="off"))
    assert plain.n_ctx == 4096 and plain.cache_prompt and plain.cache_ram_mib == 1024
    assert list(plain.speculative.types) == [kinds.COMMON_SPECULATIVE_TYPE_NONE]
    default = build_params(model, EngineConfig(n_ctx=2048))
    assert list(default.speculative.types) == [kinds.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]

    ngram = build_params(model, EngineConfig(n_ctx=2048, speculative="ngram", draft_max=12))
    assert list(ngram.speculative.types) == [kinds.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
    assert ngram.speculative.ngram_simple.size_m == 12

    drafted = build_params(model, EngineConfig(n_ctx=2048, speculative="draft", draft_model=str(draft),
                                               kv_cache_type="q8_0"))
    assert list(drafted.speculative.types) == [kinds.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
    assert drafted.speculative.draft.mparams.path == str(draft)
    assert drafted.cache_type_k == drafted.cache_type_v == xl.ggml_type.GGML_TYPE_Q8_0
    assert drafted.speculative.draft.cache_type_k == xl.ggml_type.GGML_TYPE_Q8_0
    assert drafted.flash_attn_type == xl.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED


@requires_module("xllamacpp")
def test_a_draft_model_with_another_tokenizer_is_refused(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "m.gguf")
    stranger = write_gguf(tmp_path / "x.gguf", vocab=("x", "y", "</s>"))
    with pytest.raises(UserError, match="another tokenizer"):
        build_params(model, EngineConfig(n_ctx=2048, speculative="draft", draft_model=str(stranger)))


def test_default_engine_options_come_from_the_settings(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    from agentos.runtime.llm.engine import _settings_config

    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path))
    assert _settings_config() == EngineConfig()
    monkeypatch.setenv("AGENTOS_LOCAL_SPECULATIVE", "ngram")
    monkeypatch.setenv("AGENTOS_LOCAL_N_CTX", "8192")
    monkeypatch.setenv("AGENTOS_LOCAL_KV_CACHE_TYPE", "q8_0")
    assert _settings_config() == EngineConfig(n_ctx=8192, kv_cache_type="q8_0", speculative="ngram")


def test_a_model_cannot_draft_for_itself(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "m.gguf")
    with pytest.raises(UserError, match="cannot draft for itself"):
        context_size(model, EngineConfig(speculative="draft", draft_model=str(model)))
