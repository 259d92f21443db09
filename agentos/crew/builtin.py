"""The built-in ``research_and_code`` crew.

Graph (conditional edges are tried in this order, each bounded by its target's ``max_visits``)::

    research ──> code ──(facts missing)──> research
                  │ ──(tests fail)──────> code
                  └──(otherwise)──> review ──(changes requested)──> code
                                       └──(otherwise)──> report

* **research**: the researcher answers from memory (and its tools) with citations.
* **code**: the coder writes the code and its tests and runs them. Its check passes when the
  tests passed: ``data["tests_passed"]`` of its result when the member returns structured data,
  else a line ``TESTS PASSED`` in its answer. An answer with a line ``FACTS MISSING: <question>``
  sends the question back to the researcher.
* **review**: the reviewer reads the research and the code; an answer containing
  ``CHANGES REQUESTED`` sends its comments back to the coder.
* **report**: a function (no LLM) that writes the Markdown report: the answer, citations, files,
  test outcome, review, and why the crew stopped when it did not converge.

A crew that cannot converge ends with what it has: the loop that was due is recorded in the
result's ``stops`` and in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentos.crew.task import CheckResult, Edge, Task

if TYPE_CHECKING:
    from agentos.crew.crew import Crew, Member
    from agentos.runtime.kernel import Kernel

__all__ = [
    "CODE_RUNNING_TOOLS", "FACTS_MISSING", "RERUN_TOOLS", "research_and_code",
    "research_and_code_tasks",
]

FACTS_MISSING = "FACTS MISSING:"
TESTS_PASSED = "TESTS PASSED"
CHANGES_REQUESTED = "CHANGES REQUESTED"
CODE_RUNNING_TOOLS = ("run_python", "run_tests", "run_code")
"""Tools that run code: with ``approve=True`` each call waits for a human's approval."""
RERUN_TOOLS = ("run_tests", "list_files", "read_file")
"""The Coder's side-effect-free tools, run again (not replayed) when a visit resumes: the Coder
keeps the last test outcome in memory and checks "tests passed" against it."""


def _tests_passed(output: str, state: Mapping[str, Any]) -> CheckResult:
    data = state.get("data", {}).get("code", {})
    if "tests_passed" in data:
        passed = bool(data["tests_passed"])
        detail = data.get("test_output") or ""
        return CheckResult(passed, "" if passed else f"the tests failed: {str(detail)[-800:]}")
    if any(line.strip().startswith(TESTS_PASSED) for line in output.splitlines()):
        return CheckResult(True)
    return CheckResult(False, "the tests did not pass (no passing test run was reported)")


def _facts_missing(state: Mapping[str, Any]) -> bool:
    data = state.get("data", {}).get("code", {})
    if data.get("facts_missing"):
        return True
    return FACTS_MISSING in (state.get("outputs", {}).get("code") or "")


def _review_ok(output: str, state: Mapping[str, Any]) -> CheckResult:
    if CHANGES_REQUESTED in output:
        return CheckResult(False, "the reviewer requested changes")
    return CheckResult(True)


def _write_report(state: Mapping[str, Any]) -> str:
    outputs, data = state.get("outputs", {}), state.get("data", {})
    checks, stops = state.get("checks", {}), state.get("stops", {})
    lines = [f"# Report: {state.get('goal', '')}", ""]
    research = data.get("research", {})
    lines += ["## Research", "", outputs.get("research", "(no research)").strip(), ""]
    citations = research.get("citations") or []
    if citations:
        lines += ["### Citations", ""]
        lines += [f"- {c}" for c in citations]
        lines.append("")
    code = data.get("code", {})
    lines += ["## Code", ""]
    files = code.get("files") or {}
    for path, text in files.items():
        lines += [f"### `{path}`", "", "```python", str(text).rstrip(), "```", ""]
    if not files:
        lines += [outputs.get("code", "(no code)").strip(), ""]
    tests = checks.get("code", {})
    lines += ["## Tests", "",
              "passed" if tests.get("passed") else f"not passing: {tests.get('reason', 'not run')}",
              ""]
    if "review" in outputs:
        lines += ["## Review", "", outputs["review"].strip(), ""]
    if stops:
        lines += ["## Did not converge", ""]
        lines += [f"- {task}: {why}" for task, why in stops.items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def research_and_code_tasks(max_rounds: int = 3) -> tuple[list[Task], list[Edge]]:
    """The built-in crew's tasks and edges (``max_rounds`` bounds each loop)."""
    tasks = [
        Task("research", agent="researcher", max_visits=max_rounds,
             description=(
                 "Research what is needed for this goal in the ingested documents, and cite "
                 "your sources: {goal}"),
             expected_output="the facts needed, each with its source"),
        Task("code", agent="coder", max_visits=max_rounds + 1, check=_tests_passed,
             description=(
                 "Write the Python code and its pytest tests for this goal, and run the tests "
                 "until they pass: {goal}\nThe research below gives the facts to use: follow "
                 "them exactly (numbers, formats, exceptions), even where they differ from what "
                 "you know. Test with the examples the sources give, copying their expected "
                 "values. If a fact you need is missing, answer with a line "
                 f"'{FACTS_MISSING} <your question>' instead."),
             expected_output="the code, its tests, and the test outcome"),
        Task("review", agent="reviewer", max_visits=max_rounds, check=_review_ok,
             reads=("research",),
             description=(
                 "Review the code below against the goal and the research: {goal}\nCheck that "
                 "the code follows every fact of the research exactly. If it must change, say "
                 f"{CHANGES_REQUESTED} and what; else say APPROVED and why."),
             expected_output="APPROVED or CHANGES REQUESTED, with reasons"),
        Task("report", fn=_write_report),
    ]
    edges = [
        Edge("research", "code"),
        Edge("code", "research", when=_facts_missing),
        Edge("code", "code", when="check_failed"),
        Edge("code", "review"),
        Edge("review", "code", when="check_failed"),
        Edge("review", "report"),
    ]
    return tasks, edges


def research_and_code(
    *,
    researcher: Member,
    coder: Member,
    reviewer: Member,
    kernel: Kernel | None = None,
    approve: bool = False,
    max_rounds: int = 3,
    definition: dict[str, Any] | None = None,
    **crew_options: Any,
) -> Crew:
    """The built-in research → code → review → report crew with the given members.

    Args:
        researcher, coder, reviewer: members named ``researcher``, ``coder`` and ``reviewer``.
        approve: ask a human before each call of a code-running tool (:data:`CODE_RUNNING_TOOLS`).
        max_rounds: how often each loop may go round before the crew ends with what it has.
        **crew_options: passed to :class:`Crew` (``on_event``, ``budget``, ``retention``...).
    """
    from agentos.crew.crew import Crew

    tasks, edges = research_and_code_tasks(max_rounds)
    if approve:
        crew_options.setdefault("approve_tools", CODE_RUNNING_TOOLS)
    crew_options.setdefault("rerun_tools", RERUN_TOOLS)
    return Crew([researcher, coder, reviewer], tasks, edges, name="research_and_code",
                kernel=kernel, definition=definition, **crew_options)

