"""Byte-level tokenizer: token ids are the UTF-8 bytes of the text (vocabulary 256)."""

from __future__ import annotations

__all__ = ["ByteTokenizer"]


class ByteTokenizer:
    """Lossless for any text; decoding replaces invalid UTF-8 sequences with U+FFFD."""

    vocab_size: int = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        """Raises: ValueError: an id outside 0..255."""
        bad = [i for i in ids if not 0 <= i < 256]
        if bad:
            raise ValueError(f"byte token ids must be in 0..255, got {bad[:5]}")
        return bytes(ids).decode("utf-8", errors="replace")
