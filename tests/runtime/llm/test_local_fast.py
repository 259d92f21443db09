"""LocalEngine, server and CLI behaviour that needs no model file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agentos.errors import UserError
from agentos.runtime.llm.engine import EngineConfig, LocalEngine, _tool_messages, get_engine
from agentos.runtime.llm.models import ModelCorrupt, ModelNotInstalled, UnknownModel
from agentos.runtime.llm.server import PortInUse, check_port, serve

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    },
}


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path))
    return tmp_path


def test_engine_errors_before_loading(empty_data_dir: Path) -> None:
    with pytest.raises(UnknownModel, match="Known models"):
        LocalEngine("gpt-17")
    with pytest.raises(ModelNotInstalled, match="agentos models install qwen2.5-coder-0.5b"):
        get_engine("qwen2.5-coder-0.5b")
    with pytest.raises(UserError, match="n_parallel"):
        EngineConfig(n_parallel=0)
    with pytest.raises(UserError, match="bad local engine option"):
        get_engine("qwen2.5-coder-0.5b", n_slots=3)


def test_tool_conversation_is_rewritten_for_json_calls() -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "add 2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
    ]
    out = _tool_messages(msgs, [ADD], None)
    assert out[0]["role"] == "system" and out[0]["content"].startswith("Be brief.")
    assert '{"name": "<tool name>"' in out[0]["content"] and "final_answer" in out[0]["content"]
    assert json.loads(out[2]["content"]) == {"name": "add", "arguments": {"a": 2}}
    assert out[3] == {"role": "tool", "content": "2"}
    forced = _tool_messages(msgs[1:2], [ADD], "add")
    assert forced[0]["role"] == "system" and "You must call the tool add" in forced[0]["content"]
    assert "final_answer" not in forced[0]["content"]


def test_port_in_use_is_reported_before_the_model_loads(empty_data_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use.*--port"):
            check_port("127.0.0.1", port)
        # the port check comes first: the model is not even looked up
        with pytest.raises(PortInUse):
            serve("no-such-model", port=port, block=False)
    with pytest.raises(UserError, match="between 1 and 65535"):
        check_port("127.0.0.1", 70000)


def test_serve_refuses_unknown_missing_and_corrupt_models(
    empty_data_dir: Path, free_port_local: int
) -> None:
    with pytest.raises(UnknownModel, match="qwen2.5-coder-1.5b \\(default\\)"):
        serve("no-such-model", port=free_port_local, block=False)
    with pytest.raises(ModelNotInstalled, match="agentos models install"):
        serve("qwen2.5-coder-0.5b", port=free_port_local, block=False)
    bad = empty_data_dir / "models" / "qwen2.5-coder-0.5b-instruct.gguf"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"GGUF" + b"\0" * 100)  # half-written
    with pytest.raises(ModelCorrupt, match="truncated"):
        serve("qwen2.5-coder-0.5b", port=free_port_local, block=False)


@pytest.fixture
def free_port_local() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_commands(empty_data_dir: Path) -> None:
    from typer.testing import CliRunner

    from agentos._cli_models import models_app

    runner = CliRunner()
    listed = runner.invoke(models_app, ["list"])
    assert listed.exit_code == 0 and "qwen2.5-coder-1.5b" in listed.output
    assert runner.invoke(models_app, ["verify"]).exit_code == 0  # nothing installed: nothing to do
    bad = empty_data_dir / "models" / "qwen2.5-coder-0.5b-instruct.gguf"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"GGUF")
    failed = runner.invoke(models_app, ["verify", "qwen2.5-coder-0.5b"])
    assert failed.exit_code == 1
    unknown = runner.invoke(models_app, ["install", "nope"])
    assert isinstance(unknown.exception, UnknownModel)


def test_cli_module_import_is_light() -> None:
    code = (
        "import sys, agentos._cli_models; "
        "heavy = [m for m in ('litellm', 'xllamacpp', 'openai', 'torch') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_replies_become_tool_calls_or_carry_a_correction() -> None:
    def result(text: str, finish: str = "stop") -> dict:
        return {"choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}]}

    ok = result('{"name": "add", "arguments": {"a": 2}}')
    LocalEngine._apply_tools(ok, [ADD])
    choice = ok["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"a": 2}

    final = result('{"final_answer": "2"}')
    LocalEngine._apply_tools(final, [ADD])
    assert final["choices"][0]["message"] == {"role": "assistant", "content": "2"}

    cut = result('{"name": "add", "arguments": {"a', "length")  # cut off by max_tokens
    LocalEngine._apply_tools(cut, [ADD])
    msg = cut["choices"][0]["message"]
    assert "tool_calls" not in msg and cut["choices"][0]["finish_reason"] == "length"
    assert msg["agentos_tool_error"].startswith("Your tool call could not be used")


def test_requests_are_schema_constrained_per_tool_choice() -> None:
    engine = LocalEngine.__new__(LocalEngine)  # request building needs no weights
    engine.config = EngineConfig()
    msgs = [{"role": "user", "content": "add 2"}]
    auto = engine._request(msgs, [ADD], "auto", {})
    schema = auto["response_format"]["json_schema"]["schema"]
    assert {"final_answer"} in [set(a.get("required", ())) for a in schema["anyOf"]]
    assert auto["temperature"] == engine.config.tool_temperature
    assert auto["max_tokens"] == engine.config.max_tokens
    required = engine._request(msgs, [ADD], "required", {"temperature": 0.5})
    assert required["response_format"]["json_schema"]["schema"]["properties"]["name"] == {"const": "add"}
    assert required["temperature"] == 0.5 and "final_answer" not in required["messages"][0]["content"]
    plain = engine._request(msgs, [ADD], "none", {})
    assert "response_format" not in plain and plain["messages"] == msgs
    with pytest.raises(UserError, match="bad tools or tool_choice"):
        engine._request(msgs, [ADD], {"type": "function", "function": {"name": "mul"}}, {})
    with pytest.raises(UserError, match="unsupported option"):
        engine._request(msgs, None, None, {"n_slots": 2})


class _EndlessServer:
    """xllamacpp's streaming contract: the callback gets each chunk; returning True cancels."""

    def __init__(self) -> None:
        self.sent = 0
        self.cancelled = False

    def handle_chat_completions(self, request: dict, callback) -> None:  # type: ignore[no-untyped-def]
        import time

        while self.sent < 10_000:
            self.sent += 1
            chunk = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
            if callback(chunk):
                self.cancelled = True
                return
            time.sleep(0.001)


def test_a_stream_whose_reader_stops_cancels_decoding_and_ends_its_thread() -> None:
    import threading

    engine = object.__new__(LocalEngine)  # no model: the fake server above decodes
    engine.config, engine.name, engine._closed = EngineConfig(), "fake", False
    engine._server = server = _EndlessServer()
    stream = engine.chat_stream([{"role": "user", "content": "go on forever"}])
    assert [next(stream)["choices"][0]["delta"]["content"] for _ in range(3)] == ["x", "x", "x"]
    stream.close()
    assert server.cancelled and server.sent < 10_000
    assert not [t for t in threading.enumerate() if t.name == "agentos-local-stream"]


def test_parallel_tool_calls_allow_a_list_of_calls() -> None:
    engine = LocalEngine.__new__(LocalEngine)  # request building needs no weights
    engine.config = EngineConfig()
    msgs = [{"role": "user", "content": "add 2 and add 3"}]
    one = engine._request(msgs, [ADD], "auto", {})
    assert all(a.get("type") != "array" for a in one["response_format"]["json_schema"]["schema"]["anyOf"])
    assert "JSON list" not in one["messages"][0]["content"]
    many = engine._request(msgs, [ADD], "auto", {"parallel_tool_calls": True})
    alternatives = many["response_format"]["json_schema"]["schema"]["anyOf"]
    assert any(a.get("type") == "array" for a in alternatives)
    assert "JSON list" in many["messages"][0]["content"] and "parallel_tool_calls" not in many
    engine._apply_tools(result := {"choices": [{"message": {"content": '[{"name": "add", "arguments": '
                                   '{"a": 2}}, {"name": "add", "arguments": {"a": 3}}]'}}]}, [ADD])
    calls = result["choices"][0]["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"a": 2}, {"a": 3}]
