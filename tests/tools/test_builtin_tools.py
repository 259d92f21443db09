from __future__ import annotations

import pytest

from agentos.errors import ToolRetry
from agentos.tools.calculator import evaluate
from agentos.tools.code import run_python


@pytest.mark.parametrize(("expr", "value"), [("2+3*4", 14), ("(1+2)**3", 27), ("sqrt(81)/3", 3.0),
                                             ("-7 // 2", -4), ("max(3, 9, 4)", 9)])
def test_calculator(expr: str, value: float) -> None:
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os')", "1/0", "2**100000", "open('x')", "1 +"])
def test_calculator_refuses_non_arithmetic_with_a_reason(expr: str) -> None:
    with pytest.raises(ToolRetry):
        evaluate(expr)


def test_run_python_returns_output_and_errors() -> None:
    ok = run_python(code="print(sum(range(10)))")
    assert ok["returncode"] == 0 and ok["stdout"].strip() == "45"
    bad = run_python(code="raise SystemExit('boom')")
    assert bad["returncode"] == 1 and "boom" in bad["stderr"]


def test_run_python_is_killed_at_its_timeout() -> None:
    out = run_python(code="while True: pass", timeout_s=1)
    assert out["timed_out"] is True and out["returncode"] is None


def test_run_python_has_no_network_and_a_scrubbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    code = (
        "import os, socket\nprint('OPENAI_API_KEY' in os.environ)\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except OSError as e:\n    print(type(e).__name__)\n"
    )
    out = run_python(code=code)
    lines = out["stdout"].split()
    assert lines[0] == "False"
    assert lines[1] in {"OSError", "ConnectionRefusedError"}  # no loopback in a fresh netns
