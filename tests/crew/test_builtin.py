"""Every edge of the built-in research_and_code crew, with scripted agents."""

from __future__ import annotations

from agentos import Agent, Kernel
from agentos.crew import CrewResult, research_and_code
from agentos.testing import ScriptedLLM


def _crew(kernel: Kernel, research: list[str], code: list[str], review: list[str], **kw):  # type: ignore[no-untyped-def]
    members = {
        "researcher": Agent("researcher", llm=ScriptedLLM(research)),
        "coder": Agent("coder", llm=ScriptedLLM(code)),
        "reviewer": Agent("reviewer", llm=ScriptedLLM(review)),
    }
    return research_and_code(kernel=kernel, **members, **kw), members


def _path(result: CrewResult) -> list[str]:
    return [e["task"] for e in result.events]


def test_straight_through_research_code_review_report(kernel: Kernel) -> None:
    crew, m = _crew(kernel, ["X is 42 [doc.txt]"], ["def x(): return 42\nTESTS PASSED"], ["APPROVED: fine"])
    result = crew.run("write x()")
    assert result.status == "succeeded", result.error
    assert _path(result) == ["research", "code", "review", "report"]
    # The coder's prompt carries the researcher's output, handed over on the bus.
    coder_prompt = m["coder"].llm.calls[0][-1]["content"]
    assert "X is 42 [doc.txt]" in coder_prompt and "write x()" in coder_prompt
    topics = [(msg["topic"].rsplit(".", 1)[1], msg["payload"]["from"])
              for msg in kernel.store.messages(result.run_id)]
    assert topics == [("code", "research"), ("review", "code"), ("report", "review")]
    assert result.report.startswith("# Report: write x()")
    assert "X is 42 [doc.txt]" in result.report and "## Tests\n\npassed" in result.report
    assert "Did not converge" not in result.report
    # The reviewer reads the research too, not only the code handed to it.
    review_prompt = m["reviewer"].llm.calls[0][-1]["content"]
    assert "## Input from research\nX is 42 [doc.txt]" in review_prompt
    assert "## Input from code\ndef x(): return 42" in review_prompt


def test_failing_tests_send_the_coder_back_with_the_failure(kernel: Kernel) -> None:
    crew, m = _crew(kernel, ["facts"], ["def x(): return 0\n1 failed", "def x(): return 42\nTESTS PASSED"],
                    ["APPROVED"])
    result = crew.run("write x()")
    assert result.ok
    assert _path(result) == ["research", "code", "code", "review", "report"]
    second = m["coder"].llm.calls[1][-1]["content"]
    assert "Your previous output failed its check: the tests did not pass" in second
    assert "1 failed" in second  # its own previous output is among its inputs


def test_missing_facts_send_the_question_back_to_the_researcher(kernel: Kernel) -> None:
    crew, m = _crew(kernel, ["facts", "Y is 7 [doc2.txt]"],
                    ["FACTS MISSING: what is Y?", "def y(): return 7\nTESTS PASSED"], ["APPROVED"])
    result = crew.run("write y()")
    assert result.ok, result.error
    assert _path(result) == ["research", "code", "research", "code", "review", "report"]
    assert "FACTS MISSING: what is Y?" in m["researcher"].llm.calls[1][-1]["content"]
    assert "Y is 7 [doc2.txt]" in m["coder"].llm.calls[1][-1]["content"]


def test_requested_changes_send_the_coder_back_then_review_again(kernel: Kernel) -> None:
    crew, m = _crew(kernel, ["facts"], ["v1\nTESTS PASSED", "v2\nTESTS PASSED"],
                    ["CHANGES REQUESTED: name it y", "APPROVED"])
    result = crew.run("write y()")
    assert result.ok
    assert _path(result) == ["research", "code", "review", "code", "review", "report"]
    assert "CHANGES REQUESTED: name it y" in m["coder"].llm.calls[1][-1]["content"]


def test_a_crew_that_cannot_converge_ends_with_what_it_has_and_says_why(kernel: Kernel) -> None:
    crew, _ = _crew(kernel, ["facts"], ["broken 1", "broken 2", "broken 3"], ["CHANGES REQUESTED"],
                    max_rounds=2)
    result = crew.run("write z()")
    assert result.status == "not_converged"
    # code may run max_rounds + 1 = 3 times; then the loop is cut and the crew goes on.
    assert _path(result) == ["research", "code", "code", "code", "review", "report"]
    assert "did not converge" in result.stops["code"] and "max_visits" in result.stops["code"]
    assert "## Did not converge" in result.report and "broken 3" in result.report
    assert kernel.store.get_run(result.run_id).status == "not_converged"


def test_real_coder_with_approval_resumes_without_rewriting_files(kernel: Kernel) -> None:
    from agentos.agents.coder import Coder
    from agentos.crew.members import CoderMember
    from agentos.testing import FunctionLLM, call

    script = [
        call("write_file", path="solution.py", content="def add(a, b):\n    return a + b\n"),
        call("write_file", path="test_solution.py",
             content="from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"),
        call("run_tests"),
        "add works; its test passes.",
    ]

    def coder_brain(messages, tools):  # type: ignore[no-untyped-def]
        # By turn within the visit, so a resumed visit asks for the same thing.
        return script[sum(1 for m in messages if m["role"] == "assistant")]

    reviewed: list[str] = []

    def review(messages, tools):  # type: ignore[no-untyped-def]
        reviewed.append(messages[-1]["content"])
        return "APPROVED"

    def members() -> dict[str, object]:
        return {"researcher": Agent("researcher", llm=FunctionLLM(lambda m, t: "add is +")),
                "coder": CoderMember(Coder("coder", llm=FunctionLLM(coder_brain))),
                "reviewer": Agent("reviewer", llm=FunctionLLM(review))}

    first = research_and_code(kernel=kernel, approve=True, **members()).run("write add")
    assert first.status == "waiting" and first.waiting["tool"] == "run_tests"
    second = research_and_code(kernel=kernel, approve=True, **members()).resume(first.run_id, approve=True)
    # The Coder checks the tests itself once the LLM says it is done: a second approval.
    assert second.status == "waiting" and second.waiting["syscall_id"] == "code/1/approval1"
    done = research_and_code(kernel=kernel, approve=True, **members()).resume(first.run_id, approve=True)
    assert done.status == "succeeded", done.error
    assert done.data["code"]["tests_passed"] and set(done.data["code"]["files"]) == {"solution.py", "test_solution.py"}
    calls = [(s.name, s.outcome) for s in kernel.store.syscalls(first.run_id) if s.kind == "tool"]
    writes = [o for n, o in calls if n == "write_file"]
    assert writes == ["ok", "ok", "replayed", "replayed", "replayed", "replayed"]
    # The reviewer saw the code itself (the files), not only the Coder's summary.
    assert "solution.py:\n```python\ndef add(a, b):\n    return a + b\n```" in reviewed[-1]
    # run_tests is re-run (not replayed) on resume: the Coder keeps its outcome in memory.
    assert [o for n, o in calls if n == "run_tests"] == ["ok", "ok", "ok"]
