"""The built-in crew's members: the real agents behind the crew's ``Member`` interface.

A crew task reads ``answer``, ``status``, ``error`` and ``data`` (structured results) from what
its member returns. :class:`CoderMember` gives the :class:`~agentos.agents.Coder`'s result that
shape (files, tests passed, last test output); :class:`ResearcherMember` does the same for the
:class:`~agentos.agents.Researcher` (answer and verified citations).
:func:`default_members` builds the three members of ``research_and_code``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentos.agents.stated import EXAMPLES_FILE, SOURCES_END, SOURCES_HEADINGS
from agentos.crew.builtin import FACTS_MISSING

if TYPE_CHECKING:
    from agentos.agents.coder import Coder
    from agentos.crew.crew import Member
    from agentos.runtime.kernel import Kernel

__all__ = ["CoderMember", "MemberResult", "ResearcherMember", "default_members"]

_TEST_OUTPUT_CHARS = 3000
_FILE_CHARS = 4000  # of each file, in the answer the reviewer reads
_SOURCES = 2  # chunks whose text the research hands on
_SOURCE_CHARS = 1500  # of each such chunk
_SUMMARY = "The researcher's summary (where it and the sources above differ, the sources are right):"
_WHOLE_TURNS = 6  # LLM turns per visit of a local model's coder ("whole" files format)


@dataclass(slots=True)
class MemberResult:
    """What a crew task reads from its member's run."""

    answer: str
    status: str
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    steps: list[Any] = field(default_factory=list)


class CoderMember:
    """The Coder as a crew member: its files, test outcome and summary become task data."""

    def __init__(self, coder: Coder) -> None:
        self.coder = coder
        self.name = coder.name

    @property
    def on_step(self) -> Any:
        return self.coder.on_step

    @on_step.setter
    def on_step(self, value: Any) -> None:
        self.coder.on_step = value

    async def arun(self, task: str, *, kernel: Any = None, run: Any = None) -> MemberResult:
        result = await self.coder.arun(task, kernel=kernel, run=run)
        # A question in the reply's words, not in a comment of the code it wrote.
        said = [_outside_code(s.content) for s in result.steps if s.content]
        asked = [text for text in said if FACTS_MISSING in text]
        data: dict[str, Any] = {
            "stated_examples": result.stated_examples,
            "files": result.files,
            "tests_passed": result.tests_passed,
            "test_output": result.test_output[-_TEST_OUTPUT_CHARS:],
            "test_runs": result.test_runs,
            "workspace": str(result.workspace) if result.workspace else None,
        }
        if asked and not result.tests_passed:
            data["facts_missing"] = asked[-1][asked[-1].index(FACTS_MISSING):]
        listing = "\n\n".join(f"{path}:\n```python\n{text[:_FILE_CHARS].rstrip()}\n```"
                              for path, text in result.files.items() if path.endswith(".py"))
        examples = ""
        if result.stated_examples:
            examples = (f"The {len(result.stated_examples)} examples the sources state ("
                        f"{EXAMPLES_FILE}, written by the Coder) "
                        f"{'pass' if result.tests_passed else 'ran with the tests'}: "
                        + "; ".join(result.stated_examples))
        answer = f"{result.summary}\n{examples}\n\n{result.answer or ''}\n\n{listing}".strip()
        if asked and not result.tests_passed:
            answer += "\n" + data["facts_missing"]
        return MemberResult(answer, result.status, result.error, data, result.steps)


def _outside_code(reply: str) -> str:
    """``reply`` without its fenced code blocks (a block the reply ends inside included)."""
    return re.sub(r"```.*?(?:```|\Z)", "", reply, flags=re.DOTALL)


class ResearcherMember:
    """The :class:`~agentos.agents.Researcher` as a crew member: its answer and citations
    become task data."""

    def __init__(self, researcher: Any) -> None:
        self.researcher = researcher
        self.name = researcher.name

    @property
    def on_step(self) -> Any:
        return getattr(self.researcher, "on_step", None)

    @on_step.setter
    def on_step(self, value: Any) -> None:
        self.researcher.on_step = value

    async def arun(self, task: str, *, kernel: Any = None, run: Any = None) -> MemberResult:
        """Research ``task``; findings go to the crew's shared namespace ``crew:<run id>`` (the
        crew grants it to its members). The answer handed on is the full text of the chunks it
        cites (the facts in the source's own words), or, when it cites none, of the best chunks it
        showed the LLM, marked as such; then the researcher's answer, introduced as a summary the
        sources overrule: a small model's answer drops details and gets some wrong (the 1.5B's
        said the TH-7's humidity took three bytes)."""
        report = await self.researcher.arun(task, kernel=kernel, run=run,
                                            crew=getattr(run, "id", None))
        citations = [str(c) for c in report.citations]
        answer = (report.answer or "").strip()
        sources = _cited_sources(report)
        if sources:  # the sources first: a small model follows what it reads first
            answer = f"{sources}\n\n{_SUMMARY}\n{answer}".strip() if answer else sources
        return MemberResult(answer, report.status, report.error, {"citations": citations},
                            list(report.steps))


def _cited_sources(report: Any) -> str:
    """The text of the chunks ``report`` cites (each once, at most ``_SOURCES`` of them,
    ``_SOURCE_CHARS`` each); when it cites none, the first chunks it showed the LLM (those
    relevant enough to show; else the first it retrieved)."""
    retrieved = report.retrieved
    cited = [c.chunk_id for c in report.citations if c.chunk_id in retrieved]
    ids = list(dict.fromkeys(cited))[:_SOURCES]
    cited_heading, retrieved_heading = SOURCES_HEADINGS
    heading = (f"{cited_heading})" if report.status == "succeeded" else
               f"{cited_heading}; the citation check did not pass)")
    if not ids:
        ids = [i for i in getattr(report, "shown", None) or retrieved if i in retrieved][:_SOURCES]
        heading = f"{retrieved_heading}; none was cited)"
    if not ids:
        return ""
    parts = []
    for chunk_id in ids:
        hit = retrieved[chunk_id]
        name = (hit.source or hit.namespace).rsplit("/", 1)[-1]
        text = hit.text if len(hit.text) <= _SOURCE_CHARS else hit.text[:_SOURCE_CHARS] + " [...]"
        parts.append(f"[{name}, part {hit.position}]\n{text.strip()}")
    return f"{heading}:\n\n" + "\n\n".join(parts) + f"\n{SOURCES_END}"


def default_members(kernel: Kernel, model: str | None = None) -> dict[str, Member]:
    """``researcher``, ``coder`` and ``reviewer`` on ``model`` (default: the configured model).

    The researcher is the :class:`~agentos.agents.Researcher`, recalling from the ``global``
    namespace (where ``agentos crew run --docs`` ingests), showing the LLM its best four relevant chunks
    and answering with verified citations; the coder is the :class:`~agentos.agents.Coder`
    (workspace, bubblewrap sandbox, pytest), in the ``"whole"`` edit format with at most six
    LLM turns per visit on a ``local/`` model (small models write better code in Markdown blocks
    than in tool-call JSON), writing the examples the sources state as a fixed test file
    (``stated_examples=True``: a small model's own expected values are often wrong); the
    reviewer is a plain agent.
    """
    from agentos.agents.base import Agent
    from agentos.agents.coder import Coder
    from agentos.agents.researcher import Researcher

    llm = model or kernel.settings.model
    members: dict[str, Member] = {
        "researcher": ResearcherMember(Researcher("researcher", llm=llm, kernel=kernel,
                                                  namespaces=["global"], max_sources=4)),
    }
    local = isinstance(llm, str) and llm.startswith("local/")
    members["coder"] = CoderMember(Coder(
        "coder", llm=llm, kernel=kernel,
        instructions=f"If a fact you need is missing from the task and research, say '{FACTS_MISSING} <question>'.",
        **({"edit_format": "whole", "max_steps": _WHOLE_TURNS, "stated_examples": True}
           if local else {}),
    ))
    members["reviewer"] = Agent(
        "reviewer", llm=llm, kernel=kernel,
        role="a code reviewer who checks code against its goal and the research",
    )
    return members
