"""Every script in examples/ runs here as users run it, against scripted LLMs where it needs one.

`test_every_example_is_tested` fails when an example is added without a test below.
"""

from __future__ import annotations

import importlib.util
import math
import re
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from agentos import Kernel, load_settings
from agentos.runtime.store import RunStore
from agentos.testing import FunctionLLM, call
from tests.fake_openai import FakeOpenAI, Reply

EXAMPLES = Path(__file__).parent.parent / "examples"
README = Path(__file__).parent.parent / "README.md"
TESTED = {"quickstart", "governed_agents", "moe_two_experts"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    yield kernel
    kernel.store.close()


def test_every_example_is_tested() -> None:
    # The scripts tested here, and every other example (scripts and folders) named as a quoted
    # string by some test module: a new example without a test fails this.
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert TESTED <= scripts
    tests = Path(__file__).parent
    text = "\n".join(p.read_text() for p in tests.rglob("*.py") if p.name != Path(__file__).name)
    entries = {p.stem if p.suffix == ".py" else p.name for p in EXAMPLES.iterdir()
               if p.suffix == ".py" or (p.is_dir() and not p.name.startswith((".", "_")))}
    untested = {e for e in entries - TESTED if f'"{e}"' not in text}
    assert not untested, f"examples without a test: {sorted(untested)}"


# --- quickstart ---------------------------------------------------------------------------------


def test_quickstart_is_the_readme_quick_start() -> None:
    block = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no python block under '## Quick start'"
    assert block.group(1) in (EXAMPLES / "quickstart.py").read_text()


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_quickstart_runs_both_tools_and_prints_answer_status_tokens_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The unmodified script, its model swapped by configuration (as the README says any litellm
    # model string can be) for a scripted OpenAI-compatible server on loopback.
    fake = FakeOpenAI().start()
    try:
        fake.queue(
            Reply(tool_calls=[_tool_call(
                "c1", "word_count", '{"text": "the quick brown fox jumps over the lazy dog"}')]),
            Reply(tool_calls=[_tool_call("c2", "calculator", '{"expression": "9 * 7"}')]),
            "63",
        )
        for var, value in {"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_MODEL": "openai/fake",
                           "OPENAI_API_BASE": fake.base_url, "OPENAI_API_KEY": "sk-test"}.items():
            monkeypatch.setenv(var, value)
        runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    finally:
        fake.stop()
    out = capsys.readouterr().out.strip().splitlines()
    answer, status, tokens, run_id = out[-1].split(" ")
    assert (answer, status, tokens) == ("63", "succeeded", str(3 * 18))  # the fake's usage: 18
    assert {t["function"]["name"] for t in fake.requests[0]["tools"]} == {"word_count", "calculator"}
    # The tools really ran: the calculator's result reached the model, and the run store has it.
    assert fake.requests[2]["messages"][-1]["content"] == "63"
    store = RunStore(tmp_path / "runs.sqlite")
    rows = store.syscalls(run_id)
    assert [(r.kind, r.name, r.outcome) for r in rows] == [
        ("llm", "openai/fake", "ok"), ("tool", "word_count", "ok"),
        ("llm", "openai/fake", "ok"), ("tool", "calculator", "ok"),
        ("llm", "openai/fake", "ok"),
    ]
    record = store.get_run(run_id)
    assert record is not None and record.status == "succeeded" and record.result == "63"
    store.close()


# --- governed agents ----------------------------------------------------------------------------

STEPS = 3  # calculator calls per task before the scripted answer


def _brain(messages, tools):  # type: ignore[no-untyped-def]
    done = sum(m["role"] == "tool" for m in messages)
    return call("calculator", expression=f"{done} + 1") if done < STEPS else "done"


def test_governed_agents_share_by_weight_keep_the_rate_limit_and_the_budget(
    kernel: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _load("governed_agents")
    assert len(example.AGENTS) == 4
    # 3 agents x 3 tasks x (3 calls + answer) = 36 LLM requests, plus the intern's few before its
    # 600 tokens run out (its calls in flight reserve their estimates): 42 in all. A limit just
    # under that makes the last ones wait for refill.
    rpm = 38.0
    report = example.main(FunctionLLM(_brain, latency=0.01, name="fn"), kernel, rpm=rpm,
                          intern_tokens=600)

    assert report.statuses["analyst"] == report.statuses["reviewer"] == ["succeeded"] * 3
    assert report.statuses["writer"] == ["succeeded"] * 3
    assert report.statuses["intern"] == ["budget_exceeded"] * 3
    # The budget, from the records: each intern call that ran was admitted when the tokens of its
    # calls finished before it plus its own estimate fitted in 600; then every task hit the limit.
    # (Calls in flight reserve their estimates, so concurrent tasks cannot all be admitted
    # against the same remaining tokens.)
    intern = [r for r in kernel.store.syscalls(report.run_id) if r.agent == "intern"]
    ran = [r for r in intern if r.kind == "llm" and r.outcome == "ok"]
    assert ran
    for r in ran:
        spent = sum(o.prompt_tokens + o.completion_tokens for o in ran
                    if o.submitted_at + o.queue_wait_s + o.service_s < r.submitted_at)
        assert spent + r.prompt_tokens <= 600
    assert sum(r.outcome == "budget_exceeded" for r in intern) == 3

    # Weighted fair share: while all three unbudgeted agents had calls queued, each got LLM
    # tokens in proportion to its weight (2:1:1). FIFO gives about 39/39/21 % here.
    share = report.contended_share
    assert set(share) == {"analyst", "reviewer", "writer"}
    assert share["analyst"] == pytest.approx(0.50, abs=0.06)
    assert share["reviewer"] == pytest.approx(0.25, abs=0.06)
    assert share["writer"] == pytest.approx(0.25, abs=0.06)

    # The rate limit, from the recorded dispatch times: a token bucket of `rpm` refilled at
    # rpm/60 per second lets at most rpm + rate*(t_j - t_i) requests start in [t_i, t_j].
    times = [t for t, _ in report.dispatches]
    n, rate = len(times), rpm / 60.0
    assert n > rpm, "the run must make more requests than one burst for the limit to bind"
    for i in range(n):
        for j in range(i, n):
            assert j - i + 1 <= rpm + rate * (times[j] - times[i]) + 1e-6
    assert times[-1] >= (n - rpm) / rate - 0.05  # the requests past the burst waited for refill

    out = capsys.readouterr().out
    assert re.search(r"analyst\s+weight 2\s+3 succeeded", out)
    assert "intern    weight 1  3 budget_exceeded" in out
    assert f"{n} LLM requests" in out and f"agentos runs show {report.run_id}" in out


# --- MoE ----------------------------------------------------------------------------------------

_SMALL = ["--steps", "2", "--batch-size", "2", "--seq-len", "32", "--max-bytes", "200000"]


def _losses(out: str, label: str) -> float:
    match = re.search(rf"^{label}\s+val loss (\S+)", out, re.M)
    assert match, out
    return float(match.group(1))


def test_moe_two_experts_trains_generates_and_scores(capsys: pytest.CaptureFixture[str]) -> None:
    _load("moe_two_experts").main([*_SMALL, "--no-deepspeed"])
    out = capsys.readouterr().out
    loss = _losses(out, "pytorch")
    assert math.isfinite(loss) and 0 < loss < math.log(256) + 1  # nats/byte, untrained ~ log 256
    assert re.search(r"^sample: '", out, re.M)
    assert re.search(r"^score: \d+\.\d+ bits/byte, routing \[", out, re.M)
    assert "deepspeed" not in out


@pytest.mark.slow
@pytest.mark.distributed
def test_moe_two_experts_with_deepspeed(capsys: pytest.CaptureFixture[str]) -> None:
    _load("moe_two_experts").main(_SMALL)
    out = capsys.readouterr().out
    assert math.isfinite(_losses(out, "pytorch"))
    assert math.isfinite(_losses(out, "deepspeed"))
    assert "(2 ranks, expert parallel)" in out
