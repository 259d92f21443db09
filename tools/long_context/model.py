"""Loading the language model the long-context tool runs: local GGUF files through transformers.

:func:`load_gguf_model` loads a local GGUF file (e.g. Qwen2.5-Coder-0.5B, dequantised to float32)
with transformers, offline, with agentos' attention implementations registered.
:class:`ModelLoader` is what :func:`agentos.tools.long_context.analyse_document` takes: something
picklable that builds the tokenizer and the model in each process that needs them;
:class:`GGUFLoader` is the one for a GGUF file.

transformers is imported inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentos.tools.long_context.attention import register_attention

__all__ = ["GGUFLoader", "ModelLoader", "Tokenize", "load_gguf_model"]

# text -> (token ids, (start, end) character offsets of each token)
Tokenize = Callable[[str], tuple[list[int], list[tuple[int, int]]]]


class ModelLoader(Protocol):
    """Builds the tokenizer and the model; must be picklable (it is sent to ring ranks)."""

    def tokenizer(self) -> Tokenize: ...

    def model(self) -> Any: ...


def load_gguf_model(path: str | Path, attn_implementation: str = "sdpa") -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local GGUF file, float32, eval mode, no network.

    Raises:
        FileNotFoundError: the file does not exist (install it with the model catalogue).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF model at {path}; install it first (see ~/.agentos/models/)")
    register_attention()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, attn_implementation=attn_implementation
    )
    return model.eval(), tokenizer


@dataclass(frozen=True)
class GGUFLoader:
    """A local GGUF file (catalogue name resolved by the caller), loaded with transformers."""

    path: str

    def tokenizer(self) -> Tokenize:
        from transformers import AutoTokenizer

        path = Path(self.path)
        return _hf_tokenize(AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name))

    def model(self) -> Any:
        return load_gguf_model(self.path)[0]


def _hf_tokenize(tokenizer: Any) -> Tokenize:
    def tokenize(text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    return tokenize
