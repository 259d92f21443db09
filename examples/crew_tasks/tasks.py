"""Five research-and-code tasks for the crew, and the checkers that grade what it produced.

Each task asks the crew to research a fact in the ingested documents (``docs/``, a small corpus
shipped here: a fictional freight company's rules, which no model can know beforehand) and then
to write a function with tests. The checker runs the produced ``solution.py`` against hidden
assertions (``hidden/<task>.py``; never ingested, never shown to the crew) in the bubblewrap
sandbox, since the code is model-written.

Used by ``examples/crew_tasks/run.py`` and ``benchmarks/crew.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS", "TASKS", "CheckOutcome", "CrewTask", "check"]

HERE = Path(__file__).resolve().parent
DOCS = HERE / "docs"
HIDDEN = HERE / "hidden"


@dataclass(frozen=True, slots=True)
class CrewTask:
    """One task: its id (the hidden checker's name), the goal given to the crew, the function."""

    id: str
    goal: str
    function: str


_FILES = "Put the function in solution.py and its pytest tests in test_solution.py."

TASKS: list[CrewTask] = [
    CrewTask("invoices", (
        "Research how Kestrel Freight invoice numbers are formed (including the check letter) "
        "in the ingested docs, then write a Python function invoice_number(year: int, "
        "sequence: int) -> str that returns the invoice number, raising ValueError for a "
        f"sequence outside 1..99999, with tests. {_FILES}"), "invoice_number"),
    CrewTask("parcels", (
        "Research Kestrel Freight's parcel prices (weight steps and zone multipliers) in the "
        "ingested docs, then write a Python function shipping_cost(weight_kg: float, zone: str) "
        "-> float that returns the price in EUR rounded to cents, raising ValueError for "
        f"refused parcels and unknown zones, with tests. {_FILES}"), "shipping_cost"),
    CrewTask("sensors", (
        "Research the TH-7 sensor frame format in the ingested docs, then write a Python "
        "function decode_frame(frame: str) -> tuple[float, int] that returns (temperature in "
        "degrees Celsius, humidity in percent) and raises ValueError for invalid frames, with "
        f"tests. {_FILES}"), "decode_frame"),
    CrewTask("accounts", (
        "Research the rules for Kestrel Freight account names in the ingested docs, then write "
        "a Python function valid_username(name: str) -> bool that says whether a name follows "
        f"every rule (reserved names included), with tests. {_FILES}"), "valid_username"),
    CrewTask("kivu_calendar", (
        "Research the leap-year rule of the Kivu calendar in the ingested docs, then write a "
        "Python function kivu_days(year: int) -> int that returns the number of days in that "
        f"Kivu year, raising ValueError for years below 1, with tests. {_FILES}"), "kivu_days"),
]


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """Whether the produced code passed the hidden assertions, with the checker's output."""

    passed: bool
    output: str


def check(task_id: str, files: dict[str, str]) -> CheckOutcome:
    """Run ``hidden/<task_id>.py`` against the produced files in the sandbox.

    Args:
        task_id: one of :data:`TASKS`' ids.
        files: the crew's files (relative path -> text); ``solution.py`` is required.
    """
    from agentos.sandbox import Limits, run

    if "solution.py" not in files:
        return CheckOutcome(False, "no solution.py was produced")
    hidden = HIDDEN / f"{task_id}.py"
    with tempfile.TemporaryDirectory(prefix=f"check-{task_id}-") as tmp:
        workdir = Path(tmp)
        (workdir / "solution.py").write_text(files["solution.py"])
        shutil.copy(hidden, workdir / "hidden_check.py")
        result = run(["python", "-E", "-s", "hidden_check.py"], workdir,
                     limits=Limits(timeout_s=30))
    output = (result.stdout + result.stderr)[-2000:]
    return CheckOutcome(result.returncode == 0, output)
