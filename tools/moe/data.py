"""The training corpus: Python standard library sources on disk, as bytes.

Files are ordered by a hash of their relative path (a stable shuffle, so a byte budget samples the
whole library rather than its first packages) and every ``round(1 / val_fraction)``-th file goes
to validation: the split is the same on every machine and run, and no file is in both.

Legend:
    B  batch size
    T  sequence length
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["Corpus", "load_stdlib_corpus", "sample_batch"]


@dataclass
class Corpus:
    """Train and validation byte streams (uint8 tensors) and where they came from."""

    train: Tensor  # [n_train] uint8
    val: Tensor  # [n_val] uint8
    root: str
    n_files: int


def load_stdlib_corpus(
    max_bytes: int = 8_000_000,
    val_fraction: float = 0.05,
    root: str | Path | None = None,
) -> Corpus:
    """Read ``*.py`` files under the standard library (or ``root``) in path-hash order.

    Args:
        max_bytes: stop reading after about this many bytes in total (more if needed to put
            at least one file in each split).
        val_fraction: share of files (by path hash) that go to validation.
        root: directory to read instead of ``sysconfig.get_paths()["stdlib"]``.

    Raises:
        ValueError: ``val_fraction`` is not in (0, 1) or no sources were found under ``root``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    base = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    def key(p: Path) -> str:
        return hashlib.sha256(p.relative_to(base).as_posix().encode()).hexdigest()

    files = sorted((p for p in base.rglob("*.py") if "site-packages" not in p.parts), key=key)
    every = max(2, round(1 / val_fraction))
    train: list[bytes] = []
    val: list[bytes] = []
    total, n = 0, 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # unreadable file (permissions, broken link): not part of the corpus
        (val if n % every == every - 1 else train).append(data + b"\n")
        total += len(data)
        n += 1
        if total >= max_bytes and train and val:
            break
    if not train or not val:
        raise ValueError(f"no Python sources for both splits under {base}; pass another root")
    return Corpus(
        train=torch.frombuffer(bytearray(b"".join(train)), dtype=torch.uint8),
        val=torch.frombuffer(bytearray(b"".join(val)), dtype=torch.uint8),
        root=str(base),
        n_files=n,
    )


def sample_batch(
    data: Tensor, batch_size: int, seq_len: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Random windows of ``data``: inputs and next-byte targets, both ``[B, T]`` int64.

    Raises:
        ValueError: ``data`` is shorter than ``seq_len + 1``.
    """
    if data.numel() <= seq_len:
        raise ValueError(f"corpus split has {data.numel()} bytes, need more than {seq_len}")
    starts = torch.randint(0, data.numel() - seq_len - 1, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]  # [B, T+1]
    window = data[idx].long()  # [B, T+1]
    return window[:, :-1], window[:, 1:]
