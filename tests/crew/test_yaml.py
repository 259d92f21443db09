"""Crews from YAML: a working crew, and a clear error for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentos import Kernel, tool
from agentos.crew import load_crew
from agentos.errors import CrewDefinitionError
from agentos.testing import FunctionLLM

CREW = """
name: fact-and-code
agents:
  researcher: {role: a careful researcher, tools: [lookup]}
  coder: {role: a Python programmer}
tasks:
  - {name: research, agent: researcher, description: "Find the facts for: {goal}"}
  - name: code
    agent: coder
    description: Write the function.
    check: {contains: ["def "]}
    max_visits: 2
edges:
  - {from: research, to: code}
  - {from: code, to: code, when: check_failed}
"""


@pytest.fixture
def yaml_kernel(kernel: Kernel) -> Kernel:
    @tool
    def lookup(topic: str) -> str:
        """Look a fact up."""
        return "the answer is 42"

    kernel.registry.register(lookup)
    return kernel


def test_yaml_crew_runs_with_tools_checks_and_a_loop(yaml_kernel: Kernel, tmp_path: Path) -> None:
    coder_turns: list[int] = []

    def brain(messages, tools):  # type: ignore[no-untyped-def]
        if messages[0]["content"].startswith("You are researcher,"):
            if messages[-1]["role"] == "tool":
                return f"Fact: {messages[-1]['content']}"
            from agentos.testing import call

            return call("lookup", topic="answer")
        coder_turns.append(1)
        return "return 42" if len(coder_turns) == 1 else "def answer(): return 42"

    path = tmp_path / "crew.yaml"
    path.write_text(CREW)
    crew = load_crew(path, kernel=yaml_kernel, model=FunctionLLM(brain))
    result = crew.run("the answer")
    assert result.ok, result.error
    assert [e["task"] for e in result.events] == ["research", "code", "code"]
    assert result.outputs["research"] == "Fact: the answer is 42"
    assert result.report == "def answer(): return 42"


@pytest.mark.parametrize(("change", "message"), [
    (("agent: coder\n    description", "agent: tester\n    description"),
     "task 'code' names unknown agent 'tester'; agents: researcher, coder"),
    (("tools: [lookup]", "tools: [lookup, web_search]"),
     "agent 'researcher' names unknown tool 'web_search'; registered tools: lookup"),
    (("  - {from: code, to: code, when: check_failed}", "  - {from: code, to: research}"),
     "unconditional edges form a cycle: research -> code -> research"),
    (("when: check_failed", "when: tests_red"), "unknown condition 'tests_red'"),
    (("  - {from: research, to: code}", "  - {from: research, to: deploy}"),
     "names unknown task 'deploy'"),
    (("max_visits: 2", "max_visits: 2\n    retries: 5"), "tasks.1.retries: Extra inputs are not permitted"),
    (("name: fact-and-code", "name: [unclosed"), "is not valid YAML"),
])
def test_yaml_mistakes_are_named(yaml_kernel: Kernel, change: tuple[str, str], message: str) -> None:
    text = CREW.replace(*change)
    assert text != CREW
    with pytest.raises(CrewDefinitionError) as info:
        load_crew(text, kernel=yaml_kernel)
    assert message in str(info.value)


def test_missing_crew_file(yaml_kernel: Kernel, tmp_path: Path) -> None:
    with pytest.raises(CrewDefinitionError, match="does not exist"):
        load_crew(tmp_path / "nope.yaml", kernel=yaml_kernel)


def test_depends_on_gives_the_edges(yaml_kernel: Kernel) -> None:
    text = """
agents: {a: {}, b: {}}
tasks:
  - {name: x, agent: a}
  - {name: y, agent: a}
  - {name: z, agent: b, depends_on: [x, y]}
"""
    crew = load_crew(text, kernel=yaml_kernel)
    assert crew.graph.start == ["x", "y"] and crew.graph.predecessors("z") == ["x", "y"]


def test_the_shipped_yaml_crew_loads_against_the_built_in_tools(tmp_path: Path) -> None:
    from agentos import load_settings

    example = Path(__file__).resolve().parents[2] / "examples" / "crew_tasks" / "pair.yaml"
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))  # discovered tools
    crew = load_crew(example, kernel=kernel)
    assert crew.name == "pair-programming" and crew.graph.start == ["write"]
    assert crew.graph.routes_itself("write") and crew.graph.routes_itself("test")
    kernel.close()
