"""What a GGUF file says about its model: trained context, KV-cache shape, tokenizer.

:func:`read_gguf` reads only the file's metadata header (no tensors), skipping the large arrays
(the vocabulary, the merges) except to fingerprint the tokenizer, so it takes milliseconds. The
engine uses it to size the context (:func:`kv_bytes_per_token`) and to check that a draft model
for speculative decoding speaks the same tokens as the model it drafts for.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from agentos.errors import UserError

__all__ = ["GGUFInfo", "KV_CACHE_TYPES", "kv_bytes_per_token", "read_gguf"]

_MAGIC = b"GGUF"
# GGUF value types: struct format of the fixed-size ones; 8 is a string, 9 an array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
_TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                   "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id")  # fmt: skip

#: Bytes per cached element for each KV-cache type llama.cpp accepts (block size included).
KV_CACHE_TYPES: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


@dataclass(frozen=True)
class GGUFInfo:
    """The parts of a model's metadata agentos needs.

    Attributes:
        architecture: ``general.architecture``, e.g. ``qwen2``.
        context_length: the context the model was trained with (``<arch>.context_length``).
        n_layer, n_head, n_head_kv, n_embd: the transformer's shape.
        key_length, value_length: per-head K and V sizes (``n_embd / n_head`` unless stated).
        tokenizer: a sha256 over the tokenizer's kind, pre-tokenizer, vocabulary and BOS/EOS ids;
            two models with the same value tokenize every text the same way.
    """

    architecture: str
    context_length: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_embd: int
    key_length: int
    value_length: int
    tokenizer: str


class _Reader:
    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise UserError(f"{self.path} is truncated (GGUF header ends early); reinstall it")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def scalar(self, kind: int) -> int | float | bool:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]  # type: ignore[no-any-return]

    def string(self) -> str:
        (n,) = struct.unpack("<Q", self.take(8))
        return self.take(n).decode("utf-8", "replace")

    def value(self, kind: int, digest: hashlib._Hash | None) -> object:
        """One value; arrays are skipped (``None``), fed raw to ``digest`` when one is given."""
        if kind == _STRING:
            return self.string()
        if kind in _SCALARS:
            return self.scalar(kind)
        if kind != _ARRAY:
            raise UserError(f"{self.path}: unknown GGUF value type {kind}; is it a GGUF file?")
        start = self.pos
        (elem,) = struct.unpack("<I", self.take(4))
        (count,) = struct.unpack("<Q", self.take(8))
        if elem in _SCALARS:
            self.take(count * struct.calcsize(_SCALARS[elem]))
        elif elem == _STRING:
            for _ in range(count):
                (n,) = struct.unpack_from("<Q", self.buf, self.pos)
                self.pos += 8 + n
        else:
            for _ in range(count):
                self.value(elem, None)
        if digest is not None:
            digest.update(self.buf[start:self.pos])
        return None


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """The model metadata in the GGUF file at ``path``.

    Raises:
        UserError: the file is missing, not a GGUF file, truncated, or lacks the model's shape.
    """
    path = Path(path)
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Reader(buf, path))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read GGUF metadata from {path}: {exc}") from exc


def _parse(r: _Reader) -> GGUFInfo:
    if r.take(4) != _MAGIC:
        raise UserError(f"{r.path} is not a GGUF file (bad magic)")
    version = r.scalar(4)
    if version < 2:
        raise UserError(f"{r.path}: GGUF version {version} is too old; convert it again")
    r.scalar(10)  # tensor count
    n_kv = int(r.scalar(10))
    meta: dict[str, object] = {}
    digest = hashlib.sha256()
    for _ in range(n_kv):
        key = r.string()
        kind = int(r.scalar(4))
        tokenizer = key in _TOKENIZER_KEYS
        value = r.value(kind, digest if tokenizer else None)
        if tokenizer and value is not None:
            digest.update(f"{key}={value}".encode())
        meta[key] = value
    arch = str(meta.get("general.architecture", ""))

    def number(name: str, default: int | None = None) -> int:
        value = meta.get(f"{arch}.{name}", default)
        if not isinstance(value, int):
            raise UserError(f"{r.path}: the GGUF metadata has no {arch}.{name}")
        return value

    n_head = number("attention.head_count")
    n_embd = number("embedding_length")
    return GGUFInfo(
        architecture=arch,
        context_length=number("context_length"),
        n_layer=number("block_count"),
        n_head=n_head,
        n_head_kv=number("attention.head_count_kv", n_head),
        n_embd=n_embd,
        key_length=number("attention.key_length", n_embd // n_head),
        value_length=number("attention.value_length", n_embd // n_head),
        tokenizer=digest.hexdigest(),
    )


def kv_bytes_per_token(info: GGUFInfo, cache_type: str = "f16") -> int:
    """Bytes of KV cache one token of context takes (K and V, every layer).

    Raises:
        UserError: ``cache_type`` is not one of :data:`KV_CACHE_TYPES`.
    """
    if cache_type not in KV_CACHE_TYPES:
        raise UserError(f"kv cache type {cache_type!r} is not one of {', '.join(KV_CACHE_TYPES)}")
    per_layer = info.n_head_kv * (info.key_length + info.value_length)
    return int(info.n_layer * per_layer * KV_CACHE_TYPES[cache_type])
