"""The attack suite: each attack is contained, reported in the result, and leaves the host as it
was; where it matters, a control case shows the same thing done outside the sandbox succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from agentos.sandbox import SANDBOX_UID, Limits, run, run_python_code
from tests.sandbox.conftest import LoopbackServer, host_processes_with


def _py(code: str, workspace: Path, **limits: object) -> object:
    return run_python_code(textwrap.dedent(code), workspace, limits=Limits(**limits))  # type: ignore[arg-type]


def test_result_reports_every_namespace_and_the_unprivileged_uid(workspace: Path) -> None:
    result = run_python_code("import os; print(os.getuid())", workspace)
    assert result.ok, result.stderr
    iso = result.isolation
    assert iso.mode == "bwrap"
    assert (iso.user_namespace, iso.pid_namespace, iso.network_namespace, iso.ipc_namespace,
            iso.uts_namespace, iso.mount_namespace) == (True,) * 6
    assert iso.uid == (SANDBOX_UID if os.geteuid() == 0 else os.getuid())
    assert iso.uid != 0
    assert (iso.cgroup is None) == bool(iso.cgroup_note)
    assert result.stdout.strip() == str(SANDBOX_UID)  # the uid inside the user namespace
    assert "bwrap: user, pid, network, ipc, uts, mount namespaces" in iso.summary()


def test_fork_bomb_is_capped_and_leaves_nothing_behind(workspace: Path) -> None:
    marker = f"bomb_{uuid.uuid4().hex}.py"
    code = textwrap.dedent("""
        import os, time
        forked = 0
        while True:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(600)
                os._exit(0)
            forked += 1
        print(forked, flush=True)
        time.sleep(600)
    """)
    result = run_python_code(code, workspace, filename=marker,
                             limits=Limits(processes=16, timeout_s=4))
    forked = int(result.stdout.split()[0])
    assert 1 <= forked < 16  # it could fork (control) but not past the process limit
    assert result.timed_out and result.killed_by == "timeout" and result.returncode is None
    assert host_processes_with(marker) == []  # the whole tree died with the sandbox
    assert subprocess.run(["true"]).returncode == 0  # the host still forks


def test_memory_bomb_fails_inside_while_a_modest_allocation_works(workspace: Path) -> None:
    result = _py("""
        small = bytearray(64 << 20)
        print("64 MiB ok", flush=True)
        try:
            big = bytearray(4 << 30)
        except MemoryError:
            print("4 GiB refused")
    """, workspace, memory_mb=512)
    assert result.ok, result.stderr
    assert result.stdout.split("\n")[:2] == ["64 MiB ok", "4 GiB refused"]


def test_cpu_loop_is_ended_by_the_cpu_limit(workspace: Path) -> None:
    result = _py("while True: pass", workspace, cpu_s=1, timeout_s=30)
    assert result.killed_by == "cpu" and result.signal == "SIGXCPU"
    assert not result.timed_out and result.returncode == 128 + 24


def test_code_that_never_ends_is_killed_at_the_timeout_with_its_children(workspace: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6}.{uuid.uuid4().int % 10**6}"
    result = _py(f"""
        import os, subprocess, time
        subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
        print("started", flush=True)
        time.sleep(600)
    """, workspace, timeout_s=2)
    assert result.stdout.strip() == "started"
    assert result.timed_out and result.killed_by == "timeout" and result.returncode is None
    assert host_processes_with(marker) == []


def test_disk_fill_stops_at_the_file_size_limit(workspace: Path) -> None:
    result = _py("""
        chunk = b"x" * (1 << 20)
        with open("big.bin", "wb") as f:
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError as error:
                print(error.errno)
    """, workspace, file_mb=8)
    assert result.stdout.strip() == "27"  # EFBIG: File too large
    assert (workspace / "big.bin").stat().st_size == 8 << 20


def test_disk_fill_with_many_files_is_killed_at_the_workspace_limit(workspace: Path) -> None:
    result = _py("""
        chunk = b"x" * (1 << 20)
        i = 0
        while True:
            with open(f"f{i}.bin", "wb") as f:
                f.write(chunk * 4)
            i += 1
    """, workspace, file_mb=4, disk_mb=32, timeout_s=60)
    assert result.killed_by == "disk" and result.returncode is None
    assert not result.timed_out


def test_private_tmp_is_capped(workspace: Path) -> None:
    result = _py("""
        import errno
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(b"x" * (1 << 20))
                    f.flush()
        except OSError as error:
            print(errno.errorcode[error.errno])
    """, workspace, tmp_mb=4)
    assert result.stdout.strip() == "ENOSPC"


def test_writing_outside_the_workspace_fails_and_the_workspace_is_writable(
    workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    targets = ["/etc/evil", "/usr/evil", "/evil", "/root/evil", str(outside),
               f"{sys.prefix}/evil", "/workspace/../evil"]
    result = _py(f"""
        for path in {targets!r}:
            try:
                open(path, "w").write("pwned")
                print("WROTE", path)
            except OSError as error:
                print("refused", path, type(error).__name__)
        open("/workspace/inside.txt", "w").write("ok")
    """, workspace)
    assert result.ok, result.stderr
    assert "WROTE" not in result.stdout
    assert result.stdout.count("refused") == len(targets)
    assert (workspace / "inside.txt").read_text() == "ok"  # control: the workspace is writable
    assert not outside.exists() and not Path(f"{sys.prefix}/evil").exists()


def test_symlink_in_the_workspace_does_not_reach_outside(workspace: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (workspace / "link.txt").symlink_to(secret)
    (workspace / "dirlink").symlink_to(tmp_path)
    result = _py("""
        for path in ("link.txt", "dirlink/secret.txt"):
            try:
                print("READ", open(path).read())
            except OSError as error:
                print("refused", type(error).__name__)
        try:
            open("link.txt", "w").write("overwritten")
        except OSError as error:
            print("refused", type(error).__name__)
    """, workspace)
    assert "READ" not in result.stdout and result.stdout.count("refused") == 3, result.stdout
    assert secret.read_text() == "host secret"
    assert (workspace / "link.txt").read_text() == "host secret"  # control: on the host it resolves
    assert (workspace / "link.txt").is_symlink() and secret.stat().st_uid == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a file only root can read needs root")
def test_root_only_file_is_unreadable_even_when_bound_into_the_sandbox(
    workspace: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.txt").write_text("root only")
    (data / "secret.txt").chmod(0o600)
    (data / "public.txt").write_text("anyone")
    data.chmod(0o755)
    result = run(["python", "-c", textwrap.dedent(f"""
        for name in ("public.txt", "secret.txt"):
            try:
                print(name, open("{data}/" + name).read())
            except OSError as error:
                print(name, type(error).__name__)
        try:
            open("/etc/shadow")
        except OSError as error:
            print("shadow", type(error).__name__)
    """)], workspace, ro_binds=[data])
    lines = result.stdout.splitlines()
    assert lines == ["public.txt anyone", "secret.txt PermissionError",
                     "shadow FileNotFoundError"], result.stderr
    assert (data / "secret.txt").read_text() == "root only"  # control: root on the host reads it


def test_home_ssh_and_the_data_dir_are_not_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_ed25519"
    key.write_text("FAKE PRIVATE KEY")
    data_dir = tmp_path / "data"
    workspace = data_dir / "workspaces" / "run-1"
    workspace.mkdir(parents=True)
    (data_dir / "runs.sqlite").write_text("run store")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(data_dir))
    targets = [str(key), str(data_dir / "runs.sqlite"), "../../runs.sqlite", "/root/.ssh",
               os.path.expanduser("~root/.ssh/authorized_keys")]
    code = f"""
        import os
        for path in {targets!r}:
            try:
                print("READ", path, open(path).read() if os.path.isfile(path) else os.listdir(path))
            except OSError as error:
                print("refused", type(error).__name__)
    """
    result = _py(code, workspace)
    assert "READ" not in result.stdout and result.stdout.count("refused") == len(targets)
    control = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=workspace,
                             capture_output=True, text=True)
    assert f"READ {key} FAKE PRIVATE KEY" in control.stdout
    assert "READ ../../runs.sqlite run store" in control.stdout


def test_parent_secrets_are_not_in_the_environment_or_in_proc(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-4242")
    monkeypatch.setenv("AGENTOS_MODEL", "secret-model-4242")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret-4242")
    # A host process whose /proc/<pid>/environ holds the secret (putenv does not change the
    # parent's own /proc/<pid>/environ, so the secret is put into a fresh process's).
    holder = subprocess.Popen(["sleep", "120"], env={**os.environ, "SECRET_IN_PROC": "4242"})
    try:
        code = f"""
            import os
            print("env", any("4242" in v for v in os.environ.values()))
            for pid in ({os.getpid()}, {holder.pid}):
                try:
                    print("proc", "4242" in open(f"/proc/{{pid}}/environ").read())
                except OSError as error:
                    print("proc", type(error).__name__)
            found = False
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    found |= "4242" in open(f"/proc/{{pid}}/environ").read()
                except OSError:
                    pass
            print("any", found)
        """
        result = _py(code, workspace)
        assert result.stdout.split() == ["env", "False", "proc", "FileNotFoundError",
                                         "proc", "FileNotFoundError", "any", "False"]
        control = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                                 capture_output=True, text=True)
        assert control.stdout.split()[:2] == ["env", "True"]
        assert control.stdout.split()[4:6] == ["proc", "True"]
    finally:
        holder.kill()
        holder.wait()


def test_host_processes_cannot_be_signalled(
    workspace: Path, host_sleeper: subprocess.Popen[bytes]
) -> None:
    result = _py(f"""
        import os, signal
        try:
            os.kill({host_sleeper.pid}, signal.SIGKILL)
            print("killed", flush=True)
        except OSError as error:
            print(type(error).__name__, flush=True)
        try:
            os.kill(-1, signal.SIGKILL)  # everything this uid may signal
        except OSError as error:
            print(type(error).__name__)
    """, workspace)
    assert result.stdout.split()[0] == "ProcessLookupError"
    assert host_sleeper.poll() is None  # still running
    control = subprocess.run(["kill", "-KILL", str(host_sleeper.pid)])
    assert control.returncode == 0 and host_sleeper.wait(timeout=5) == -9


def test_a_tcp_server_on_the_host_loopback_is_unreachable(
    workspace: Path, loopback_server: LoopbackServer
) -> None:
    code = f"""
        import socket
        try:
            s = socket.create_connection(("127.0.0.1", {loopback_server.port}), timeout=3)
            print("connected", s.recv(100).decode().strip())
        except OSError as error:
            print("unreachable", type(error).__name__)
    """
    result = _py(code, workspace)
    assert result.stdout.startswith("unreachable"), result.stdout
    assert result.network_isolated
    assert loopback_server.accepted == []
    control = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                             text=True, timeout=30)
    assert control.stdout.strip() == "connected hello from the host"
    assert len(loopback_server.accepted) == 1


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood_is_cut_and_killed(workspace: Path, stream: str) -> None:
    result = _py(f"""
        import sys
        line = "x" * 9999 + "\\n"
        while True:
            sys.{stream}.write(line)
    """, workspace, output_bytes=100_000, timeout_s=30)
    assert result.killed_by == "output" and result.output_truncated and result.returncode is None
    assert len(getattr(result, stream)) == 100_000


def test_a_crashing_interpreter_is_a_result(workspace: Path) -> None:
    result = _py("import ctypes; ctypes.string_at(0)", workspace)
    assert result.signal == "SIGSEGV" and result.returncode == 128 + 11
    assert result.killed_by is None and not result.ok
