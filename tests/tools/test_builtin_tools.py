from __future__ import annotations

import subprocess
import sys

import pytest

from agentos.errors import ToolRetry, UserError
from agentos.tools.calculator import evaluate
from agentos.tools.code import make_run_python, run_python
from tests.sandbox.conftest import LoopbackServer, loopback_server  # noqa: F401 (fixture)


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
    assert out["timed_out"] is True and out["returncode"] is None and out["killed_by"] == "timeout"


def test_run_python_has_no_network_and_a_scrubbed_environment(
    monkeypatch: pytest.MonkeyPatch, loopback_server: LoopbackServer
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    code = (
        "import os, socket\nprint('OPENAI_API_KEY' in os.environ)\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {loopback_server.port}), timeout=2)\n"
        "    print('connected')\n"
        "except OSError as e:\n    print('unreachable')\n"
    )
    out = run_python(code=code)
    assert out["stdout"].split() == ["False", "unreachable"], out["stderr"]
    assert loopback_server.accepted == []  # the server on the host loopback saw nothing
    assert out["isolation"]["network_namespace"] is True
    control = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert control.stdout.split() == ["True", "connected"] and len(loopback_server.accepted) == 1


def test_run_python_returns_the_isolation_and_its_description_says_it() -> None:
    out = run_python(code="print(1)")
    iso = out["isolation"]
    assert iso["mode"] == "bwrap" and iso["uid"] != 0 and iso["user_namespace"]
    assert iso["summary"].startswith("bwrap: user, pid, network, ipc, uts, mount namespaces")
    assert "no network" in run_python.description and "bubblewrap" in run_python.description


def test_the_weaker_run_python_says_so_to_the_model_and_in_its_result() -> None:
    weak = make_run_python("rlimits-only")
    assert weak.name == "run_python" and "WARNING, weak isolation" in weak.description
    assert "can use the network" in weak.description
    out = weak(code="print(2)")
    assert out["stdout"].strip() == "2" and out["isolation"]["mode"] == "rlimits-only"
    assert out["isolation"]["network_namespace"] is False
    with pytest.raises(UserError, match="unknown sandbox isolation"):
        make_run_python("none")
