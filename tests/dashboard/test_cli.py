"""`agentos dashboard` on the command line: its options and its errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentos.cli import app
from agentos.dashboard import bind
from agentos.errors import UserError


def test_a_port_in_use_is_a_user_error_that_names_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", "--port", str(port)])
    assert isinstance(result.exception, UserError)
    message = str(result.exception)
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert "pick a free one with --port" in message


def test_a_free_port_binds_and_bad_addresses_are_user_errors() -> None:
    sock = bind("127.0.0.1", 0)  # the control case: a free port listens
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
    with pytest.raises(UserError, match="--port 70000 is not a TCP port"):
        bind("127.0.0.1", 70000)
    with pytest.raises(UserError, match="--host 'no-such-host.invalid' is not an address here"):
        bind("no-such-host.invalid", 0)
    with pytest.raises(UserError, match="--host '192.0.2.1' is not an address of this machine"):
        bind("192.0.2.1", 0)


def test_help_names_port_and_host() -> None:
    from agentos._cli_dashboard import _PORT
    from agentos.dashboard import DEFAULT_PORT

    assert _PORT == DEFAULT_PORT
    result = CliRunner().invoke(app, ["dashboard", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--port" in result.output and "--host" in result.output
    assert "there is no login" in result.output


def test_ctrl_c_stops_it_while_a_browser_listens_for_events(tmp_path: Path) -> None:
    import signal
    import urllib.request

    from tests.services import DashboardServer

    server = DashboardServer(tmp_path)
    server.start()
    try:
        stream = urllib.request.urlopen(f"{server.url}/api/events", timeout=10)
        assert stream.readline().strip() == b"event: hello"
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(timeout=10) == 0
        stream.close()
    finally:
        server.stop()
    log = (tmp_path / "dashboard.log").read_text()
    assert "Traceback" not in log and "ERROR" not in log, log


def test_without_starlette_the_command_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m.startswith(("agentos.dashboard", "starlette"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["dashboard", "--port", "0"])
    assert isinstance(result.exception, UserError)
    assert 'pip install "agentos-kit[dashboard]"' in str(result.exception)
