"""The sandbox's API: results, stdin, imports beside the script, pytest inside, the named weaker
mode, and the refusal (with the fix) when bubblewrap cannot give its isolation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from agentos.errors import SandboxUnavailable, UserError
from agentos.sandbox import Limits, run, run_python_code
from tests.sandbox.conftest import LoopbackServer


def test_run_python_code_returns_output_exit_status_and_reads_stdin(workspace: Path) -> None:
    ok = run_python_code("print(input()[::-1])", workspace, stdin="abc\n")
    assert ok.ok and ok.stdout == "cba\n" and ok.stderr == "" and ok.killed_by is None
    bad = run_python_code("raise SystemExit('boom')", workspace)
    assert bad.returncode == 1 and "boom" in bad.stderr and not bad.ok


def test_the_script_can_import_modules_written_beside_it(workspace: Path) -> None:
    (workspace / "helper.py").write_text("VALUE = 41\n")
    result = run_python_code("import helper; print(helper.VALUE + 1)", workspace)
    assert result.stdout.strip() == "42", result.stderr


def test_pytest_runs_inside_the_sandbox(workspace: Path) -> None:
    (workspace / "solution.py").write_text("def add(a, b):\n    return a + b\n")
    (workspace / "test_solution.py").write_text(
        "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\n"
        "def test_wrong():\n    assert add(2, 2) == 5\n"
    )
    result = run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], workspace)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout


def test_run_is_general_and_sees_only_the_workspace(workspace: Path) -> None:
    (workspace / "data.txt").write_text("hello")
    result = run(["sh", "-c", "pwd; cat data.txt; echo; ls /"], workspace)
    lines = result.stdout.split("\n")
    assert lines[0] == "/workspace" and lines[1] == "hello"
    assert "home" not in lines[2:] and "root" in lines[2:]  # /root holds only the interpreter


def test_bad_arguments_are_user_errors(workspace: Path) -> None:
    with pytest.raises(UserError, match="unknown sandbox isolation 'none'"):
        run(["true"], workspace, isolation="none")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="argv is empty"):
        run([], workspace)
    with pytest.raises(UserError, match="must be > 0"):
        Limits(timeout_s=0)
    with pytest.raises(SandboxUnavailable, match="contains it"):
        run(["true"], Path.home())  # the workspace would expose the home dir


def _path_without_bwrap(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("setpriv", "true", "sh"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    return str(bin_dir)


def test_missing_bubblewrap_refuses_and_says_how_to_fix_it(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _path_without_bwrap(tmp_path))
    with pytest.raises(SandboxUnavailable) as caught:
        run_python_code("open('/workspace/ran', 'w')", workspace)
    message = str(caught.value)
    assert "bubblewrap" in message and "apt-get install bubblewrap" in message
    assert "system-packages.sh" in message and 'isolation="rlimits-only"' in message
    assert not (workspace / "ran").exists()


def test_bubblewrap_without_user_namespaces_refuses_and_names_the_sysctl(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = Path(_path_without_bwrap(tmp_path))
    fake = bin_dir / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the "
        "kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SandboxUnavailable) as caught:
        run_python_code("open('/workspace/ran', 'w')", workspace)
    assert "kernel.unprivileged_userns_clone=1" in str(caught.value)
    assert "No permissions to creating new namespace" in str(caught.value)
    assert not (workspace / "ran").exists()


def test_rlimits_only_runs_without_bubblewrap_and_says_what_it_lacks(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    loopback_server: LoopbackServer,
) -> None:
    monkeypatch.setenv("PATH", _path_without_bwrap(tmp_path))
    code = f"import socket; socket.create_connection(('127.0.0.1', {loopback_server.port})); print('reached')"
    result = run_python_code(code, workspace, isolation="rlimits-only",
                             limits=Limits(timeout_s=20))
    assert result.stdout.strip() == "reached" and len(loopback_server.accepted) == 1
    iso = result.isolation
    assert iso.mode == "rlimits-only" and not result.network_isolated
    assert not any((iso.user_namespace, iso.pid_namespace, iso.ipc_namespace, iso.uts_namespace,
                    iso.mount_namespace))
    assert iso.uid == os.getuid() and iso.summary().startswith("rlimits-only: no namespaces")
    slow = run_python_code("while True: pass", workspace, isolation="rlimits-only",
                           limits=Limits(timeout_s=1))
    assert slow.timed_out and slow.returncode is None  # the limits still hold


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="needs root (to become nobody) and a system python3")
def test_as_an_unprivileged_user_the_sandbox_still_isolates(
    loopback_server: LoopbackServer,
) -> None:
    """agentos run by a non-root user (here: nobody, with the system Python) gets one
    unprivileged bubblewrap; the attacks that need no root to set up fail there too."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:  # pytest's tmp_path is root-only
        _check_as_nobody(Path(tmp), loopback_server)


def _check_as_nobody(tmp_path: Path, loopback_server: LoopbackServer) -> None:
    tmp_path.chmod(0o755)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    os.chown(workspace, 65534, 65534)
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    secret.chmod(0o644)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    repo = Path(__file__).resolve().parents[2]
    code = textwrap.dedent(f"""
        import os, socket
        try:
            socket.create_connection(("127.0.0.1", {loopback_server.port}), timeout=3)
            print("connected")
        except OSError:
            print("unreachable")
        try:
            print(open({str(secret)!r}).read())
        except OSError as error:
            print(type(error).__name__)
        print(sorted(k for k in os.environ if "SECRET" in k))
    """)
    driver = textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(repo)!r}, {site!r}]
        from agentos.sandbox import run
        result = run([sys.executable, "-c", {code!r}], {str(workspace)!r})
        print(json.dumps({{"stdout": result.stdout, "stderr": result.stderr,
                          "iso": result.to_dict()["isolation"]}}))
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "MY_SECRET": "x"}
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
         driver], capture_output=True, text=True, env=env, timeout=60, cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["stdout"].split("\n")[:3] == ["unreachable", "FileNotFoundError", "[]"], out
    assert out["iso"]["uid"] == 65534 and out["iso"]["network_namespace"]
    assert out["iso"]["user_namespace"] and out["iso"]["pid_namespace"]
    assert loopback_server.accepted == []
    with open(secret) as f:  # control: the file is there and readable on the host
        assert f.read() == "host secret"


def test_an_interpreter_under_tmp_is_visible_inside_the_sandbox(tmp_path: Path) -> None:
    # The sandbox mounts a private /tmp; an interpreter prefix below /tmp (a venv in a checkout
    # cloned there, as CI may do) must be bound after it, not hidden by it.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv)], check=True)
    assert str(venv).startswith(tempfile.gettempdir())
    repo = Path(__file__).resolve().parents[2]
    script = (
        "import sys, tempfile; from pathlib import Path; from agentos.sandbox import run\n"
        "ws = Path(tempfile.mkdtemp()); r = run([sys.executable, '-c', 'print(6 * 7)'], ws)\n"
        "print(r.stdout.strip() or r.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.stdout.strip() == "42", out.stdout + out.stderr
