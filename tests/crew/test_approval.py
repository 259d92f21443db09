"""Human in the loop: code-running tools wait for approval; decisions are recorded."""

from __future__ import annotations

import pytest

from agentos import Agent, Kernel, tool
from agentos.crew import Crew, Task
from agentos.errors import RunNotResumable
from agentos.testing import FunctionLLM, call


@pytest.fixture
def ran() -> list[str]:
    return []


def _crew(kernel: Kernel, ran: list[str], replies: list) -> Crew:  # type: ignore[type-arg]
    @tool
    def run_code(code: str) -> str:
        """Run code (records that it ran)."""
        ran.append(code)
        return "ok"

    # Replies by turn (not by call count): a resumed visit replays earlier turns from the journal.
    def brain(messages, tools):  # type: ignore[no-untyped-def]
        return replies[sum(1 for m in messages if m["role"] == "assistant")]

    coder = Agent("coder", llm=FunctionLLM(brain), tools=[run_code])
    return Crew([coder], [Task("code", agent="coder")], kernel=kernel, approve_tools={"run_code"})


def test_code_waits_for_approval_then_runs_once_approved(kernel: Kernel, ran: list[str]) -> None:
    replies = [call("run_code", code="print(1)"), "done"]
    result = _crew(kernel, ran, replies).run("run it")
    assert result.status == "waiting" and ran == []
    assert result.waiting["tool"] == "run_code" and result.waiting["arguments"] == {"code": "print(1)"}
    assert kernel.store.get_run(result.run_id).status == "waiting"
    with pytest.raises(RunNotResumable, match="waiting for approval.*--approve"):
        _crew(kernel, ran, replies).resume(result.run_id)

    resumed = _crew(kernel, ran, replies).resume(result.run_id, approve=True)
    assert resumed.status == "succeeded" and resumed.outputs["code"] == "done"
    assert ran == ["print(1)"]
    decisions = [m["payload"] for m in kernel.store.messages(result.run_id) if m["topic"].endswith(".approvals")]
    assert decisions == [{"approved": True, "tool": "run_code", "agent": "coder", "by": "human",
                          "syscall_id": "code/1/approval0"}]
    with pytest.raises(RunNotResumable, match="already finished"):
        _crew(kernel, ran, replies).resume(result.run_id, approve=True)


def test_rejected_code_never_runs_and_the_crew_says_so(kernel: Kernel, ran: list[str]) -> None:
    replies = [call("run_code", code="rm -rf /"), "done"]
    result = _crew(kernel, ran, replies).run("run it")
    rejected = _crew(kernel, ran, replies).resume(result.run_id, approve=False)
    assert rejected.status == "rejected" and "rejected coder running run_code" in rejected.error
    assert ran == []
    assert kernel.store.get_run(result.run_id).status == "rejected"
    decisions = [m["payload"]["approved"] for m in kernel.store.messages(result.run_id)
                 if m["topic"].endswith(".approvals")]
    assert decisions == [False]


def test_each_code_run_asks_and_earlier_approved_runs_are_not_repeated(kernel: Kernel, ran: list[str]) -> None:
    replies = [call("run_code", code="a"), call("run_code", code="b"), "done"]
    first = _crew(kernel, ran, replies).run("run both")
    assert first.status == "waiting" and first.waiting["arguments"] == {"code": "a"}
    second = _crew(kernel, ran, replies).resume(first.run_id, approve=True)
    assert second.status == "waiting" and second.waiting["arguments"] == {"code": "b"}
    assert ran == ["a"]
    # Re-running the visit replays the first LLM turn and code run from the journal.
    done = _crew(kernel, ran, replies).resume(first.run_id, approve=True)
    assert done.status == "succeeded" and ran == ["a", "b"]


def test_resume_with_an_answer_for_a_run_that_does_not_wait(kernel: Kernel, ran: list[str]) -> None:
    result = _crew(kernel, ran, ["no code needed"]).run("chat")
    assert result.ok
    kernel.store.execute("UPDATE runs SET status='abandoned' WHERE id=?", (result.run_id,))
    with pytest.raises(RunNotResumable, match="not waiting for approval"):
        _crew(kernel, ran, []).resume(result.run_id, approve=True)


def test_a_tool_whose_permissions_need_approval_asks_through_the_crew(
    kernel: Kernel, ran: list[str]
) -> None:
    from agentos.runtime.permissions import ToolPermissions

    @tool
    def send_mail(to: str) -> str:
        """Send a mail (records that it was sent)."""
        ran.append(to)
        return "sent"

    def brain(messages, tools):  # type: ignore[no-untyped-def]
        turns = sum(1 for m in messages if m["role"] == "assistant")
        return [call("send_mail", to="ops@example.com"), "done"][turns]

    kernel.tool_permissions["send_mail"] = ToolPermissions(approval=True)
    assert kernel.approver is None  # without the crew's interrupt the kernel would refuse it

    def crew() -> Crew:
        mailer = Agent("mailer", llm=FunctionLLM(brain), tools=[send_mail])
        return Crew([mailer], [Task("mail", agent="mailer")], kernel=kernel)

    result = crew().run("mail ops")
    assert result.status == "waiting" and result.waiting["tool"] == "send_mail" and ran == []
    resumed = crew().resume(result.run_id, approve=True)
    assert resumed.status == "succeeded" and ran == ["ops@example.com"]
    kernel_decisions = [m["payload"] for m in kernel.store.messages(result.run_id)
                        if m["topic"] == "tool.approvals"]
    assert kernel_decisions == [{"tool": "send_mail", "arguments": {"to": "ops@example.com"},
                                 "approved": True, "by": "crew"}]
