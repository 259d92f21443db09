"""Examples the sources state, as fixed tests the LLM may not change.

A small model writes tests whose expected values it computed itself, as wrong as its code, and
then bends the code to them. The worked examples of a task's sources ("1960 and 2040 are not
leap years", "the 42nd invoice of 2024 is ``KF-2024-00042-G``") are the one kind of test that
is right by construction. So the Coder asks the LLM to list them, one per line as
``f(args) == value`` or ``f(args) raises ValueError``, keeps a line only when every argument and
the expected value appear in the trusted text (the task and the sources' own words, not the
researcher's summary), and writes the kept ones to :data:`EXAMPLES_FILE`, which the LLM's
replies cannot overwrite. A pairing error (a stated argument with another stated value) is
caught where a sentence works the value out for other inputs (``A parcel of 3.2 kg therefore
costs 4.20 + 2 x 1.15 = EUR 6.50`` states 6.50 for 3.2 kg, not for 2, twice the 1.5B's
reading), not elsewhere; two lines giving one call different outcomes are both dropped.

Examples written out as code need no LLM: :func:`written_examples` reads doctests (``>>> f(1)``
with the output on the next line, as in a stub's docstring) with the standard library's
``doctest`` parser, and lines such as ``f(1) == 2`` or ``f([1, 2]) ➞ False``, so they are
exactly what the text says.

Pure functions: the Coder makes the LLM call and the ``write_file`` syscall.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EXAMPLES_FILE", "SOURCES_END", "SOURCES_HEADINGS", "Example", "written_examples", "example_lines", "examples_prompt",
    "examples_test", "parse_examples", "stated", "task_functions", "trusted_text",
]

EXAMPLES_FILE = "test_stated_examples.py"
SOURCES_HEADINGS = ("Sources cited (verbatim", "Sources retrieved (verbatim")
"""How a crew's research hands on the sources' own text (``agentos.crew.members``)."""
SOURCES_END = "(end of the sources)"
_MAX_EXAMPLES = 12


@dataclass(frozen=True, slots=True)
class Example:
    """One stated example: ``call`` returns ``expected``, or raises ``raises``."""

    call: str
    function: str
    expected: Any = None
    raises: str | None = None

    @property
    def line(self) -> str:
        return (f"{self.call} raises {self.raises}" if self.raises else
                f"{self.call} == {self.expected!r}")


def trusted_text(task: str) -> str:
    """The part of ``task`` that states facts: all of it, unless it hands on sources verbatim
    (a crew's research); then the task's own words before its first ``## `` section plus each
    verbatim section (from its heading to :data:`SOURCES_END`), leaving out what a model wrote
    (the researcher's answer, a previous output's code)."""
    starts = sorted(i for heading in SOURCES_HEADINGS
                    for i in (m.start() for m in re.finditer(re.escape(heading), task)))
    if not starts:
        return task
    first_section = task.find("\n## ")
    parts = [task[:first_section] if first_section >= 0 else ""]
    for start in starts:
        end = task.find(SOURCES_END, start)
        parts.append(task[start:end if end >= 0 else len(task)])
    return "\n".join(parts)


def task_functions(task: str) -> list[str]:
    """The functions a task asks for: ``function name(`` or ``def name(`` in its text."""
    names = re.findall(r"\b(?:function|def)\s+`?([A-Za-z_]\w*)`?\s*\(", task)
    return list(dict.fromkeys(names))


def examples_prompt(task: str, functions: Sequence[str]) -> str:
    """The LLM prompt that asks for the examples ``task`` states for ``functions``."""
    name = functions[0]
    listed = ", ".join(f"`{f}`" for f in functions)
    return (
        f"The text below describes {listed}. List every example the text itself gives: a call "
        f"with the result the text states for it, and a call the text says is an error.\n\n"
        f"<<<\n{task.strip()}\n>>>\n\n"
        f"Write one example per line, in exactly one of these two forms (Python literals):\n"
        f"{name}(<arguments>) == <the result the text gives>\n"
        f"{name}(<arguments>) raises <the exception the text names>\n"
        f"Take the arguments and results from the text's own examples and words; never compute "
        f"or invent an example the text does not give. No other text. If the text gives no "
        f"example, reply NONE.")


def parse_examples(reply: str, trusted: str, functions: Sequence[str]
                   ) -> tuple[list[Example], list[str]]:
    """The examples of ``reply`` that ``trusted`` states, and why each other line was dropped.

    A line is kept when it calls one of ``functions`` with literal arguments, each stated in
    ``trusted`` (a string verbatim, a number in one of its usual spellings), and gives either a
    literal result stated there too (a bool counts as stated: the text's valid/invalid) or an
    exception class that the text names. Calls given two different outcomes are dropped."""
    kept: list[Example] = []
    dropped: list[str] = []
    for raw in example_lines(reply):
        example, why = _example(raw, trusted, functions)
        if example is None:
            if why:
                dropped.append(f"{raw}: {why}")
            continue
        kept.append(example)
    unique, conflicting = _one_outcome_each(kept)
    dropped += [f"{call}: given two different outcomes" for call in conflicting]
    return unique, dropped


def _one_outcome_each(kept: Sequence[Example]) -> tuple[list[Example], list[str]]:
    """``kept`` without repeats and without the calls given two different outcomes (at most
    :data:`_MAX_EXAMPLES`), and those calls, sorted."""
    outcomes: dict[str, set[str]] = {}
    for example in kept:
        outcomes.setdefault(example.call, set()).add(example.line)
    conflicting = sorted(call for call, lines in outcomes.items() if len(lines) > 1)
    unique = list({e.line: e for e in kept if e.call not in conflicting}.values())
    return unique[:_MAX_EXAMPLES], conflicting


_ARROW = re.compile(r"^\s*(?P<call>[A-Za-z_]\w*\(.*\))\s*(?:==>|=>|➞|→|->|==|returns|should return)"
                    r"\s*(?P<value>.+?)\s*$")
_DELIMITER = re.compile(r"^\s*(?:[rbuRBU]{0,2})(?:\"\"\"|\'\'\')")


def written_examples(text: str, functions: Sequence[str]) -> list[Example]:
    """The examples ``text`` writes out as code, for ``functions``: doctests (``>>> f(1)`` and
    the output below it, a literal or a built-in exception's ``Traceback``), read by
    :class:`doctest.DocTestParser`, and lines ``f(args) <arrow> literal`` with an arrow of
    ``==``, ``->``, ``=>``, ``==>``, ``➞``, ``→``, ``returns`` or ``should return`` (not a
    bare ``=``: ``tri(1) = 3`` is how a text defines a sequence, not what ``tri`` returns).

    The arguments must be literals, and so must the result (an object's repr, printed text or
    no output is left out), of the return type the text annotates, if any. Calls shown with
    two different outcomes are dropped, as in :func:`parse_examples`."""
    kept: list[Example] = []
    for item in doctest.DocTestParser().get_examples(text):
        # a docstring's closing quotes on the line after the output belong to the code
        want = "\n".join(line for line in item.want.splitlines() if not _DELIMITER.match(line))
        kept += _written(item.source.strip(), want, item.exc_msg, functions, text)
    for line in text.splitlines():
        match = _ARROW.match(line)
        if match and not line.lstrip().startswith(">>>"):
            value = re.split(r"\s+#", match["value"], maxsplit=1)[0].rstrip(" .,;")
            kept += _written(match["call"], value, None, functions, text)
    return _one_outcome_each(kept)[0]


def _written(source: str, want: str, exc_msg: str | None, functions: Sequence[str], text: str
             ) -> list[Example]:
    """``[the example]`` when ``source`` calls one of ``functions`` with literal arguments and
    ``want`` is a literal of the return type ``text`` annotates (or ``exc_msg`` names a built-in
    exception), else ``[]``."""
    try:
        node = ast.parse(source, mode="eval").body
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in functions):
            return []
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            ast.literal_eval(argument)
        if exc_msg is not None:
            name = exc_msg.split(":", 1)[0].strip().rsplit(".", 1)[-1]
            exception = getattr(builtins, name, None)
            ok = isinstance(exception, type) and issubclass(exception, Exception)
            return [Example(ast.unparse(node), node.func.id, None, name)] if ok else []
        expected = ast.literal_eval(want.strip())
        returns = _return_annotation(text, node.func.id)
        if returns is not None and not _of_type(expected, returns):
            return []
        return [Example(ast.unparse(node), node.func.id, expected)]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []


def examples_test(examples: Sequence[Example], module: str) -> str:
    """The fixed test file for ``examples``: one test per example, importing from ``module``."""
    functions = sorted({e.function for e in examples})
    lines = [
        '"""The examples the task\'s sources state, one test each, written by the Coder from',
        "the sources' own words. Replies cannot change this file: make the code pass it.\"\"\"",
        "", "import pytest", "", f"from {module} import {', '.join(functions)}", "",
    ]
    for number, example in enumerate(examples, 1):
        lines += ["", f"def test_stated_example_{number}():"]
        if example.raises:
            lines += [f"    with pytest.raises({example.raises}):", f"        {example.call}"]
        elif _has_float(example.expected):
            lines.append(f"    assert {example.call} == pytest.approx({example.expected!r})")
        else:
            lines.append(f"    assert {example.call} == {example.expected!r}")
    return "\n".join(lines) + "\n"


def example_lines(reply: str) -> Iterable[str]:
    """The lines of ``reply`` that may be examples: list markers, backticks, ``assert`` and
    trailing comments taken off; fences, blank lines and ``NONE`` left out."""
    for line in reply.splitlines():
        line = line.strip()
        line = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", line)
        line = re.split(r"\s+#", line, maxsplit=1)[0].strip("` ").rstrip(";,.")
        line = re.sub(r"^assert\s+", "", line)
        if line and not line.startswith("```") and line.upper() != "NONE":
            yield line


def _example(line: str, trusted: str, functions: Sequence[str]) -> tuple[Example | None, str]:
    raises = None
    match = re.fullmatch(r"(.+\))\s+raises\s+([A-Za-z_]\w*)(?:\(.*\))?", line)
    if match:
        source, raises = match.group(1), match.group(2)
        exception = getattr(builtins, raises, None)
        if not (isinstance(exception, type) and issubclass(exception, Exception)):
            return None, f"{raises} is not a built-in exception"
        if not re.search(rf"\b{raises}\b", trusted):
            return None, f"the text does not name {raises}"
    else:
        source = line
    try:
        node = ast.parse(source, mode="eval").body
    except SyntaxError:
        return None, "" if "(" not in line else "not Python"
    expected: Any = None
    if raises is None:
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1
                and isinstance(node.ops[0], ast.Eq)):
            return None, "not of the form call == value"
        try:
            expected = ast.literal_eval(node.comparators[0])
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None, "the result is not a literal"
        node = node.left
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in functions):
        return None, f"not a call of {', '.join(functions)}"
    try:
        arguments = [ast.literal_eval(a) for a in node.args]
        arguments += [ast.literal_eval(k.value) for k in node.keywords if k.arg]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, "an argument is not a literal"
    if len(arguments) != len(node.args) + len(node.keywords):
        return None, "an argument is not a literal"
    for argument in arguments:
        if not stated(argument, trusted):
            return None, f"the text does not state the argument {argument!r}"
    if raises is not None:
        where = [s for s in _sentences(trusted) if re.search(rf"\b{raises}\b", s)]
        if not any(all(stated(a, s) and not _bound(a, s) for a in arguments) for s in where):
            return None, f"no sentence naming {raises} states these arguments as an error case"
        return Example(ast.unparse(node), node.func.id, None, raises), ""
    if not (isinstance(expected, bool) or stated(expected, trusted)):
        return None, f"the text does not state the result {expected!r}"
    worked = _worked_for(expected, trusted)
    numbers = [a for a in arguments if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if worked and numbers and not any(n in inputs for n in numbers for inputs in worked):
        shown = ", ".join(repr(i) for inputs in worked for i in inputs)
        return None, (f"the text works {expected!r} out for {shown}, not for these arguments")
    returns = _return_annotation(trusted, node.func.id)
    if returns is not None and not _of_type(expected, returns):
        return None, f"the result {expected!r} is not a {ast.unparse(returns)}"
    return Example(ast.unparse(node), node.func.id, expected, raises), ""


_NUMBER = r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)"
_WORKED = re.compile(  # arithmetic (numbers, operators, spaces) = an optional currency, a number
    r"((?:\d+(?:\.\d+)?|[\s+*/×x()-])+?)=\s*(?:EUR|USD|GBP|\$|€|£)?\s*"
    rf"({_NUMBER})")


def _worked_for(expected: Any, text: str) -> list[list[float]]:
    """For each sentence of ``text`` that works ``expected`` out (``4.20 + 2 x 1.15 = EUR
    6.50``), the other numbers it states, outside the arithmetic: the inputs it works it out
    for (``A parcel of 3.2 kg therefore costs 4.20 + 2 x 1.15 = EUR 6.50``: 3.2). A model that
    pairs the result with an operand (``2``) has misread the sentence. A sentence is taken
    across the line breaks of its paragraph."""
    if not isinstance(expected, (int, float)) or isinstance(expected, bool):
        return []
    found: list[list[float]] = []
    paragraphs = re.split(r"\n\s*\n", text)
    for sentence in (s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+",
                                                            re.sub(r"\s*\n\s*", " ", p))):
        for match in _WORKED.finditer(sentence):
            if float(match.group(2)) != expected or not re.search(r"\d", match.group(1)):
                continue
            outside = sentence[:match.start()] + " " + sentence[match.end():]
            inputs = [float(n) for n in re.findall(_NUMBER, outside)]
            if inputs:
                found.append(inputs)
    return found


def _sentences(text: str) -> list[str]:
    """``text`` split into sentences, lines and table rows."""
    return [s for s in re.split(r"(?<=[.!?])\s+|\n", text) if s.strip()]


def _bound(value: Any, sentence: str) -> bool:
    """Whether ``value`` is stated in ``sentence`` only as a limit (``heavier than 30``, ``up
    to 2``, ``outside 1..99999``): a limit is where the error cases start, not one of them."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    spelled = [m for m in re.finditer(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])", sentence)
               if float(m.group()) == value]
    before = r"(?:than|above|below|over|under|up to|at most|at least|outside|exceeds?|to|" \
             r"between|from)\s*\W{0,3}$|\.\.\s*$"
    after = r"^\s*(?:\.\.|to\b|-\s*\d)"
    return bool(spelled) and all(
        re.search(before, sentence[:m.start()]) or re.search(after, sentence[m.end():])
        for m in spelled)


def _return_annotation(text: str, function: str) -> ast.expr | None:
    """The return annotation the text gives ``function`` (``f(x: int) -> tuple[float, int]``)."""
    match = re.search(rf"\b{re.escape(function)}\s*\([^)]*\)\s*->\s*([A-Za-z_][\w\[\], ]*\]|"
                      rf"[A-Za-z_]\w*)", text)
    if match is None:
        return None
    try:
        return ast.parse(match.group(1).strip(), mode="eval").body
    except SyntaxError:
        return None


def _of_type(value: Any, annotation: ast.expr) -> bool:
    """Whether ``value`` is of the annotated type (``str``, ``int``, ``float``, ``bool``,
    ``tuple[...]``, ``list[...]``); True for any other annotation. An int is not a float: a
    whole number where the text gives a float is the model's rewriting, not the text's value."""
    simple = {"str": str, "float": float, "bool": bool}
    if isinstance(annotation, ast.Name):
        if annotation.id == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        kind = simple.get(annotation.id)
        return kind is None or isinstance(value, kind)
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        container = {"tuple": tuple, "list": list}.get(annotation.value.id)
        if container is None:
            return True
        if not isinstance(value, container):
            return False
        items = (annotation.slice.elts if isinstance(annotation.slice, ast.Tuple)
                 else [annotation.slice])
        if container is tuple and not any(isinstance(i, ast.Constant) for i in items):
            return len(items) == len(value) and all(_of_type(v, a) for v, a in zip(value, items))
        return all(_of_type(v, items[0]) for v in value)
    return True


def stated(value: Any, text: str) -> bool:
    """Whether ``text`` states ``value``: a string verbatim, a number in one of its usual
    spellings (``6.5``/``6.50``, ``-10.0``/``-10``), a tuple or list element by element."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (tuple, list)):
        return bool(value) and all(stated(v, text) for v in value)
    if isinstance(value, str):  # as a whole word: not a prefix of a longer stated string
        return bool(value.strip()) and re.search(
            rf"(?<![\w-]){re.escape(value)}(?![\w-])", text) is not None
    if isinstance(value, (int, float)):
        spellings = {repr(value), str(value)}
        if isinstance(value, float):
            spellings |= {f"{value:.2f}", f"{value:.1f}"}
            if value.is_integer():
                spellings.add(str(int(value)))
        return any(re.search(rf"(?<![\w.]){re.escape(s)}(?![\w])", text) for s in spellings)
    return False


def _has_float(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)
