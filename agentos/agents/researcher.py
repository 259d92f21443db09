"""The Researcher: answers a question from memory, citing the chunks it read, checked.

API (what a crew relies on)::

    researcher = Researcher("researcher", llm="local/qwen2.5-coder-1.5b", kernel=kernel,
                            namespaces=["global"], crew="c1")
    report = researcher.run("How does heapq.heapreplace differ from heappushpop?")
    report.status      # "succeeded" only when every citation was verified
    report.answer      # the answer text
    report.citations   # [Citation(claim, chunk_id, quote, source, position), ...]

A run: (1) the LLM splits the question into at most ``max_subquestions`` sub-questions;
(2) each sub-question (and the question) is recalled from ``namespaces`` through the kernel
(memory syscalls, grant-checked); (3) the LLM answers from the retrieved chunks as JSON claims.
The chunks are shown as numbered lines (``S1.3``: source 1, line 3) and a claim names the lines
it rests on: the Researcher copies those lines, verbatim, as the claim's quote, so a small model
that cannot copy text exactly still cites exactly what it points at. A claim may instead give a
quote of its own (a quote that is word for word in another chunk retrieved in this run, and only
there, is re-pointed to that chunk: small models mix up source labels); (4)
:func:`check_citations` verifies every quote appears in the cited chunk and every cited chunk
was retrieved in this run; failures go back to the LLM (up to ``max_attempts`` answers); (5) a
verified report's claims are written, with their citations, to the write namespace (the crew's
``crew:<id>`` when ``crew`` is given, else the agent's private one). A report with any
unsupported citation, or none at all, has status ``failed`` and writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentos.agents.base import Agent, Step
from agentos.errors import BudgetExceeded, Cancelled, ProviderError, SyscallTimeout, UserError
from agentos.runtime.llm.types import Message

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.memory import Hit

__all__ = ["Citation", "CitationProblem", "ResearchReport", "Researcher", "check_citations"]

_MIN_QUOTE_WORDS = 3


@dataclass(slots=True)
class Citation:
    """One claim and the evidence it cites.

    Attributes:
        claim: the statement.
        chunk_id: the memory chunk it rests on.
        quote: words copied from that chunk.
        source, position: where the chunk came from (filled from the retrieved chunk).
    """

    claim: str
    chunk_id: str
    quote: str
    source: str | None = None
    position: int | None = None

    def __str__(self) -> str:
        where = f" ({self.source}#{self.position})" if self.source else ""
        return f'{self.claim} [{self.chunk_id}{where}: "{self.quote}"]'


@dataclass(frozen=True, slots=True)
class CitationProblem:
    """Why a citation is unsupported."""

    citation: Citation
    reason: str


def _canonical(text: str) -> str:
    """Casefolded words with typographic quotes and dashes made plain, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "—": "-",
                                         "–": "-", "¶": " "}))
    return " ".join(text.casefold().split())


def check_citations(
    citations: Sequence[Citation], retrieved: Mapping[str, str]
) -> list[CitationProblem]:
    """Every problem with ``citations`` given the chunks retrieved in this run (id -> text).

    A citation is supported when its chunk id is in ``retrieved`` and its quote (at least
    three words; case, whitespace, typographic quotes and surrounding quote marks or ellipses
    ignored) appears in that chunk's text. Pure: no I/O.
    """
    problems: list[CitationProblem] = []
    for citation in citations:
        text = retrieved.get(citation.chunk_id)
        quote = _canonical(citation.quote).strip(" \"'.…")
        if text is None:
            problems.append(CitationProblem(
                citation, f"chunk {citation.chunk_id!r} was not retrieved in this run"))
        elif len(quote.split()) < _MIN_QUOTE_WORDS:
            problems.append(CitationProblem(
                citation, f"the quote {citation.quote!r} is shorter than {_MIN_QUOTE_WORDS} words"))
        elif quote not in _canonical(text):
            problems.append(CitationProblem(
                citation, f"the quote {citation.quote!r} does not appear in chunk "
                          f"{citation.chunk_id!r}"))
    return problems


@dataclass(slots=True)
class ResearchReport:
    """What a research run produced.

    Attributes:
        status: ``succeeded`` (every citation verified, at least one), ``failed``,
            ``budget_exceeded`` or ``cancelled``.
        answer: the answer text (also when not verified, for inspection).
        citations: the claims with their evidence, as parsed from the last answer.
        problems: why citations were unsupported (empty when succeeded).
        sub_questions: what was recalled, the question first.
        retrieved: every chunk retrieved in this run, by id.
        shown: the ids of the chunks shown to the LLM, in the order shown (the best relevant
            ones; see ``Researcher``'s ``relevance``).
        findings: ids of the findings written to memory (only when succeeded).
        error: why it did not succeed.
    """

    question: str
    answer: str
    citations: list[Citation]
    status: str
    run_id: str
    sub_questions: list[str] = field(default_factory=list)
    retrieved: dict[str, Hit] = field(default_factory=dict)
    shown: list[str] = field(default_factory=list)
    problems: list[CitationProblem] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    usage: dict[str, float | int] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


_PLAN = (
    "Split this question into at most {n} short search queries that together cover what must "
    "be looked up. Reply with only a JSON list of strings.\n\nQuestion: {question}"
)
_PLACEHOLDER = "the answer: every rule, format, number and example the sources give for it"
_ANSWER = (
    "Answer the question using only the sources below. Every source line starts with its id "
    "(S1.3 is line 3 of source S1).\n\nQuestion: {question}\n\n"
    "Sources:\n{sources}\n\n"
    "Reply with only a JSON object, no other text:\n"
    '{{"answer": "<' + _PLACEHOLDER + '>", '
    '"claims": [{{"claim": "<one fact the answer states>", "lines": ["<the id of a line '
    'that states it, e.g. S1.3>"]}}]}}\n'
    "Give one to four claims. Every fact in the answer must be a claim that names the lines "
    "stating it."
)
_LINE_CHARS = 160  # a longer line is shown as its sentences, each with its own id
_LINE_REF = re.compile(r"\bS(\d+)\s*[.:]\s*(\d+)(?:\s*-\s*(?:S\1\s*[.:]\s*)?(\d+))?")
_MAX_RANGE = 8  # lines one reference may span (S1.2-S1.9)


def _json_value(text: str | None, opener: str) -> Any:
    """The first JSON value starting with ``opener`` (``{`` or ``[``) in an LLM reply."""
    if not text:
        return None
    text = re.sub(r"```(?:json)?", "", text)
    closer = "}" if opener == "{" else "]"
    start = text.find(opener)
    while start != -1:
        end = text.rfind(closer)
        while end > start:
            try:
                return json.loads(text[start:end + 1])
            except ValueError:
                end = text.rfind(closer, start, end)
        start = text.find(opener, start + 1)
    return None


class Researcher(Agent):
    """An agent that answers from memory with verified citations (see the module docstring).

    Args:
        name: the agent's name; its private namespace is ``agent:<name>``.
        llm, kernel, budget, fallbacks, llm_params, on_step: as for :class:`Agent`.
        namespaces: what it recalls from (default: its private namespace and ``global``); the
            kernel must have granted it read access to each (``kernel.grants.allow``).
        crew: a crew id; findings go to ``crew:<crew>`` (granted by the crew), else to the
            agent's private namespace.
        k: chunks recalled per query.
        max_subquestions: sub-questions the plan may add (0: recall the question alone, no
            planning call).
        max_sources: retrieved chunks shown to the LLM, best first.
        relevance: a chunk is shown only when its cosine similarity to a query is at least
            this fraction of the best similarity any retrieved chunk reached (0: show the best
            ``max_sources`` whatever they are). Ranks always have a first; this keeps a
            question about one document from being shown the nearest unrelated ones, which a
            small model then summarises as if they answered it. Chunks only the lexical index
            found (no similarity) are kept.
        max_attempts: answers the LLM may give; each later one is told what failed the check.
    """

    def __init__(
        self,
        name: str = "researcher",
        *,
        llm: Any = None,
        kernel: Kernel | None = None,
        namespaces: Sequence[str] | None = None,
        crew: str | None = None,
        k: int = 4,
        max_subquestions: int = 2,
        max_sources: int = 8,
        relevance: float = 0.6,
        max_attempts: int = 2,
        **agent_options: Any,
    ) -> None:
        agent_options.setdefault("role", "a careful researcher who cites what it read")
        super().__init__(name, llm=llm, kernel=kernel, **agent_options)
        if max_attempts < 1 or k < 1 or max_sources < 1 or max_subquestions < 0:
            raise UserError("Researcher needs max_attempts, k and max_sources >= 1 and "
                            "max_subquestions >= 0")
        if not 0.0 <= relevance <= 1.0:
            raise UserError(f"Researcher relevance must be in [0, 1], got {relevance}")
        self.namespaces = list(namespaces) if namespaces is not None else None
        self.crew = crew
        self.k = k
        self.max_subquestions = max_subquestions
        self.max_sources = max_sources
        self.relevance = relevance
        self.max_attempts = max_attempts

    def run(self, task: str, *, kernel: Kernel | None = None) -> ResearchReport:  # type: ignore[override]
        """Research ``task`` (sync facade over :meth:`arun`).

        Raises:
            UserError: called inside a running event loop (use ``await researcher.arun(...)``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(task, kernel=kernel))
        raise UserError("Researcher.run() was called inside an event loop; use "
                        "`await researcher.arun(question)`")

    async def arun(  # type: ignore[override]
        self, task: str, *, kernel: Kernel | None = None, run: Run | None = None,
        history: list[Message] | None = None, crew: str | None = None,
    ) -> ResearchReport:
        """Research ``task`` within ``run`` (a new run when None); findings go to
        ``crew:<crew>`` when ``crew`` is given (it overrides the constructor's ``crew``).

        Budget, provider and cancellation failures end the report with that status instead of
        raising; memory access that was not granted raises
        :class:`~agentos.errors.MemoryAccessDenied` (a configuration error of the caller).
        """
        from agentos.runtime.memory import agent_namespace, crew_namespace
        from agentos.runtime.memory.syscalls import AgentMemory

        kernel = kernel or self.kernel
        if kernel is None:
            from agentos.runtime.kernel import Kernel

            kernel = self.kernel = Kernel()
        owns_run = run is None
        if run is None:
            run = kernel.start_run(self.name, task, budget=self.budget)
        elif self.budget is not None:
            kernel.set_agent_budget(run, self.name, self.budget)
        crew = crew or self.crew
        write_ns = crew_namespace(crew) if crew else agent_namespace(self.name)
        memory = AgentMemory(kernel, run, self.name, namespaces=self.namespaces,
                             write_namespace=write_ns)
        report = ResearchReport(task, "", [], "failed", run.id, error="no answer yet")
        try:
            await self._research(kernel, run, memory, task, report, history or [])
        except BudgetExceeded as exc:
            report.status, report.error = "budget_exceeded", str(exc)
        except Cancelled as exc:
            report.status, report.error = "cancelled", str(exc)
        except (ProviderError, SyscallTimeout) as exc:
            report.status, report.error = "failed", str(exc)
        except BaseException as exc:
            if owns_run:
                kernel.end_run(run, "failed", report.answer, f"{type(exc).__name__}: {exc}")
            raise
        if owns_run:
            kernel.end_run(run, report.status, report.answer, report.error)
        report.usage = (run.usage if owns_run else run.agent(self.name)).as_dict()
        return report

    async def _complete(self, kernel: Kernel, run: Run, messages: list[Message],
                        report: ResearchReport) -> str:
        model = self.llm if self.llm is not None else kernel.settings.model
        params = {"max_tokens": 700, **self.llm_params}
        completion = await kernel.llm(run, self.name, model, messages, None,
                                      fallbacks=self.fallbacks, priority=self.priority,
                                      weight=self.weight, **params)
        step = Step(len(report.steps), completion.content)
        report.steps.append(step)
        self._notify(step)
        return completion.content or ""

    async def _research(self, kernel: Kernel, run: Run, memory: Any, question: str,
                        report: ResearchReport, history: list[Message]) -> None:
        system: Message = {"role": "system", "content": self.system_prompt(self._tools(kernel))}
        queries = [question]
        if self.max_subquestions:
            plan = await self._complete(kernel, run, [system, *history, {
                "role": "user", "content": _PLAN.format(n=self.max_subquestions, question=question)
            }], report)
            planned = _json_value(plan, "[")
            if isinstance(planned, list):
                queries += [q.strip() for q in planned if isinstance(q, str) and q.strip()]
        queries = list(dict.fromkeys(queries))[: 1 + self.max_subquestions]
        report.sub_questions = queries

        per_query: list[list[Hit]] = []
        for query in queries:
            hits = await memory.recall(query, k=self.k)
            per_query.append(hits)
            for hit in hits:
                report.retrieved.setdefault(hit.id, hit)
        # Best first: every query's first hit, then every query's second hit, ...; each once.
        order = dict.fromkeys(hits[rank].id for rank in range(self.k) for hits in per_query
                              if rank < len(hits))
        closest: dict[str, float] = {}  # chunk id -> its highest similarity to any query
        for hits in per_query:
            for hit in hits:
                if hit.similarity is not None:
                    closest[hit.id] = max(hit.similarity, closest.get(hit.id, hit.similarity))
        best = max(closest.values(), default=0.0)
        if self.relevance > 0 and best > 0:
            order = {i: None for i in order if closest.get(i, best) >= self.relevance * best}
        shown = [report.retrieved[i] for i in order][: self.max_sources]
        report.shown = [hit.id for hit in shown]
        if not shown:
            report.error = (f"nothing in memory ({', '.join(memory.namespaces)}) matches the "
                            "question; ingest documents first (`agentos memory ingest PATH`)")
            return
        labels = {f"S{i}": hit.id for i, hit in enumerate(shown, 1)}
        lines = {f"S{i}": _lines(hit.text) for i, hit in enumerate(shown, 1)}
        sources = "\n\n".join(
            f"[{label}] ({_where(hit)})\n"
            + "\n".join(f"{label}.{n} {line}" for n, line in enumerate(lines[label], 1))
            for label, hit in zip(labels, shown))
        messages: list[Message] = [system, *history, {
            "role": "user", "content": _ANSWER.format(question=question, sources=sources)}]
        retrieved_text = {i: h.text for i, h in report.retrieved.items()}
        for attempt in range(self.max_attempts):
            reply = await self._complete(kernel, run, messages, report)
            answer, citations, parse_error = _parse_answer(reply, labels, lines)
            report.answer, report.citations = answer, citations
            for citation in citations:
                _attribute(citation, report.retrieved)
            problems = check_citations(citations, retrieved_text)
            if parse_error:
                report.problems, report.error = problems, parse_error
            elif not citations:
                report.problems, report.error = [], "the answer cites no source"
            elif problems:
                report.problems = problems
                report.error = "unsupported citations: " + "; ".join(p.reason for p in problems)
            else:
                report.problems, report.error, report.status = [], None, "succeeded"
                break
            if attempt + 1 < self.max_attempts:
                messages += [{"role": "assistant", "content": reply}, {
                    "role": "user", "content": _feedback(report, labels)}]
        if report.status == "succeeded":
            for citation in report.citations:
                report.findings.append(await memory.remember(
                    f"{citation.claim} (quote: \"{citation.quote}\")",
                    {"kind": "finding", "cites": citation.chunk_id,
                     "cited_source": citation.source or "", "question": question[:300],
                     "run_id": run.id},
                ))


def _attribute(citation: Citation, retrieved: Mapping[str, Hit]) -> None:
    """Fill in the cited chunk's source and position. A quote that is not in the chunk it
    names but is, word for word, in exactly one other chunk retrieved in this run is
    re-pointed to that chunk first (small models mix up source labels); the check then
    verifies it like any other. A quote found nowhere retrieved keeps its chunk id and fails."""
    quote = _canonical(citation.quote).strip(" \"'.…")
    named = retrieved.get(citation.chunk_id)
    if quote and (named is None or quote not in _canonical(named.text)):
        holders = [i for i, hit in retrieved.items() if quote in _canonical(hit.text)]
        if len(holders) == 1 and (named is not None or citation.chunk_id.startswith("S")):
            citation.chunk_id = holders[0]
    hit = retrieved.get(citation.chunk_id)
    if hit is not None:
        citation.source, citation.position = hit.source, hit.position


def _closest_sentence(quote: str, text: str) -> str:
    """The sentence of ``text`` most like ``quote`` (to show the LLM what the source says)."""
    import difflib

    sentences = [x.strip() for x in re.split(r"(?<=[.!?])\s+|\n+", text) if len(x.split()) >= 3]
    if not sentences:
        return ""
    return max(sentences, key=lambda x: difflib.SequenceMatcher(None, quote.lower(), x.lower()).ratio())


def _feedback(report: ResearchReport, labels: Mapping[str, str]) -> str:
    """What failed the check, as a message to the LLM; for a quote that is not in its source,
    the sentence of that source closest to it (the check itself stays exact)."""
    by_id = {chunk_id: label for label, chunk_id in labels.items()}
    lines = [f"That reply failed the citation check: {report.error}."]
    for problem in report.problems:
        citation = problem.citation
        hit = report.retrieved.get(citation.chunk_id)
        if hit is None or "does not appear" not in problem.reason:
            continue
        quote = _canonical(citation.quote).strip(" \"'.…")
        elsewhere = [label for label, chunk_id in labels.items()
                     if quote in _canonical(report.retrieved[chunk_id].text)]
        if elsewhere:
            lines.append(f'- the quote "{citation.quote}" is in {elsewhere[0]}, not in '
                         f'{by_id.get(hit.id, hit.id)}: name {elsewhere[0]} as its source')
        else:
            closest = _closest_sentence(citation.quote, hit.text)
            lines.append(f'- the quote "{citation.quote}" is not in {by_id.get(hit.id, hit.id)}; '
                         f'its closest sentence there is: "{closest}"')
    lines.append("Reply again with only the JSON object; name the ids of the lines that "
                 "state each claim (like S1.3), or copy its quote word for word.")
    return "\n".join(lines)


def _where(hit: Hit) -> str:
    if hit.source:
        return f"{hit.source.rsplit('/', 1)[-1]}, part {hit.position}"
    return hit.namespace


def _lines(text: str) -> list[str]:
    """A chunk's text as the numbered lines the LLM sees: its non-empty lines, a line longer
    than ``_LINE_CHARS`` split into sentences. Each is in ``text`` word for word."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if len(line) <= _LINE_CHARS:
            out += [line] if line else []
        else:
            out += [part for part in re.split(r"(?<=[.!?;])\s+", line) if part]
    return out


def _line_refs(claim: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(label, line number) for every line id a claim names (``S1.3``, ``S1.3-S1.5``, ``S2:4``)
    in its ``lines``, ``line`` or ``source`` fields, in order, each once; bare line numbers
    (``"lines": [3, 4]``) count as lines of the claim's ``source`` label (``S1``)."""
    fields = [claim.get(key) for key in ("lines", "line", "source")]
    text = " ".join(" ".join(map(str, f)) if isinstance(f, list) else str(f or "") for f in fields)
    source = str(claim.get("source") or "").strip().strip("[]")
    if re.fullmatch(r"S\d+", source) and not _LINE_REF.search(text):
        numbers = " ".join(map(str, fields[0] if isinstance(fields[0], list) else [fields[0] or ""]))
        text = " ".join(f"{source}.{n}" for n in re.findall(r"\d+(?:\s*-\s*\d+)?", numbers))
    refs: list[tuple[str, int]] = []
    for match in _LINE_REF.finditer(text):
        first = int(match.group(2))
        last = int(match.group(3) or first)
        for n in range(first, min(max(first, last), first + _MAX_RANGE - 1) + 1):
            refs.append((f"S{match.group(1)}", n))
    return list(dict.fromkeys(refs))


def _quoted_lines(claim: str, refs: Sequence[tuple[str, int]], labels: Mapping[str, str],
                  lines: Mapping[str, Sequence[str]]) -> list[Citation]:
    """The citations of a claim that names lines: one per run of adjacent lines of a source,
    its quote those lines' text copied verbatim (widened by a neighbouring line while it is
    shorter than three words). A line that does not exist becomes a citation that fails the
    check, saying so."""
    citations: list[Citation] = []
    by_label: dict[str, list[int]] = {}
    for label, n in refs:
        if label not in labels or not 1 <= n <= len(lines[label]):
            citations.append(Citation(claim, labels.get(label, label),
                                      f"(line {label}.{n} does not exist)"))
        else:
            by_label.setdefault(label, []).append(n)
    for label, numbers in by_label.items():
        shown = lines[label]
        runs: list[list[int]] = []
        for n in sorted(set(numbers)):
            if runs and n == runs[-1][-1] + 1:
                runs[-1].append(n)
            else:
                runs.append([n])
        for run in runs:
            first, last = run[0], run[-1]
            while len(" ".join(shown[first - 1:last]).split()) < _MIN_QUOTE_WORDS:
                if last < len(shown):
                    last += 1
                elif first > 1:
                    first -= 1
                else:
                    break
            citations.append(Citation(claim, labels[label], " ".join(shown[first - 1:last])))
    return citations


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def _copied_placeholder(answer: str) -> bool:
    """Whether ``answer`` is a ``<...>`` placeholder or a copy of (part of) the answer
    placeholder of :data:`_ANSWER`, with or without its brackets and case."""
    words = _words(answer)
    return bool(re.fullmatch(r"<[^<>]*>", answer)) or (
        len(words.split()) >= 3 and words in _words(_PLACEHOLDER))


def _parse_answer(
    reply: str, labels: Mapping[str, str], lines: Mapping[str, Sequence[str]] | None = None,
) -> tuple[str, list[Citation], str | None]:
    """(answer, citations, error) from the LLM's JSON reply. A claim that names line ids
    (``S1.3``) cites those lines' text (see :func:`_quoted_lines`); else its ``quote`` is taken
    as given, and its ``source`` label ``S3`` becomes its chunk id (anything else is kept as the
    chunk id it names). An answer that is the prompt's ``<...>`` placeholder, copied (whole, or
    its words without the brackets), becomes the claims' text."""
    data = _json_value(reply, "{")
    if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
        return (reply or "").strip(), [], "the reply was not the JSON object asked for"
    citations: list[Citation] = []
    for claim in data.get("claims") or []:
        if not isinstance(claim, dict):
            continue
        text = str(claim.get("claim") or "")
        refs = _line_refs(claim) if lines is not None else []
        if refs:
            citations += _quoted_lines(text, refs, labels, lines or {})
            continue
        ref = str(claim.get("source") or claim.get("chunk_id") or "").strip().strip("[]")
        citations.append(Citation(text, labels.get(ref, ref), str(claim.get("quote") or "")))
    answer = data["answer"].strip()
    if _copied_placeholder(answer):  # the prompt's placeholder, copied (the 1.5B does)
        answer = " ".join(dict.fromkeys(c.claim.strip() for c in citations if c.claim.strip()))
    return answer, citations, None
