"""The built-in crew's members: which Coder format each kind of model gets."""

from __future__ import annotations

from agentos import Kernel
from agentos.crew.members import CoderMember, default_members


def test_a_local_model_gets_the_whole_file_coder_and_a_hosted_one_the_tool_coder(
    kernel: Kernel,
) -> None:
    local = default_members(kernel, "local/qwen2.5-coder-1.5b")["coder"]
    hosted = default_members(kernel, "openai/gpt-4o-mini")["coder"]
    assert isinstance(local, CoderMember) and isinstance(hosted, CoderMember)
    assert (local.coder.edit_format, local.coder.max_steps) == ("whole", 6)
    assert (hosted.coder.edit_format, hosted.coder.max_steps) == ("tools", 30)


def test_facts_missing_in_a_comment_of_the_code_is_not_a_question(kernel: Kernel) -> None:
    """The 1.5B wrote `# FACTS MISSING: ...` comments into solution.py: that is code, not a
    question for the researcher. Only the reply's own words ask one."""
    import asyncio

    from agentos.agents import Coder
    from agentos.testing import ScriptedLLM

    code = "def f(x):\n    # FACTS MISSING: check the rule\n    return x\n"
    tests = "from solution import f\n\n\ndef test_f():\n    assert f(1) == 2\n"
    reply = f"solution.py\n```python\n{code}```\n\ntest_solution.py\n```python\n{tests}```\n"
    member = CoderMember(Coder(llm=ScriptedLLM([reply, "FACTS MISSING: what is f(1)?"]),
                               edit_format="whole", arbitrate=False, max_steps=2))
    result = asyncio.run(member.arun("Write f(x) in solution.py with tests in test_solution.py.",
                                     kernel=kernel))
    assert result.data["facts_missing"] == "FACTS MISSING: what is f(1)?"
    member = CoderMember(Coder(llm=ScriptedLLM([reply]), edit_format="whole", arbitrate=False,
                               max_steps=1))
    result = asyncio.run(member.arun("Write f(x) in solution.py with tests in test_solution.py.",
                                     kernel=kernel))
    assert "facts_missing" not in result.data and not result.data["tests_passed"]


def test_an_uncited_research_hands_on_the_chunks_it_showed_not_the_unrelated_ones() -> None:
    from types import SimpleNamespace

    from agentos.crew.members import _cited_sources
    from agentos.runtime.memory.store import Hit

    hits = {i: Hit(i, f"text of {name}", "global", f"/docs/{name}", 0, 0.1)
            for i, name in [("a", "sensors.md"), ("b", "parcels.md"), ("c", "kivu.md")]}
    report = SimpleNamespace(retrieved=hits, citations=[], status="failed", shown=["a"])
    handed = _cited_sources(report)
    assert "none was cited" in handed and "text of sensors.md" in handed
    assert "parcels" not in handed and "kivu" not in handed
