"""examples/crew_tasks: the hidden checkers grade right and wrong code, and a task runs end to
end through the built-in crew (real Coder, bubblewrap sandbox) with a scripted LLM."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from agentos import Kernel
from agentos.testing import FunctionLLM, call

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crew_tasks"
sys.path.insert(0, str(EXAMPLE))
tasks = importlib.import_module("tasks")

REFERENCE = importlib.import_module("reference").REFERENCE

WRONG = {  # plausible without the docs: the generic rule a model would guess
    "invoices": "def invoice_number(year, sequence):\n    return f'KF-{year}-{sequence:05d}'\n",
    "parcels": "def shipping_cost(weight_kg, zone):\n    return round(4.20 + 1.15 * weight_kg, 2)\n",
    "sensors": "def decode_frame(frame):\n    b = bytes.fromhex(frame)\n    return b[1] / 10, b[2]\n",
    "accounts": "def valid_username(name):\n    return name.isalnum() and 3 <= len(name) <= 16\n",
    "kivu_calendar": "def kivu_days(year):\n    return 366 if year % 4 == 0 else 365\n",
}


def test_five_tasks_each_with_a_hidden_checker() -> None:
    assert [t.id for t in tasks.TASKS] == list(REFERENCE)
    for t in tasks.TASKS:
        assert (EXAMPLE / "hidden" / f"{t.id}.py").is_file()
        assert t.function in t.goal and "ingested docs" in t.goal
        # The facts come from the docs, not from the goal, and the checker is not in the docs.
        assert not any("hidden" in p.name for p in tasks.DOCS.iterdir())


@pytest.mark.parametrize("task_id", list(REFERENCE))
def test_the_checker_passes_the_reference_and_fails_the_guess(task_id: str) -> None:
    good = tasks.check(task_id, {"solution.py": REFERENCE[task_id]})
    assert good.passed, good.output
    bad = tasks.check(task_id, {"solution.py": WRONG[task_id]})
    assert not bad.passed
    assert not tasks.check(task_id, {}).passed


def test_a_task_end_to_end_through_the_crew(kernel: Kernel, tmp_path: Path) -> None:
    run = importlib.import_module("run")
    task = tasks.TASKS[4]
    coder_script = [
        call("write_file", path="solution.py", content=REFERENCE["kivu_calendar"]),
        call("write_file", path="test_solution.py",
             content="from solution import kivu_days\n\ndef test_leap():\n    assert kivu_days(1995) == 371\n"),
        call("run_tests"),
        "kivu_days is written; its tests pass.",
    ]

    def brain(messages, tools):  # type: ignore[no-untyped-def]
        who, last = messages[0]["content"], messages[-1]["content"]
        if who.startswith("You are researcher,"):
            if "Split this question" in last:
                return '["Kivu calendar leap year rule"]'
            label = re.search(r"\[(S\d+)\] \(kivu_calendar\.md", last)
            assert label, "the Kivu document was not among the recalled sources"
            # It names the line (S2.4) that states the rule instead of copying a quote.
            line = re.search(rf"^({label.group(1)}\.\d+) A Kivu year is a leap year", last, re.M)
            assert line, "the sources are not shown as numbered lines"
            return json.dumps({"answer": "Leap years have 371 days.",
                               "claims": [{"claim": "the leap rule", "lines": [line.group(1)]}]})
        if who.startswith("You are reviewer,"):
            return "APPROVED"
        coder_prompts.append(messages[-1]["content"])
        return coder_script[sum(1 for m in messages if m["role"] == "assistant")]

    coder_prompts: list[str] = []

    run.ingest_docs(kernel)  # the shipped corpus, into real vector memory
    stale = tmp_path / "kivu_calendar" / "test_stated_examples.py"  # an earlier run's file
    stale.parent.mkdir()
    stale.write_text("assert False\n")
    (stale.parent / ".written").write_text("report.md\ntest_stated_examples.py\n")
    row = run.solve(task.id, task.goal, model=FunctionLLM(brain), out=tmp_path, kernel=kernel)
    assert row["solved"] and row["crew_status"] == "succeeded", row
    assert row["llm_calls"] == 7 and row["tokens"] > 0
    assert (tmp_path / "kivu_calendar" / "solution.py").read_text() == REFERENCE["kivu_calendar"]
    assert "kivu_calendar.md" in (tmp_path / "kivu_calendar" / "report.md").read_text()
    assert not stale.exists()  # this run wrote no stated examples: the old file is gone
    # The coder reads the cited document in its own words, not only the researcher's summary.
    assert "Sources cited (verbatim):" in coder_prompts[0]
    assert "years divisible by 200 are leap years again" in coder_prompts[0]
    # The sources before the researcher's summary, which they overrule; no unrelated document.
    summary = coder_prompts[0].index("Leap years have 371 days.")
    assert coder_prompts[0].index("Sources cited (verbatim):") < summary
    assert "the sources are right" in coder_prompts[0][:summary]
    assert not any(f"{doc.name}, part" in coder_prompts[0]
                   for doc in tasks.DOCS.glob("*.md") if doc.name != "kivu_calendar.md")
    # The verified finding went to the crew's shared namespace, not the researcher's own.
    assert kernel.memory.count(f"crew:{row['run_id']}") == 1
    assert kernel.memory.count("agent:researcher") == 0
