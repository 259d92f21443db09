"""The MoE agent tools, called the way the kernel calls them (validated arguments)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from agentos.errors import ToolRetry
from agentos.tools.moe.tools import moe, train_moe


def test_train_then_score_and_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path))
    first = asyncio.run(train_moe.acall({"name": "t", "preset": "tiny", "steps": 6}))
    assert first["step"] == 6 and first["val_loss"] > 0 and first["resumed_from_step"] == 0
    again = asyncio.run(train_moe.acall({"name": "t", "preset": "tiny", "steps": 8}))
    assert again["resumed_from_step"] == 6 and again["step"] == 8
    scored = asyncio.run(moe.acall({"action": "score", "text": "def f(x):\n    return x\n", "name": "t"}))
    assert scored["bits_per_byte"] > 0 and scored["routing"]
    out = asyncio.run(moe.acall({"action": "generate", "text": "import ", "name": "t",
                                 "max_new_tokens": 8}))
    assert isinstance(out["text"], str)


def test_bad_requests_are_corrections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path))
    with pytest.raises(ToolRetry, match="train one first"):
        asyncio.run(moe.acall({"action": "score", "text": "abc", "name": "missing"}))
    with pytest.raises(ToolRetry, match="steps must be between"):
        asyncio.run(train_moe.acall({"steps": 0}))
    with pytest.raises(ToolRetry, match="may only use"):
        asyncio.run(train_moe.acall({"name": "../etc", "steps": 1}))
    (tmp_path / "moe" / "broken").mkdir(parents=True)
    (tmp_path / "moe" / "broken" / "model.pt").write_bytes(b"garbage")
    with pytest.raises(ToolRetry, match="cannot be used"):
        asyncio.run(moe.acall({"action": "score", "text": "abc", "name": "broken"}))


def test_importing_the_tools_does_not_import_torch() -> None:
    code = "import sys, agentos.tools.moe.tools; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
