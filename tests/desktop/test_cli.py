"""`agentos desktop run` and `agentos runs replay` as a user runs them: real processes, a real
Xvfb started by the command, an OpenAI-compatible HTTP model with queued replies."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.services import xvfb_or_fail

pytestmark = pytest.mark.desktop


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def _agentos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentos", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **env}, timeout=180,
                          stdin=subprocess.DEVNULL)


def _env(fake: FakeOpenAI, tmp_path: Path) -> dict[str, str]:
    return {"AGENTOS_DATA_DIR": str(tmp_path / "data"), "AGENTOS_MODEL": "openai/fake-model",
            "OPENAI_API_BASE": fake.base_url, "OPENAI_API_KEY": "sk-test"}


def _call(name: str, **arguments: object) -> dict[str, object]:
    return {"id": f"c-{name}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


def test_desktop_run_then_runs_show_and_replay(fake: FakeOpenAI, tmp_path: Path) -> None:
    xvfb_or_fail()
    fake.queue(Reply(tool_calls=[_call("launch", program="galculator")]),
               Reply(tool_calls=[_call("type_text", text="12*34=", expect="408")]),
               "12 x 34 = 408")
    env = _env(fake, tmp_path)
    out = _agentos("desktop", "run", "compute 12x34 in galculator", "--yes", "--json", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "succeeded" and result["answer"] == "12 x 34 = 408"
    assert result["grounding"] == "atspi+ocr+windows"  # AT-SPI is on by default
    assert [(a["action"], a["decision"], a["outcome"], a["verified"]) for a in result["actions"]] == [
        ("launch", "confirmed", "done", True), ("type_text", "allowed", "done", True)]
    # the model got the screen as untrusted data after the launch
    assert '<screen untrusted=\\"true\\">' in json.dumps(fake.requests[1]["messages"][-1])

    shown = _agentos("runs", "show", result["run_id"], env=env)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"tool\W+launch\W+ok", shown.stdout) and re.search(r"tool\W+type_text\W+ok", shown.stdout)

    replay = _agentos("runs", "replay", result["run_id"], env=env)
    assert replay.returncode == 0, replay.stderr
    page = Path(replay.stdout.strip())
    assert page == Path(result["record_dir"]) / "replay.html"
    html = page.read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 4 and all((page.parent / src).is_file() for src in images)
    assert "launch" in html and "12*34=" in html


def test_without_a_terminal_or_yes_risky_actions_are_refused_and_dry_run_plans_them(
    fake: FakeOpenAI, tmp_path: Path,
) -> None:
    xvfb_or_fail()
    env = _env(fake, tmp_path)
    fake.queue(Reply(tool_calls=[_call("launch", program="mousepad")]), "could not launch")
    out = _agentos("desktop", "run", "open mousepad", "--json", env=env)
    assert out.returncode == 0, out.stderr
    (action,) = json.loads(out.stdout)["actions"]
    assert (action["decision"], action["outcome"]) == ("declined", "refused")
    assert "run with --yes" in json.dumps(fake.requests[1]["messages"][-1])

    fake.queue(Reply(tool_calls=[_call("launch", program="mousepad")]), "planned")
    out = _agentos("desktop", "run", "open mousepad", "--dry-run", "--json", env=env)
    assert out.returncode == 0, out.stderr
    (action,) = json.loads(out.stdout)["actions"]
    assert (action["decision"], action["outcome"]) == ("planned", "planned")


def test_bad_input_exits_2_with_the_fix(tmp_path: Path) -> None:
    env = {"AGENTOS_DATA_DIR": str(tmp_path / "data")}
    out = _agentos("desktop", "run", "x", "--allow", "no-such-program-xyz", env=env)
    assert out.returncode == 2 and "not installed" in out.stderr
    out = _agentos("desktop", "run", "x", "--real-display", env={**env, "DISPLAY": ":987"})
    assert out.returncode == 2 and "no X server answers at DISPLAY=:987" in out.stderr
    assert "acting on your screen" not in out.stderr  # failed before the countdown
    out = _agentos("runs", "replay", "nope", env=env)
    assert out.returncode == 2 and "agentos runs list" in out.stderr


def test_ctrl_c_stops_the_run_and_cleans_up_the_display_and_programs(
    fake: FakeOpenAI, tmp_path: Path,
) -> None:
    import glob
    import signal
    import time

    xvfb_or_fail()
    fake.queue(Reply(tool_calls=[_call("launch", program="galculator")]),
               Reply(content="never sent", delay=60))
    before = set(glob.glob("/tmp/agentos-xvfb-*"))
    proc = subprocess.Popen([sys.executable, "-m", "agentos", "desktop", "run", "use galculator",
                             "--yes"], env={**os.environ, **_env(fake, tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(fake.requests) < 2:  # the launch is done and the model is "thinking"
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    (journal,) = glob.glob(str(tmp_path / "data" / "desktop" / "*" / "actions.jsonl"))
    started = json.loads(Path(journal).read_text().splitlines()[0])
    pid = int(re.search(r"pid (\d+)", started["note"]).group(1))  # type: ignore[union-attr]
    assert Path(f"/proc/{pid}").exists()
    ours = set(glob.glob("/tmp/agentos-xvfb-*")) - before
    assert len(ours) == 1

    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped by Ctrl-C" in stderr
    assert not Path(f"/proc/{pid}").exists()
    assert not any(Path(d).exists() for d in ours)


def test_desktop_run_no_atspi_grounds_on_ocr_and_windows_only(fake: FakeOpenAI, tmp_path: Path) -> None:
    xvfb_or_fail()
    fake.queue(Reply(tool_calls=[_call("launch", program="galculator")]), "opened")
    out = _agentos("desktop", "run", "open galculator", "--yes", "--json", "--no-atspi",
                   env=_env(fake, tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["grounding"] == "ocr+windows"
    assert "toggle button" not in json.dumps(fake.requests[1]["messages"][-1])
