"""The Coder: an agent that writes code in a per-run workspace and runs it and its tests in the
sandbox until the tests pass.

Each run gets ``<data_dir>/workspaces/<run id>/<agent name>/``. The LLM works through six tools,
each a kernel tool syscall (so ``agentos runs show`` lists every write and every test run):
``list_files``, ``read_file``, ``write_file``, ``edit_file`` (replace one exact snippet),
``run_python`` (a file of the workspace, in the sandbox) and ``run_tests`` (``pytest`` in the
sandbox). A path that leaves the workspace (absolute, ``..``, or a symlink pointing out) is
refused with a message the LLM can act on.

Repairs keep a small model's loop on track, each reported in the tool's result: a
``write_file`` of Python that does not compile says so at once (with the line), and
``run_tests`` first repairs the test files: it adds the import a test lacks when it uses a name
that exactly one module beside it defines (``from solution import f``: small models write tests
that call ``f`` without importing it, then cannot read the ``NameError``), and rewrites
``assert f(x) == ValueError(...)``, which can never pass, as ``with pytest.raises(ValueError)``.

When the LLM says it is done, the Coder runs the tests itself; if they fail (or there are none)
it tells the LLM so and the loop goes on, until they pass or the step or budget limit ends it.
The result holds the files, the last test output and a summary either way.

Two edit formats. ``"tools"`` (the default): the LLM calls the six tools itself, in one growing
conversation. ``"whole"`` (for small local models, as Aider's "whole" format): the LLM is offered
no tools; it replies with every file it writes as a fenced code block under the file's name, the
Coder writes them (``write_file`` syscalls) and runs the tests (``run_tests``), and each next
turn is a fresh, short prompt (the task, the files as they are, pytest's failures) instead of
the whole history; after a reply that repeated the files unchanged, the next prompt leaves the
files out and asks for them anew, sampled at temperature 1, and so it does after a change that
failed no fewer of the sources' stated examples (below) than the best turn so far; turns that
end on code worse than an earlier turn's restore that turn's files. With ``candidates`` above 1,
the first prompt and each asking anew get up to that many replies, each tested, and the one failing the
fewest stated examples is kept (best of n, with the sources' examples as the check: a small
model's single sample is often wrong where one of a few is right). Code in a Markdown block is
what code models write best; inside a tool call's
JSON string they must escape every quote and newline, and the re-sent history grows with every
turn.

A small model computes the expected values of its own tests and gets them wrong as often as its
code, then bends correct code to the wrong test. So in the ``"whole"`` format a failing
``assert f(x) == <value>`` whose value the task (with its sources) never states, or a
``pytest.raises`` block around a call that returned normally, is settled by a separate short LLM
call that quotes the task: for a value, it writes straight-line Python computing what the rules
give for that one call (neither side's value shown), which the Coder runs in the sandbox and
compares; for a raises case, it reasons in words and answers whether the call must raise. When
the code's side wins the test is corrected (the literal replaced, or the raises block replaced
by the bare call) as a ``write_file`` syscall and the tests run again; otherwise the next turn
is told what was found. Every call, write and run is a syscall.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.agents.base import Agent, AgentResult, Step, ToolOutcome
from agentos.agents.stated import (
    EXAMPLES_FILE, Example, written_examples, examples_prompt, examples_test, parse_examples, stated,
    task_functions, trusted_text,
)
from agentos.errors import BudgetExceeded, Cancelled, ToolFailed, ToolRetry, UserError
from agentos.runtime.registry import ToolRegistry
from agentos.runtime.tool import Tool, tool

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.llm.types import LLM, Message
    from agentos.runtime.scheduler import Budget
    from agentos.sandbox import IsolationMode, Limits, SandboxResult

__all__ = [
    "Coder", "CoderResult", "Disagreement", "Workspace", "add_missing_imports",
    "disagreements", "drop_copied_definitions", "drop_import_time_checks", "drop_self_imports", "expectation_notes", "file_blocks",
    "raises_for_exception_asserts", "stated_failed", "stated_failures",
]

_MAX_FILE_BYTES = 1_000_000
_MAX_READ_CHARS = 20_000
_TEST_TAIL_CHARS = 3_000
_TOOL_TAIL_CHARS = 1_500  # of pytest's output, in a tool result the LLM reads
_SHOW_FILE_CHARS = 4_000  # given files up to this size are shown in the task
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".checks"}

_INSTRUCTIONS = """\
You work in a workspace directory through your tools: write_file (a whole file), edit_file \
(replace one exact snippet), read_file, list_files, run_tests (pytest on the workspace) and \
run_python (run a .py file of the workspace). Paths are relative to the workspace, e.g. 'solution.py'.
Tests are pytest files named test_*.py that import the code (from solution import ...). If the \
task gives no tests, write them first, from the task's examples. Test that a call raises with \
`with pytest.raises(ValueError):`.
After each change run run_tests, read the failures, fix the code and run the tests again. When \
all tests pass, answer with a one-paragraph summary of what you built.
Code runs in a sandbox ({isolation})."""

_WHOLE_INSTRUCTIONS = """\
You write Python code and its pytest tests. Reply with the complete content of every file you \
write, each file in its own fenced code block, with the file's name alone on the line before the \
block, like this:

solution.py
```python
<the whole content of solution.py>
```

test_solution.py
```python
<the whole content of test_solution.py>
```

Use the names the task gives (files, functions, arguments). Test files are named test_*.py and \
import the code they test (from solution import ...). Test a call that must raise with \
`with pytest.raises(ValueError):` (import pytest). The Coder writes your files and runs pytest in \
a sandbox ({isolation}), then shows you the result."""

_WHOLE_FIRST = """\

Reply with the files (each under its name, in a fenced block). The tests use the examples the \
task and its sources give, with their expected values copied exactly, and the error cases they \
name; do not make up an expected value you cannot check against them."""

_WHOLE_FIX = """\
Each failure is either a bug in the code or a wrong expected value in a test. The task and its \
sources are the authority: check every failing test's expected value against them. Fix the code \
where the code is wrong; fix or delete a test whose expected value does not follow from the \
sources. Reply with the complete corrected files (each under its name, in a fenced block)."""


@dataclass(slots=True)
class CoderResult(AgentResult):
    """An :class:`~agentos.agents.AgentResult` plus what the Coder built.

    ``status`` is ``succeeded`` only when the Coder's own final test run passed; ``tests_failed``
    when the LLM stopped with failing (or no) tests after every round of feedback; else as for
    an agent (``max_steps``, ``budget_exceeded``, ``failed``, ``cancelled``).

    Attributes:
        workspace: the run's workspace directory.
        files: every text file in the workspace (relative path → content).
        tests_passed: the last test run passed (at least one test ran, none failed).
        test_output: pytest's output from the last test run ("" when none ran).
        test_runs: how many times the tests ran (the LLM's runs and the Coder's checks).
        summary: one line: status, files, tests, LLM turns.
        stated_examples: the examples the sources state that the Coder wrote as a fixed test
            file (``stated_examples=True``), as ``call == value`` / ``call raises E`` lines.
    """

    workspace: Path | None = None
    files: dict[str, str] = field(default_factory=dict)
    tests_passed: bool = False
    test_output: str = ""
    test_runs: int = 0
    summary: str = ""
    stated_examples: list[str] = field(default_factory=list)


class Workspace:
    """A directory the Coder's tools may touch, and nothing outside it.

    Args:
        root: the directory (created if missing).
        limits: sandbox limits for ``run_python`` and ``run_tests``.
        isolation: the sandbox mode (``"bwrap"``, or ``"rlimits-only"`` when asked for by name).
    """

    def __init__(
        self, root: Path, *, limits: Limits | None = None, isolation: IsolationMode = "bwrap"
    ) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self.isolation: IsolationMode = isolation
        self.last_tests: SandboxResult | None = None
        self.test_runs = 0
        self.changed = True  # a file changed since the last test run
        self.same_writes = 0  # write_file calls in a row that changed nothing

    def path(self, relative: str) -> Path:
        """The absolute path of ``relative``, symlinks resolved.

        Raises:
            ToolRetry: the path is empty, absolute, or resolves outside the workspace.
        """
        fix = "use a path relative to the workspace, like 'solution.py' or 'pkg/util.py'"
        if not relative or not relative.strip():
            raise ToolRetry(f"the path is empty; {fix}")
        if Path(relative).is_absolute():
            raise ToolRetry(f"path {relative!r} is absolute, outside the workspace; {fix}")
        resolved = (self.root / relative).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ToolRetry(f"path {relative!r} leads outside the workspace; {fix}")
        return resolved

    def files(self) -> dict[str, str]:
        """Every text file (UTF-8, under 1 MB), by relative path; caches skipped."""
        out: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if any(part in _SKIP_DIRS for part in rel.parts) or path.is_symlink():
                continue
            if path.is_file() and path.stat().st_size <= _MAX_FILE_BYTES:
                try:
                    out[rel.as_posix()] = path.read_text()
                except (UnicodeDecodeError, OSError):
                    continue
        return out

    # --- the tools' bodies ---------------------------------------------------------------

    def list_files(self) -> str:
        entries = []
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if any(part in _SKIP_DIRS for part in rel.parts):
                continue
            if path.is_symlink():
                entries.append(f"{rel.as_posix()} (symlink)")
            elif path.is_file():
                entries.append(f"{rel.as_posix()} ({path.stat().st_size} bytes)")
        return "\n".join(entries) or "(the workspace is empty)"

    def read_file(self, path: str) -> str:
        target = self.path(path)
        if not target.is_file():
            raise ToolRetry(f"{path!r} is not a file; list_files shows what exists")
        try:
            text = target.read_text()
        except UnicodeDecodeError:
            raise ToolRetry(f"{path!r} is not UTF-8 text") from None
        if len(text) > _MAX_READ_CHARS:
            return text[:_MAX_READ_CHARS] + f"\n... [{len(text) - _MAX_READ_CHARS} more chars]"
        return text

    def write_file(self, path: str, content: str) -> str:
        target = self.path(path)
        data = content.encode()
        if len(data) > _MAX_FILE_BYTES:
            raise ToolRetry(f"{path!r}: {len(data)} bytes is over the {_MAX_FILE_BYTES} limit")
        if target.is_dir():
            raise ToolRetry(f"{path!r} is a directory")
        same = target.is_file() and target.read_bytes() == data
        self.same_writes = self.same_writes + 1 if same else 0
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.changed = self.changed or not same
        wrote = f"wrote {path} ({len(data)} bytes, {content.count(chr(10)) + 1} lines)"
        if same:
            wrote = (f"{path} already had exactly this content (written {self.same_writes + 1} "
                     "times in a row): nothing changed; change what is wrong instead of writing "
                     "the same again")
        return wrote + _python_problems(path, content)

    def edit_file(self, path: str, search: str, replace: str) -> str:
        target = self.path(path)
        if not target.is_file():
            raise ToolRetry(f"{path!r} does not exist; create it with write_file")
        text = target.read_text()
        count = text.count(search) if search else 0
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            raise ToolRetry(
                f"the search text {where} in {path}; give an exact snippet that occurs once "
                "(copy it from read_file), or rewrite the file with write_file"
            )
        target.write_text(text.replace(search, replace, 1))
        self.changed = True
        return f"edited {path}: replaced {search.count(chr(10)) + 1} line(s)"

    def run_python(self, path: str) -> dict[str, Any]:
        target = self.path(path)
        if not target.is_file():
            raise ToolRetry(f"{path!r} is not a file; write it first")
        from agentos.sandbox import run

        rel = target.relative_to(self.root).as_posix()
        result = run(["python", "-E", "-s", rel], self.root, limits=self.limits,
                     isolation=self.isolation)
        return _brief(result, tail=_TEST_TAIL_CHARS)

    def run_tests(self, path: str = "") -> dict[str, Any]:
        from agentos.sandbox import run

        # A test file that does not import (the LLM's, with a syntax error) must not keep the
        # other files' tests, the stated examples among them, from running and being reported.
        argv = ["python", "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider",
                "--color=no", "--continue-on-collection-errors"]
        if path:
            argv.append(self.path(path).relative_to(self.root).as_posix())
        repaired = self.repair_tests()
        unchanged = not self.changed and self.last_tests is not None
        result = run(argv, self.root, limits=self.limits, isolation=self.isolation)
        self.last_tests = result
        self.test_runs += 1
        self.changed = False
        brief = _brief(result, tail=_TOOL_TAIL_CHARS)
        brief["passed"] = result.returncode == 0
        if repaired:
            brief["repaired"] = "; ".join(repaired)
        if result.returncode == 5:
            brief["note"] = "no tests were collected: write test_*.py files with test_ functions"
        elif result.returncode != 0 and unchanged:
            brief["note"] = ("no file changed since the last test run, so the tests fail the same "
                             "way: change the code with write_file or edit_file first")
        return brief

    def repair_tests(self) -> list[str]:
        """Repair the workspace before a test run: a module's imports of itself go
        (:func:`drop_self_imports`), and so do its import-time self-checks
        (:func:`drop_import_time_checks`); in each ``test_*.py``, copies of the modules' functions go
        (:func:`drop_copied_definitions`), asserts that compare a call with an
        exception become ``pytest.raises`` blocks (:func:`raises_for_exception_asserts`), and
        the imports it lacks are added (:func:`add_missing_imports`, over the modules in the
        same folder). Returns what was changed, as notes for the LLM (empty: nothing was)."""
        notes: list[str] = []
        for module in sorted(self.root.rglob("*.py")):
            rel = module.relative_to(self.root)
            if (module.stem.startswith("test_") or module.is_symlink()
                    or any(part in _SKIP_DIRS for part in rel.parts)):
                continue
            try:
                text = module.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            fixed, dropped = drop_self_imports(text, module.stem)
            fixed, checks = drop_import_time_checks(fixed)
            if dropped or checks:
                module.write_text(fixed)
                self.changed = True
            if dropped:
                notes.append(f"removed `{'`, `'.join(dropped)}` from {rel.as_posix()}: a module "
                             "does not import itself (only the tests import it)")
            if checks:
                notes.append(f"removed `{'`, `'.join(checks)}` from {rel.as_posix()}: it ran "
                             "when the tests imported the module; checks belong in test_*.py")
        for test in sorted(self.root.rglob("test_*.py")):
            rel = test.relative_to(self.root)
            if any(part in _SKIP_DIRS for part in rel.parts) or test.is_symlink():
                continue
            modules: dict[str, str] = {}
            for module in sorted(test.parent.glob("*.py")):
                if module.stem.startswith("test_") or module.stem == "conftest":
                    continue
                try:
                    modules[module.stem] = module.read_text()
                except (OSError, UnicodeDecodeError):
                    continue
            try:
                text = test.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            fixed, copied = drop_copied_definitions(text, modules)
            if copied:
                notes.append(f"removed the copy of `{'`, `'.join(copied)}` from {rel.as_posix()}: "
                             "the tests must import and test the module's own code")
            fixed, rewritten = raises_for_exception_asserts(fixed)
            if rewritten:
                notes.append(
                    f"rewrote line(s) {', '.join(map(str, rewritten))} of {rel.as_posix()}, "
                    "which compared a call's result with an exception (that can never pass), "
                    "as `with pytest.raises(...)`: a call that must raise is tested that way")
            fixed, added = add_missing_imports(fixed, modules)
            if added:
                notes.append(f"added `{'`, `'.join(added)}` to {rel.as_posix()} (it used "
                             "these names without importing them)")
            if fixed != text:
                test.write_text(fixed)
                self.changed = True
        return notes

    def tools(self) -> list[Tool]:
        """The six tools, bound to this workspace."""
        ws = self

        def list_files() -> str:
            """List the files in the workspace with their sizes."""
            return ws.list_files()

        def read_file(path: str) -> str:
            """Read a text file of the workspace.

            Args:
                path: relative to the workspace, e.g. 'solution.py'.
            """
            return ws.read_file(path)

        def write_file(path: str, content: str) -> str:
            """Create or overwrite a file of the workspace with the whole content.

            Args:
                path: relative to the workspace, e.g. 'solution.py'.
                content: the complete new content of the file.
            """
            return ws.write_file(path, content)

        def edit_file(path: str, search: str, replace: str) -> str:
            """Replace one exact snippet of a file (it must occur exactly once).

            Args:
                path: relative to the workspace.
                search: the exact text to replace, copied from the file.
                replace: the text to put in its place.
            """
            return ws.edit_file(path, search, replace)

        def run_python(path: str) -> dict[str, Any]:
            """Run a Python file of the workspace in the sandbox; returns exit code and output.

            Args:
                path: the .py file, relative to the workspace.
            """
            return ws.run_python(path)

        def run_tests(path: str = "") -> dict[str, Any]:
            """Run pytest on the workspace (or one test file) in the sandbox; an import of the
            workspace's code that a test file lacks is added first.

            Args:
                path: a test file to run; empty runs every test_*.py.
            """
            return ws.run_tests(path)

        return [tool(fn) for fn in (write_file, edit_file, read_file, list_files, run_tests,
                                    run_python)]


def _bound_names(tree: ast.AST) -> tuple[set[str], set[str], bool]:
    """(names a module binds anywhere, names it reads, whether it star-imports)."""
    bound: set[str] = set()
    used: set[str] = set()
    star = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound, used, star


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _module_names(source: str) -> set[str]:
    """The names a module defines at top level; for one with a syntax error (still being
    fixed), those of its ``def`` and ``class`` lines at column 0."""
    try:
        return _top_level_names(ast.parse(source))
    except SyntaxError:
        return set(re.findall(r"^(?:async\s+def|def|class)\s+(\w+)", source, re.M))


def add_missing_imports(test: str, modules: Mapping[str, str]) -> tuple[str, list[str]]:
    """``test`` with ``import pytest`` added when it uses ``pytest`` unimported, and
    ``from <module> import <names>`` for every name it reads but never
    binds (nor a builtin) that exactly one of ``modules`` (name -> source) defines at top
    level (a module with a syntax error: its ``def``/``class`` lines at column 0), after its
    leading docstring and imports; and the import lines added. A test that star-imports gets
    only ``import pytest``; one that does not parse comes back unchanged. Pure: no I/O."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return test, []
    bound, used, star = _bound_names(tree)
    missing = sorted(used - bound - set(dir(builtins)))
    if star:  # names may come from the star import: only pytest is added
        missing = [name for name in missing if name == "pytest"]
    if not missing:
        return test, []
    defined = {name: _module_names(source) for name, source in modules.items()}
    wanted: dict[str, list[str]] = {}
    for name in missing:
        owners = [module for module, names in defined.items() if name in names]
        if len(owners) == 1:
            wanted.setdefault(owners[0], []).append(name)
    added = ["import pytest"] if "pytest" in missing and "pytest" not in defined else []
    added += [f"from {module} import {', '.join(names)}" for module, names in wanted.items()]
    if not added:
        return test, []
    after = 0  # the line after which the imports go
    for node in tree.body:
        docstring = (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, str) and node is tree.body[0])
        if not (docstring or isinstance(node, (ast.Import, ast.ImportFrom))):
            break
        after = node.end_lineno or after
    lines = test.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n") and after >= len(lines):
        lines[-1] += "\n"
    lines[after:after] = [line + "\n" for line in added]
    return "".join(lines), added


def drop_copied_definitions(test: str, modules: Mapping[str, str]) -> tuple[str, list[str]]:
    """``test`` without the top-level functions and classes that copy one of ``modules``' (name
    -> source): an undecorated ``def``/``class`` whose name is not a test's and that exactly one
    module defines at top level. A small model pastes the function it wrote into its test
    file; the tests then check that copy, pass, and say nothing of the module. Returns the new
    source and the names removed (:func:`add_missing_imports` then imports them from the
    module); one that does not parse comes back unchanged. Pure: no I/O."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return test, []
    owners: dict[str, int] = {}
    for source in modules.values():
        for name in _module_names(source):
            owners[name] = owners.get(name, 0) + 1
    copies = [node for node in tree.body
              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
              and not node.decorator_list and owners.get(node.name) == 1
              and not node.name.startswith(("test", "Test"))]
    lines = test.splitlines(keepends=True)
    for node in reversed(copies):
        del lines[node.lineno - 1:node.end_lineno or node.lineno]
    return "".join(lines), [node.name for node in copies]


def drop_self_imports(source: str, module: str) -> tuple[str, list[str]]:
    """``source`` without its top-level one-line ``from <module> import ...`` and
    ``import <module>`` statements (a module importing itself: small models copy the tests'
    import into the code), and the lines removed. One that does not parse comes back unchanged.
    Pure: no I/O."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source, []
    lines = source.splitlines(keepends=True)
    drop = [node.lineno for node in tree.body
            if node.lineno == node.end_lineno and (
                isinstance(node, ast.ImportFrom) and node.module == module and node.level == 0
                or isinstance(node, ast.Import) and [a.name for a in node.names] == [module])]
    removed = [lines[n - 1].strip() for n in drop]
    for n in reversed(drop):
        del lines[n - 1]
    return "".join(lines), removed


def drop_import_time_checks(source: str) -> tuple[str, list[str]]:
    """``source`` without the top-level statements that test it when it is imported: an
    ``assert``, or a bare call of a function it defines (``check_kivu_days()``: small models
    append such self-checks, and one that fails breaks the collection of every test file that
    imports the module). ``if __name__ == "__main__":`` blocks stay. Returns the new source and
    the first line of each statement removed; one that does not parse comes back unchanged.
    Pure: no I/O."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source, []
    defined = {node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    spans = [(node.lineno, node.end_lineno or node.lineno) for node in tree.body
             if isinstance(node, ast.Assert)
             or isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
             and isinstance(node.value.func, ast.Name) and node.value.func.id in defined]
    lines = source.splitlines(keepends=True)
    removed = [lines[start - 1].strip() for start, _ in spans]
    for start, end in reversed(spans):
        del lines[start - 1:end]
    return "".join(lines), removed


def _python_problems(path: str, content: str) -> str:
    """What is wrong with a Python file just written, as the end of the tool's result: a
    syntax error with its line, a module that imports itself, or a test file without test
    functions; "" for anything else."""
    if not path.endswith(".py"):
        return ""
    try:
        tree = compile(content, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        line, text = getattr(error, "lineno", None), (getattr(error, "text", None) or "").strip()
        where = f" (line {line}: `{text[:200]}`)" if line and text else (
            f" (line {line})" if line else "")
        return (f", but it does not compile: {getattr(error, 'msg', error)}{where}; write "
                f"{path} again with that line fixed")
    module = Path(path).stem
    if any(isinstance(node, ast.ImportFrom) and node.module == module and node.level == 0
           or isinstance(node, ast.Import) and any(a.name == module for a in node.names)
           for node in ast.walk(tree)):
        return (f"; note: {path} imports itself ({module}), which fails or does nothing: remove "
                "that import (only test files import the module they test)")
    if Path(path).name.startswith("test_") and not any(
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.name.lower().startswith("test") for node in ast.walk(tree)):
        return (f"; note: {path} has no test_ function, so pytest runs nothing from it (a test "
                "is `def test_something():` with asserts that call the code)")
    return ""


def _exception_name(node: ast.expr) -> str | None:
    """``ValueError`` for ``ValueError``, ``ValueError(...)`` or ``pytest.raises(ValueError)``
    (any name ending in ``Error`` or ``Exception``, or a builtin exception class); else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "raises" and node.args):  # pytest.raises(ValueError)
        return _exception_name(node.args[0])
    target = node.func if isinstance(node, ast.Call) else node
    if not isinstance(target, ast.Name):
        return None
    builtin = getattr(builtins, target.id, None)
    is_exception = isinstance(builtin, type) and issubclass(builtin, BaseException)
    return target.id if is_exception or target.id.endswith(("Error", "Exception")) else None


def raises_for_exception_asserts(test: str) -> tuple[str, list[int]]:
    """``test`` with every ``assert <call> == SomeError(...)`` (or ``== SomeError``, or
    ``== pytest.raises(SomeError)``, either side)
    rewritten as ``with pytest.raises(SomeError): <call>``, and the lines rewritten. Such an
    assert can never pass (a call that raises does not return its exception): small models
    write it to mean "this call raises". An assert sharing its lines with other code is left
    alone, as is a test that does not parse. Pure: no I/O."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return test, []
    lines = test.splitlines(keepends=True)
    found: list[tuple[ast.Assert, str, ast.expr]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)
                and len(node.test.ops) == 1 and isinstance(node.test.ops[0], ast.Eq)):
            continue
        left, right = node.test.left, node.test.comparators[0]
        for error_side, call_side in ((right, left), (left, right)):
            name = _exception_name(error_side)
            if name and isinstance(call_side, ast.Call) and _exception_name(call_side) is None:
                found.append((node, name, call_side))
                break
    done: list[int] = []
    for node, name, call in sorted(found, key=lambda f: -f[0].lineno):
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        head, tail = lines[first][:node.col_offset], lines[last][node.end_col_offset or 0:]
        segment = ast.get_source_segment(test, call)
        if head.strip() or tail.strip() or segment is None or "\n" in segment:
            continue
        indent = head
        lines[first:last + 1] = [f"{indent}with pytest.raises({name}):\n",
                                 f"{indent}    {segment}\n"]
        done.append(node.lineno)
    return "".join(lines), sorted(done)


def _brief(result: SandboxResult, *, tail: int) -> dict[str, Any]:
    out = result.stdout if len(result.stdout) <= tail else "..." + result.stdout[-tail:]
    err = result.stderr if len(result.stderr) <= tail else "..." + result.stderr[-tail:]
    brief: dict[str, Any] = {"returncode": result.returncode, "stdout": out, "stderr": err}
    if result.killed_by:
        brief["killed_by"] = result.killed_by
    return brief


class Coder(Agent):
    """An agent that writes code and tests in a per-run workspace until the tests pass.

    Takes every :class:`~agentos.agents.Agent` argument, plus:

    Args:
        limits: sandbox limits for each code or test run (:class:`agentos.sandbox.Limits`).
        isolation: ``"bwrap"`` (default; refuses with
            :class:`~agentos.errors.SandboxUnavailable` where bubblewrap cannot isolate), or
            ``"rlimits-only"`` to run code without namespaces, when asked for by name (the tool
            descriptions tell the LLM).
        max_rounds: how many times the Coder sends failing tests back after the LLM said it was
            done (the step limit bounds it too).
        first_action: the tool each round's first LLM turn must call (``"write_file"``: the
            round starts by writing code or tests), ``"any"`` for any tool, or None for a free
            first turn. Small local models otherwise answer in prose or rerun tests at once.
            (``"tools"`` format only.)
        edit_format: ``"tools"`` (the LLM calls the workspace tools) or ``"whole"`` (the LLM
            replies with whole files in fenced blocks, each turn a fresh prompt with the files
            and the last failures; see the module's docstring).
        arbitrate: in the ``"whole"`` format, settle a failing assert whose expected value the
            task and its sources never state with a separate LLM call that works the rule
            through for that call; when it finds the code's value right, the test's expected
            value is corrected (see :func:`disagreements`).
        stated_examples: in the ``"whole"`` format, first ask the LLM for the examples the task
            and its sources state, keep those the text bears out, and write them as a fixed
            test file (:data:`~agentos.agents.stated.EXAMPLES_FILE`) that the LLM's replies
            cannot change (see :mod:`agentos.agents.stated`). One more LLM call per visit.
        candidates: in the ``"whole"`` format with stated examples, how many replies the first
            prompt, or one asking for the files anew (not showing them), gets at most:
            each is written and tested in turn, sampling stops at a reply that passes every
            stated example, and the reply failing the fewest is kept (its files written back
            when a later one was tried). Replies after the first are sampled at temperature
            0.7 or more (under greedy decoding they would repeat the first). Each reply is an LLM call; the turn counts once
            against ``max_steps``.

    ``max_steps`` counts LLM turns over all rounds (default 30).
    """

    def __init__(
        self,
        name: str = "coder",
        *,
        role: str = "a careful Python programmer who writes tests and makes them pass",
        goal: str = "working code with passing tests",
        llm: str | LLM | None = None,
        tools: Sequence[Tool | Any | str] = (),
        max_steps: int | None = 30,
        budget: Budget | None = None,
        limits: Limits | None = None,
        isolation: IsolationMode = "bwrap",
        max_rounds: int = 3,
        first_action: str | None = "write_file",
        edit_format: str = "tools",
        arbitrate: bool = True,
        stated_examples: bool = False,
        candidates: int = 1,
        on_step: Callable[[Step], None] | None = None,
        **agent_args: Any,
    ) -> None:
        super().__init__(name, role=role, goal=goal, llm=llm, tools=tools, max_steps=max_steps,
                         budget=budget, on_step=on_step, **agent_args)
        if isolation not in ("bwrap", "rlimits-only"):
            raise UserError(f"unknown sandbox isolation {isolation!r}; use 'bwrap' or "
                            "'rlimits-only'")
        self.limits = limits
        self.isolation: IsolationMode = isolation
        if edit_format not in ("tools", "whole"):
            raise UserError(f"unknown edit format {edit_format!r}; use 'tools' or 'whole'")
        self.max_rounds = max_rounds
        self.first_action = first_action
        self.edit_format = edit_format
        self.arbitrate = arbitrate
        if candidates < 1:
            raise UserError(f"candidates must be at least 1, got {candidates}")
        self.stated_examples = stated_examples
        self.candidates = candidates
        self._examples: dict[str, list[Example]] = {}  # trusted text -> its stated examples

    def run(  # type: ignore[override]
        self, task: str, *, kernel: Kernel | None = None, files: Mapping[str, str] | None = None
    ) -> CoderResult:
        """Run the Coder on ``task`` (sync facade over :meth:`arun`); ``files`` seed the workspace.

        Raises:
            UserError: called inside an event loop.
            SandboxUnavailable: the sandbox cannot isolate here (before any LLM call).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(task, kernel=kernel, files=files))
        raise UserError("Coder.run() was called inside an event loop; use `await coder.arun(task)`")

    async def arun(  # type: ignore[override]
        self,
        task: str,
        *,
        kernel: Kernel | None = None,
        run: Run | None = None,
        history: list[Message] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> CoderResult:
        """Run the Coder on ``task`` within ``run`` (a new run when None).

        ``files`` (relative path → content, e.g. given tests) are written into the workspace
        first, each as a ``write_file`` syscall.

        Raises:
            SandboxUnavailable: bwrap mode cannot isolate here; checked before any LLM call.
        """
        if self.isolation == "bwrap":
            from agentos.sandbox import check_available

            check_available()
        kernel = kernel or self.kernel
        if kernel is None:
            from agentos.runtime.kernel import Kernel

            kernel = self.kernel = Kernel()
        owns_run = run is None
        if run is None:
            run = kernel.start_run(self.name, task, budget=self.budget)
        workspace = Workspace(kernel.settings.data_dir / "workspaces" / run.id / self.name,
                              limits=self.limits, isolation=self.isolation)
        ws_tools = workspace.tools()
        registry = ToolRegistry(ws_tools)
        try:
            if self.edit_format == "whole":
                result = await self._whole(task, kernel, run, workspace, registry, files)
            else:
                result = await self._rounds(task, kernel, run, workspace, ws_tools, registry,
                                            files, history)
        except BaseException as exc:
            if owns_run:
                kernel.end_run(run, "failed", None, f"{type(exc).__name__}: {exc}")
            raise
        if owns_run:
            kernel.end_run(run, result.status, result.answer, result.error)
        result.usage = (run.usage if owns_run else run.agent(self.name)).as_dict()
        return result

    async def _rounds(
        self, task: str, kernel: Kernel, run: Run, workspace: Workspace, ws_tools: list[Tool],
        registry: ToolRegistry, files: Mapping[str, str] | None, history: list[Message] | None,
    ) -> CoderResult:
        steps: list[Step] = []
        answer: str | None = None
        status, error = "failed", None
        try:
            for path, content in (files or {}).items():
                await kernel.call_tool(run, self.name, "write_file",
                                       {"path": path, "content": content}, registry=registry)
            max_steps = self.max_steps or kernel.settings.max_steps
            conversation = list(history or [])
            prompt = _task_prompt(task, files)
            for round_index in range(self.max_rounds + 1):
                left = max_steps - len(steps)
                if left <= 0:
                    status, error = "max_steps", f"stopped after max_steps={max_steps} LLM turns"
                    break
                round_steps, result_answer, status, error = await self._round(
                    kernel, run, ws_tools, prompt, conversation, left)
                steps += round_steps
                answer = result_answer or answer
                if status != "succeeded":
                    if status == "max_steps":
                        error = f"stopped after max_steps={max_steps} LLM turns"
                    break
                # The LLM says it is done: check for ourselves, as a recorded syscall.
                await kernel.call_tool(run, self.name, "run_tests", {}, registry=registry)
                if _passed(workspace):
                    break
                status, error = "tests_failed", "the tests do not pass"
                if round_index == self.max_rounds:
                    error = f"the tests still fail after {self.max_rounds} rounds of feedback"
                    break
                conversation += [{"role": "user", "content": prompt},
                                 {"role": "assistant", "content": result_answer or ""}]
                prompt = _feedback(workspace)
        except BudgetExceeded as exc:
            status, error = "budget_exceeded", str(exc)
        except Cancelled as exc:
            status, error = "cancelled", str(exc)
        except (ToolFailed, ToolRetry) as exc:  # seeding files or the final check failed
            status, error = "failed", str(exc)
        return self._result(workspace, steps, answer, status, error, run.id)

    async def _whole(
        self, task: str, kernel: Kernel, run: Run, workspace: Workspace, registry: ToolRegistry,
        files: Mapping[str, str] | None,
    ) -> CoderResult:
        """The ``"whole"`` loop: each turn a fresh prompt (task, files, last failures), a reply
        of whole files, written and tested as syscalls, until the tests pass or the turns end."""
        steps: list[Step] = []
        answer: str | None = None
        status, error = "max_steps", None
        max_steps = self.max_steps or kernel.settings.max_steps
        model = self.llm if self.llm is not None else kernel.settings.model
        system = (self.system_prompt(ToolRegistry()) + "\n\n"
                  + _WHOLE_INSTRUCTIONS.format(isolation=self._isolation_words()))
        names = _named_files(task, files)
        notes: list[str] = []
        previous: dict[str, str] | None = None
        without_files = 0
        fixed: list[Example] | None = None
        failing: list[str] = []  # the last test run's stated-example failures
        fewest: int | None = None  # the fewest stated-example failures of any turn so far
        best: dict[str, str] = {}  # the files of that turn
        not_better = False  # the last turn failed no fewer stated examples than the best one
        try:
            for path, content in (files or {}).items():
                await kernel.call_tool(run, self.name, "write_file",
                                       {"path": path, "content": content}, registry=registry)
            # The given files are the caller's too (a stub's docstring states examples).
            given = "".join(f"\n\n{path}:\n{text}" for path, text in (files or {}).items())
            fixed = (await self._write_examples(kernel, run, model, task + given, workspace,
                                                registry, names, steps)
                     if self.stated_examples else None)
            for turn in range(max_steps):
                stuck = previous is not None and bool(notes) and _REPEATED in notes[0]
                prompt = _whole_prompt(task, workspace, notes, first=turn == 0 and not files,
                                       anew=_ANEW_REPEATED if stuck else
                                       _ANEW_NOT_BETTER if not_better else "",
                                       fixed=fixed, failing=failing)
                params = {"max_tokens": 1500, **self.llm_params}
                if stuck:
                    params["temperature"] = max(1.0, float(params.get("temperature") or 0.0))
                # The first prompt, or one asking anew, is answered by up to `candidates`
                # replies; the one failing the fewest stated examples is kept.
                fresh = fixed is not None and (stuck or not_better or turn == 0)
                tries = self.candidates if fresh else 1
                attempts: list[_Attempt] = []
                for number in range(tries):
                    attempt = await self._attempt(kernel, run, model, system, prompt,
                                                  _sampled(params) if number else params,
                                                  names, fixed, workspace, registry, steps)
                    attempts.append(attempt)
                    if attempt.blocks and (attempt.passed or fixed and not attempt.failed):
                        break
                chosen = _choose(attempts)
                written = [a for a in attempts if a.blocks]
                if chosen.blocks and chosen is not written[-1]:
                    await self._restore(kernel, run, registry, workspace, chosen.files, steps)
                content, step, blocks, notes = (chosen.content, chosen.step, chosen.blocks,
                                                chosen.notes)
                tests = chosen.tests
                if not blocks:  # prose only: an answer, or a question (the crew reads it)
                    answer = content or answer
                    without_files += 1
                    if without_files == 2:
                        status, error = "tests_failed", "the LLM replied twice without files"
                        break
                    notes = [_NO_FILES, *notes]
                    continue
                without_files = 0
                repeated = previous == blocks
                previous = blocks
                if _passed(workspace):
                    answer = _prose(content) or "The tests pass."
                    status, error = "succeeded", None
                    break
                if isinstance(tests, Mapping) and tests.get("repaired"):
                    notes.append("Repaired before the run: " + str(tests["repaired"]))
                # While a stated example fails, the code is wrong: no check of the LLM's own
                # tests (the next prompt shows only the stated failures).
                failing, failed = chosen.failing, chosen.failed  # counted after its test run
                focus = bool(failing)
                if fixed:
                    not_better = focus and fewest is not None and failed >= fewest
                    if fewest is None or failed < fewest:
                        fewest = failed
                        best = {p: t for p, t in workspace.files().items() if p != EXAMPLES_FILE}
                if (self.arbitrate and not focus
                        and await self._arbitrate(kernel, run, model, task, workspace, registry,
                                                  step, notes)):
                    answer = _prose(content) or "The tests pass."
                    status, error = "succeeded", None
                    break
                if not focus:
                    notes += expectation_notes(workspace, task)
                if repeated:
                    notes.insert(0, _REPEATED)
                status, error = "tests_failed", "the tests do not pass"
            else:
                if status != "tests_failed":
                    status = "max_steps"
                error = (f"the tests still fail after max_steps={max_steps} LLM turns"
                         if status == "tests_failed" else
                         f"stopped after max_steps={max_steps} LLM turns")
                if fewest is not None and failed > fewest:
                    await self._restore(kernel, run, registry, workspace, best, steps)
                    error += (f"; the files are those of the turn that failed the fewest of the "
                              f"sources' examples ({fewest} of {len(fixed or ())})")
        except BudgetExceeded as exc:
            status, error = "budget_exceeded", str(exc)
        except Cancelled as exc:
            status, error = "cancelled", str(exc)
        except (ToolFailed, ToolRetry) as exc:  # seeding files failed
            status, error = "failed", str(exc)
        result = self._result(workspace, steps, answer, status, error, run.id)
        if self.stated_examples:
            result.stated_examples = [e.line for e in fixed or ()]
        return result

    async def _attempt(
        self, kernel: Kernel, run: Run, model: str | LLM, system: str, prompt: str,
        params: Mapping[str, Any], names: Sequence[str], fixed: Sequence[Example] | None,
        workspace: Workspace, registry: ToolRegistry, steps: list[Step],
    ) -> _Attempt:
        """One reply to a "whole" prompt (an LLM call, recorded as a step): its files written
        (``write_file`` syscalls) and the tests run (``run_tests``), or nothing written when
        the reply holds no file."""
        completion = await kernel.llm(
            run, self.name, model,
            [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            None, fallbacks=self.fallbacks, priority=self.priority, weight=self.weight,
            **params)
        content = completion.content or ""
        step = Step(len(steps), content)
        steps.append(step)
        blocks, notes = file_blocks(content, names)
        if fixed is not None and blocks.pop(EXAMPLES_FILE, None) is not None:
            notes.append(_FIXED_KEPT)
        if not blocks:
            self._notify(step)
            return _Attempt(content, step, blocks, notes)
        for path, text in blocks.items():
            try:
                output = await kernel.call_tool(run, self.name, "write_file",
                                                {"path": path, "content": text},
                                                registry=registry)
                step.tool_calls.append(ToolOutcome("write_file", {"path": path},
                                                   str(output), True))
                if "does not compile" in str(output) or "note:" in str(output):
                    notes.append(str(output))
            except ToolRetry as exc:
                step.tool_calls.append(ToolOutcome("write_file", {"path": path},
                                                   f"Error: {exc}", False))
                notes.append(f"{path} was not written: {exc}")
        tests = await kernel.call_tool(run, self.name, "run_tests", {}, registry=registry)
        step.tool_calls.append(ToolOutcome("run_tests", {}, _render_brief(tests), True))
        self._notify(step)
        return _Attempt(content, step, blocks, notes, tests, _passed(workspace),
                        stated_failures(workspace, fixed) if fixed else [],
                        {p: t for p, t in workspace.files().items() if p != EXAMPLES_FILE},
                        stated_failed(workspace, fixed) if fixed else 0)

    async def _restore(self, kernel: Kernel, run: Run, registry: ToolRegistry,
                       workspace: Workspace, files: Mapping[str, str], steps: list[Step]) -> None:
        """Write ``files`` back (``write_file`` syscalls) and run the tests on them, as one
        step without an LLM turn: the turns ended on code worse than an earlier turn's."""
        step = Step(len(steps), "")
        steps.append(step)
        for path, text in files.items():
            output = await kernel.call_tool(run, self.name, "write_file",
                                            {"path": path, "content": text}, registry=registry)
            step.tool_calls.append(ToolOutcome("write_file", {"path": path}, str(output), True))
        tests = await kernel.call_tool(run, self.name, "run_tests", {}, registry=registry)
        step.tool_calls.append(ToolOutcome("run_tests", {}, _render_brief(tests), True))
        self._notify(step)

    async def _write_examples(
        self, kernel: Kernel, run: Run, model: str | LLM, task: str, workspace: Workspace,
        registry: ToolRegistry, names: Sequence[str], steps: list[Step],
    ) -> list[Example] | None:
        """Read the examples the task states and write them to :data:`EXAMPLES_FILE` (a
        ``write_file`` syscall): those it writes out as code (doctests, ``f(x) ➞ v`` lines:
        :func:`~agentos.agents.stated.written_examples`) where it has any, else those the LLM lists (one call,
        recorded as a step) that its trusted text bears out
        (:func:`~agentos.agents.stated.parse_examples`). The examples, or None when the
        task names no function or no example was kept. A revisit with the same sources reuses
        the examples without asking again."""
        functions = task_functions(task)
        if not functions:
            return None
        trusted = trusted_text(task)
        if trusted not in self._examples and (written := written_examples(trusted, functions)):
            self._examples[trusted] = written  # exactly as the text shows them: no LLM call
        if trusted not in self._examples:
            completion = await kernel.llm(
                run, self.name, model,
                [{"role": "user", "content": examples_prompt(trusted, functions)}], None,
                fallbacks=self.fallbacks, priority=self.priority, weight=self.weight,
                **{**self.llm_params, "max_tokens": 400, "temperature": 0.0})
            reply = completion.content or ""
            steps.append(Step(len(steps), reply))
            self._examples[trusted] = parse_examples(reply, trusted, functions)[0]
            self._notify(steps[-1])
        examples = self._examples[trusted]
        if not examples:
            return None
        code = next((n for n in names if n.endswith(".py")
                     and not Path(n).name.startswith("test_")), "solution.py")
        text = examples_test(examples, code.removesuffix(".py").replace("/", "."))
        await kernel.call_tool(run, self.name, "write_file",
                               {"path": EXAMPLES_FILE, "content": text}, registry=registry)
        return examples

    async def _arbitrate(
        self, kernel: Kernel, run: Run, model: str | LLM, task: str, workspace: Workspace,
        registry: ToolRegistry, step: Step, notes: list[str],
    ) -> bool:
        """Settle failing asserts whose expected value the sources never state (at most two per
        test run) with a separate short LLM call. For a value, it writes straight-line Python
        that computes, from the quoted rules, what that one call must return; the Coder runs it
        in the sandbox and compares (a second, independent computation: the 1.5B reasoning in
        words copied the sources' worked example instead). For a call a test says must raise,
        it reasons in words and answers CODE or TEST. When the code's side wins, the test is
        corrected (a ``write_file`` syscall) and the tests run again. Adds what was decided to
        ``notes``; True when the tests now pass."""
        corrected = False
        for number, case in enumerate(disagreements(workspace, task)[:_ARBITRATIONS]):
            system = _JUDGE if case.raises is not None else _ORACLE
            completion = await kernel.llm(
                run, self.name, model, [{"role": "system", "content": system},
                                        {"role": "user", "content": case.question(task)}], None,
                fallbacks=self.fallbacks, priority=self.priority, weight=self.weight,
                **{**self.llm_params, "max_tokens": 600, "temperature": 0.0})
            if case.raises is not None:
                verdict = _verdict(completion.content or "")
            else:  # the reply is a computation: run it in the sandbox, compare its value
                verdict = await self._oracle(kernel, run, registry, case,
                                             completion.content or "", number)
            where = f"{case.path}:{case.line}"
            if verdict == "neither" and case.raises is None:
                notes.append(f"{where}: a separate check of the rules found that `{case.call}` "
                             f"gives {case.computed!r}, neither the code's {case.actual!r} nor "
                             f"the test's {case.expected!r}: work the rules through and fix "
                             "both.")
            if case.raises is not None:
                said_code = (f"`{case.call}` is valid and must not raise: the test's "
                             "pytest.raises check was replaced by the bare call.")
                said_test = f"`{case.call}` must raise {case.raises}: fix the code."
            else:
                said_code = (f"`{case.call}` gives {case.actual!r}, as the code does, not "
                             f"{case.expected!r}: the test's expected value was corrected.")
                said_test = (f"`{case.call}` must give {case.expected!r}, as the test "
                             f"expects, not {case.actual!r}: fix the code.")
            if verdict == "code":
                text = case.corrected(workspace.path(case.path).read_text())
                await kernel.call_tool(run, self.name, "write_file",
                                       {"path": case.path, "content": text}, registry=registry)
                step.tool_calls.append(ToolOutcome("write_file", {"path": case.path},
                                                   "expected value corrected", True))
                notes.append(f"{where}: a separate check of the rules found that {said_code}")
                corrected = True
            elif verdict == "test":
                notes.append(f"{where}: a separate check of the rules found that {said_test}")
        if not corrected:
            return False
        await kernel.call_tool(run, self.name, "run_tests", {}, registry=registry)
        return _passed(workspace)

    async def _oracle(self, kernel: Kernel, run: Run, registry: ToolRegistry,
                      case: Disagreement, reply: str, number: int) -> str | None:
        """Run the check computation in ``reply`` (a ``write_file`` into ``.checks/`` and a
        ``run_python`` syscall) and say whose value it printed: ``"code"``, ``"test"``,
        ``"neither"``, or None when it gave no readable value."""
        blocks, _ = file_blocks(reply, [f"{_CHECKS}/value_{number}.py"])
        code = next(iter(blocks.values()), None)
        if code is None:
            return None
        path = f"{_CHECKS}/value_{number}.py"
        await kernel.call_tool(run, self.name, "write_file", {"path": path, "content": code},
                               registry=registry)
        ran = await kernel.call_tool(run, self.name, "run_python", {"path": path},
                                     registry=registry)
        lines = str(ran.get("stdout", "") if isinstance(ran, Mapping) else "").strip().splitlines()
        if not lines:
            return None
        try:
            value = ast.literal_eval(lines[-1].strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
        case.computed = value
        if not (_comparable(value, case.actual) or _comparable(value, case.expected)):
            return None  # a value of another kind (a count for a string): not an answer
        return ("code" if _same(value, case.actual) else
                "test" if _same(value, case.expected) else "neither")

    def _isolation_words(self) -> str:
        return ("bubblewrap: no network, only the workspace is writable"
                if self.isolation == "bwrap" else
                "WEAK ISOLATION, rlimits-only: the code runs as the agentos user")

    def _agent(self, ws_tools: list[Tool], max_steps: int, params: dict[str, Any]) -> Agent:
        return Agent(
            self.name, role=self.role, goal=self.goal, llm=self.llm,
            tools=[*self._tool_specs, *ws_tools], max_steps=max_steps,
            max_tool_retries=self.max_tool_retries, budget=self.budget, fallbacks=self.fallbacks,
            priority=self.priority, weight=self.weight, instructions=self._instructions(),
            llm_params={**self.llm_params, **params}, on_step=self.on_step,
        )

    async def _round(
        self, kernel: Kernel, run: Run, ws_tools: list[Tool], prompt: str,
        conversation: list[Message], left: int,
    ) -> tuple[list[Step], str | None, str, str | None]:
        """One round of the loop: (steps, answer, status, error) of the base agent loop.

        With ``first_action`` the round's first turn must call that tool (``tool_choice``).
        """
        steps: list[Step] = []
        history = list(conversation)
        task = prompt
        if self.first_action is not None and left > 1:
            choice: Any = ("required" if self.first_action == "any" else
                           {"type": "function", "function": {"name": self.first_action}})
            forced = await self._agent(ws_tools, 1, {"tool_choice": choice}).arun(
                prompt, kernel=kernel, run=run, history=history)
            steps += forced.steps
            if forced.status != "max_steps":  # answered anyway, or failed
                return steps, forced.answer, forced.status, forced.error
            history += [{"role": "user", "content": prompt}, *_step_messages(forced.steps[0])]
            task = "Go on: run the tests, fix what fails, and answer when they pass."
            left -= 1
        result = await self._agent(ws_tools, left, {}).arun(task, kernel=kernel, run=run,
                                                            history=history)
        return steps + result.steps, result.answer, result.status, result.error

    def _instructions(self) -> str:
        base = _INSTRUCTIONS.format(isolation=self._isolation_words())
        return base + ("\n" + self.instructions if self.instructions else "")

    def _result(
        self, workspace: Workspace, steps: list[Step], answer: str | None, status: str,
        error: str | None, run_id: str,
    ) -> CoderResult:
        files = workspace.files()
        passed = _passed(workspace)
        last = workspace.last_tests
        output = (last.stdout + last.stderr) if last is not None else ""
        tests = (f"tests passed ({workspace.test_runs} test runs)" if passed else
                 f"tests did not pass ({workspace.test_runs} test runs)" if last is not None
                 else "tests never ran")
        summary = (f"{status}: {len(files)} files ({', '.join(files) or 'none'}); {tests}; "
                   f"{len(steps)} LLM turns")
        return CoderResult(answer, status, steps, {}, run_id, error, workspace=workspace.root,
                           files=files, tests_passed=passed, test_output=output,
                           test_runs=workspace.test_runs, summary=summary)


_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_FILE_NAME = re.compile(r"(/?[\w.][\w./-]*\.[A-Za-z0-9]+)")
_OPEN_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*)\Z", re.DOTALL | re.MULTILINE)
_NOT_FILES = {"bash", "sh", "shell", "console", "text", "txt", "output", "plaintext"}
_REPEATED = ("Your last reply gave exactly the files that were already there, so the tests "
             "failed the same way: change what is wrong this time.")
_NO_FILES = ("Your last reply had no file in it. Reply with the files, each under its name in a "
             "fenced block.")
_PROMPT_FILE_CHARS = 6000  # of each file, in a "whole" prompt
_FIXED = ("These checks are the examples the sources state. The Coder runs them with your "
          "tests (as {name}; your replies cannot change it), so where one fails, the code is "
          "wrong:")
_STATED_FIX = ("Fix the code so that it gives the sources' values for these calls; your own "
               "tests' failures are not shown until the sources' examples pass. Reply with the "
               "complete corrected files (each under its name, in a fenced block).")
_ANEW_REPEATED = ("Your files failed the tests again unchanged, so they are not shown: write "
                  "solution and tests anew from the task, avoiding the failures below.")
_ANEW_NOT_BETTER = ("Your last change did not make the code fail fewer of the sources' examples, "
                    "so the files are not shown: write solution and tests anew from the task, "
                    "avoiding the failures below.")
_FIXED_KEPT = (f"Your {EXAMPLES_FILE} was not written: that file holds the examples the sources "
               "state, and only the Coder writes it. Fix the code instead.")


def file_blocks(reply: str, names: Sequence[str] = ("solution.py", "test_solution.py")
                ) -> tuple[dict[str, str], list[str]]:
    """The files in an LLM's reply (relative path -> content) and notes on what was skipped.

    A file is a fenced code block. Its name is the last line before the block when that line
    names a file (``solution.py``, ``**test_solution.py**``, ``### File: solution.py``), else a
    first line like ``# solution.py`` or ``# file: solution.py`` inside it. A block with no name
    is a test file when it defines a ``test_`` function, else code; it gets the first test
    file, or the first other file, of ``names`` (the files the task names). Blocks of shell
    commands or program output are not files; a last block the reply ends inside (cut off at
    the token limit) is kept, and so is a block left unclosed before the next one opens
    (:func:`_close_unclosed`). Pure: no I/O."""
    tests = [n for n in names if Path(n).name.startswith("test_")] or ["test_solution.py"]
    code = [n for n in names if not Path(n).name.startswith("test_")] or ["solution.py"]
    files: dict[str, str] = {}
    notes: list[str] = []
    reply = _close_unclosed(reply)
    matches: list[re.Match[str]] = list(_FENCE.finditer(reply))
    end = matches[-1].end() if matches else 0
    unclosed = _OPEN_FENCE.search(reply, end)  # a reply cut off inside its last block
    if unclosed is not None:
        matches.append(unclosed)
    for match in matches:
        language, body = match.group(1).lower(), match.group(2)
        before = reply[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        name = _name_in(before)
        first = body.split("\n", 1)[0].strip()
        if name is None and first.startswith(("#", "//")):
            name = _name_in(first.lstrip("#/ ").removeprefix("file:").removeprefix("File:"))
        if name is None:
            if language in _NOT_FILES:
                continue
            name = tests[0] if re.search(r"^\s*def test_", body, re.M) else code[0]
        if name in files:
            notes.append(f"your reply had two blocks for {name}; the first was used")
            continue
        files[name] = body
    return files, notes


_OPENER = re.compile(r"^```[ \t]*[\w+-]+")


def _close_unclosed(reply: str) -> str:
    """``reply`` with a closing fence added where a block opens (a fence with a language,
    which never closes one) inside an unclosed block: before the file-name line that precedes
    the new block, if there is one. The 1.5B once left solution.py's block open, so its file
    took in the name line and the fence of test_solution.py, and did not compile."""
    out: list[str] = []
    inside = False
    for line in reply.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```"):
            if not inside:
                inside = True
            elif _OPENER.match(stripped):
                named = [i for i, kept in enumerate(out) if kept.strip()][-1:]
                at = (named[0] if named and _name_in(out[named[0]]) is not None
                      else len(out))
                out.insert(at, "```")
            else:
                inside = False
        out.append(line)
    return "\n".join(out)


def _name_in(line: str) -> str | None:
    """The file name a line (before a block, or a comment) gives, or None."""
    words = line.strip().strip("#*`:>- \t").replace("`", " ").replace("*", " ").split()
    if not words or len(words) > 4:
        return None
    candidates = [w.strip(":,()") for w in words if _FILE_NAME.fullmatch(w.strip(":,()"))]
    return candidates[-1] if candidates else None


def _named_files(task: str, files: Mapping[str, str] | None) -> list[str]:
    """The files a task names (``solution.py``, ``test_solution.py``...), given files first."""
    named = list(files or {})
    named += re.findall(r"\b([A-Za-z_][\w/]*\.py)\b", task)
    return list(dict.fromkeys(named))


def _whole_prompt(task: str, workspace: Workspace, notes: Sequence[str], *, first: bool,
                  anew: str = "", fixed: Sequence[Example] | None = None,
                  failing: Sequence[str] = ()) -> str:
    """A "whole" turn's prompt: the task; then the files and the last test run, if any. With
    ``anew`` (why: the last reply repeated the files, :data:`_ANEW_REPEATED`, or failed no fewer
    of the sources' examples than the best turn, :data:`_ANEW_NOT_BETTER`) the files are left
    out and the LLM is asked to write them again from the task and the failures: shown its
    files, a small model copies them, or swings between two wrong versions. ``fixed``: the stated examples (:data:`EXAMPLES_FILE`), listed in every prompt; while
    any of them fails (``failing``: :func:`stated_failures` of the last run), the prompt shows
    only those failures (what the code gave, what the sources say), not pytest's output: a small model otherwise bends the code to its own tests'
    wrong values."""
    examples = ([_FIXED.format(name=EXAMPLES_FILE), *(f"- {e.line}" for e in fixed), ""]
                if fixed else [])
    if first:
        return "\n".join([task, _WHOLE_FIRST, "", *examples]).strip()
    parts = [task, "", *examples]
    if anew:
        parts += [anew, ""]
    else:
        parts += ["## The files now", ""]
    shown = {p: t for p, t in workspace.files().items() if not fixed or p != EXAMPLES_FILE}
    for path, text in ({} if anew else shown).items():
        shown = text if len(text) <= _PROMPT_FILE_CHARS else text[:_PROMPT_FILE_CHARS] + "\n..."
        parts += [path, f"```python\n{shown.rstrip()}\n```", ""]
    if failing:  # _FIXED_KEPT is one of the "was not written" notes
        parts += ["## The sources' examples the code fails", "", *failing, "",
                  *[n for n in notes if n == _REPEATED or "was not written" in n
                    or "does not compile" in n], "", _STATED_FIX]
        return "\n".join(parts).strip()
    last = workspace.last_tests
    if last is not None:
        output = (last.stdout + last.stderr).strip()
        if len(output) > _TOOL_TAIL_CHARS:
            output = "..." + output[-_TOOL_TAIL_CHARS:]
        parts += [f"## pytest (exit code {last.returncode})", "", output, ""]
    parts += [*notes, "", _WHOLE_FIX if last is not None and last.returncode not in (0, 5) else
              "Reply with the files (each under its name, in a fenced block)."]
    return "\n".join(parts).strip()


@dataclass(slots=True)
class _Attempt:
    """One reply to a "whole" prompt and what its files did: the test run's brief, whether
    the tests passed, the stated examples it failed (:func:`stated_failures`) and the files
    after the run. Without files (``blocks`` empty) nothing was written or run."""

    content: str
    step: Step
    blocks: dict[str, str]
    notes: list[str]
    tests: Any = None
    passed: bool = False
    failing: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    failed: int = 0  # stated examples failed (all of them when the code did not import)


_CANDIDATE_TEMPERATURE = 0.7  # at least, for a prompt's replies after the first


def _sampled(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` for a prompt's second and later replies: a temperature set below
    :data:`_CANDIDATE_TEMPERATURE` (greedy decoding would repeat the first reply) is raised
    to it."""
    temperature = params.get("temperature")
    if temperature is not None and float(temperature) < _CANDIDATE_TEMPERATURE:
        return {**params, "temperature": _CANDIDATE_TEMPERATURE}
    return dict(params)


def _choose(attempts: Sequence[_Attempt]) -> _Attempt:
    """The reply to keep of one prompt's replies: of those with files, the one failing the
    fewest stated examples, then one whose tests passed, then the earliest; without any
    files, the last reply."""
    written = [a for a in attempts if a.blocks]
    if not written:
        return attempts[-1]
    return min(written, key=lambda a: (a.failed, not a.passed))


def _prose(reply: str) -> str:
    """The reply without its code blocks and their name lines: what the LLM said about them."""
    lines = [line for line in _FENCE.sub("", reply).splitlines()
             if not line.strip() or _name_in(line) is None]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _render_brief(result: Any) -> str:
    return json.dumps(result, default=str) if isinstance(result, Mapping) else str(result)


_FAILED_AT = re.compile(r"^([\w./-]*test_[\w.-]*\.py):(\d+): in (test_\w+)", re.M)


@dataclass(frozen=True, slots=True)
class _Failure:
    """Where a failing test of the last run stopped: the test file's line, the parsed file, and
    pytest's report after that line."""

    path: str
    line: int
    test: str
    tree: ast.Module
    after: str

    @property
    def did_not_raise(self) -> bool:
        """The failure is a ``pytest.raises`` block whose call returned normally."""
        return "DID NOT RAISE" in self.after.split("\n_", 1)[0]


def _failures(workspace: Workspace) -> Iterator[_Failure]:
    """The failures of the workspace's last test run whose test file parses (none when it
    passed or ran no test)."""
    last = workspace.last_tests
    if last is None or last.returncode in (0, 5):
        return
    output = last.stdout + last.stderr
    for match in _FAILED_AT.finditer(output):
        path = match.group(1)
        try:
            tree = ast.parse(workspace.path(path).read_text())
        except (SyntaxError, OSError, UnicodeDecodeError, ToolRetry, ValueError):
            continue
        yield _Failure(path, int(match.group(2)), match.group(3), tree,
                       output[match.end():match.end() + 600])


def stated_failures(workspace: Workspace, examples: Sequence[Example]) -> list[str]:
    """What the code did wrong on each stated example (``examples``, as written to
    :data:`EXAMPLES_FILE`) that failed in the last test run, one line each: what the call
    returned or raised, and what the sources say."""
    lines: list[str] = []
    for failure in _failures(workspace):
        number = failure.test.removeprefix("test_stated_example_")
        if failure.path != EXAMPLES_FILE or not number.isdigit():
            continue
        if not 1 <= int(number) <= len(examples):
            continue
        example = examples[int(number) - 1]
        said = _E_ASSERT.search(failure.after)
        error = re.search(r"^E\s+(\w+(?:Error|Exception)\b.*)$", failure.after, re.M)
        if example.raises is not None:
            got = "returned normally" if failure.did_not_raise else (
                f"raised {error.group(1)}" if error else "failed")
            lines.append(f"- `{example.call}` {got}; the sources say it raises "
                         f"{example.raises}.")
        elif said is not None and " == " in said.group(1):
            got = said.group(1).split(" == ", 1)[0].strip()
            lines.append(f"- `{example.call}` returned {got}; the sources say "
                         f"{example.expected!r}.")
        else:
            got = f"raised {error.group(1)}" if error else "failed"
            lines.append(f"- `{example.call}` {got}; the sources say {example.expected!r}.")
    return list(dict.fromkeys(lines))


def stated_failed(workspace: Workspace, examples: Sequence[Example]) -> int:
    """How many of the stated ``examples`` the last test run failed: all of them when
    :data:`EXAMPLES_FILE` could not be collected (the code did not import: a syntax error, a
    missing function), else those :func:`stated_failures` reports. Code that does not import
    reports no failing example, and so had counted as the best turn, and been written back."""
    last = workspace.last_tests
    if last is not None and re.search(rf"^ERROR {re.escape(EXAMPLES_FILE)}\b",
                                      last.stdout + last.stderr, re.M):
        return len(examples)
    return len(stated_failures(workspace, examples))


def expectation_notes(workspace: Workspace, task: str) -> list[str]:
    """For each failing ``assert <call> == <constant>`` of the last test run: whether the task
    (with its sources) states the expected constant. A small model computes the expected values
    of its own tests and gets them wrong as often as its code; a value the sources never state
    is flagged as the model's own, so the LLM checks the test rather than breaking correct code,
    and a value the sources do state is confirmed. Reads the test files; empty when no failure
    is an equality with a constant."""
    notes: list[str] = []
    for failure in _failures(workspace):
        path, line, tree, after = failure.path, failure.line, failure.tree, failure.after
        where = f"{path}:{line}"
        raising = _raises_block(tree, line)
        if raising is not None and failure.did_not_raise:
            error, call = raising
            notes.append(
                f"{where} expects `{call}` to raise {error}, but it returned normally. The "
                f"error cases of the task and its sources decide: if they do not make this call "
                f"an error, the test is wrong: delete that check (do not make correct code raise).")
            continue
        expected = _expected_constant(tree, line)
        if expected is None:
            continue
        shown = repr(expected)
        said = next((text.strip() for text in after.split("\n")[:6]
                     if text.strip().startswith("E ")), "")
        if stated(expected, trusted_text(task)):
            notes.append(f"{where} expects {shown}, which the task or its sources state: the "
                         f"code must produce it ({said[1:].strip()}).")
        else:
            notes.append(
                f"{where} expects {shown}, but that value appears nowhere in the task or its "
                f"sources: you computed it yourself, and it may be the test that is wrong, not "
                f"the code ({said[1:].strip()}). Work the rule from the sources through by hand "
                f"for these arguments; if it gives the code's result, correct the expected value "
                f"in the test or delete that assertion.")
    return list(dict.fromkeys(notes))


def _raises_block(tree: ast.AST, line: int) -> tuple[str, str] | None:
    """(exception, first statement) of the ``with pytest.raises(E):`` block on ``line``."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.With) and node.lineno == line and node.body):
            continue
        for item in node.items:
            call = item.context_expr
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "raises" and call.args):
                return ast.unparse(call.args[0]), ast.unparse(node.body[0])
    return None


def _expected_constant(tree: ast.AST, line: int) -> Any:
    """The constant side of the ``assert x == <constant>`` on ``line`` (None if there is none)."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assert) and node.lineno <= line <= (node.end_lineno or 0)
                and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
                and isinstance(node.test.ops[0], ast.Eq)):
            continue
        for side in (node.test.comparators[0], node.test.left):
            try:
                value = ast.literal_eval(side)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if value is not None and not isinstance(value, bool):
                return value
    return None


_ARBITRATIONS = 2  # failing asserts settled by a separate LLM call, per test run
_CHECKS = ".checks"  # the workspace folder of check computations (not the Coder's files)
_ORACLE = ("You compute one value by following the rules of a text step by step in plain "
           "Python, for exactly the arguments given.")
_JUDGE = ("You check whether a value follows the rules of a text. You never write code: you "
          "reason in words and arithmetic, then give your verdict on the last line.")
_E_ASSERT = re.compile(r"^E\s+(?:AssertionError: )?assert (.+)$", re.M)


@dataclass(slots=True)
class Disagreement:
    """A failing ``assert <call> == <constant>``: the code gives ``actual``, the test expects
    ``expected``, a value the task and its sources never state.

    Attributes:
        path, line: the test file and the assert's line.
        call: the call, with arguments the test set in variables written in (``f(2025, 1)``).
        actual, expected: the two values.
        span: (line, start column, end column) of the expected literal in the test file (the
            assert's own, or the assignment's of the variable it compares with); for a
            ``pytest.raises`` case, (first line, last line, -1) of its ``with`` block.
        raises: the exception a ``with pytest.raises(...)`` block expected of a call that
            returned normally (``actual`` and ``expected`` are then None).
        computed: the value the check computation printed, once it ran.
    """

    path: str
    line: int
    call: str
    actual: Any
    expected: Any
    span: tuple[int, int, int]
    raises: str | None = None
    computed: Any = None

    def question(self, task: str) -> str:
        """The prompt: for a value, straight-line Python that computes what the call must
        return (neither side's value is shown); for a raises case, whether the call must raise
        (reasoned in words, a verdict on the last line)."""
        if self.raises is not None:
            ask = (f"Does `{self.call}` have to raise {self.raises} under the rules, or is it a "
                   f"valid call? (The code returns normally for it; a test says it must raise.)")
            answers = (f"`ANSWER: CODE` if the call is valid and must not raise, or "
                       f"`ANSWER: TEST` if it must raise {self.raises}")
        else:
            name = self.call.split("(", 1)[0]
            ask = (f"Compute, in plain Python, the value that `{self.call}` must return under "
                   f"the rules. Do not define, import or call `{name}`: write straight-line code "
                   f"for exactly these arguments, one step of the rules per line, ending with "
                   f"`print(repr(result))`. Reply with one ```python block.")
            return (f"{ask}\n\nThe rules are in this text:\n<<<\n{task.strip()}\n>>>\n\n"
                    f"Again: {ask}")
        return (f"Question: {ask}\n\nThe rules are in this text:\n<<<\n{task.strip()}\n>>>\n\n"
                f"Question again: {ask}\nDo not write code. Work the rules through for exactly "
                f"these arguments, step by step, in words and arithmetic; then end with one last "
                f"line: {answers}.")

    def corrected(self, source: str) -> str:
        """``source`` (the test file) with the expected literal replaced by ``actual``; for a
        ``pytest.raises`` case, the block replaced by the bare call (it must not raise)."""
        lines = source.splitlines(keepends=True)
        number, start, end = self.span
        if self.raises is not None:  # span: (first line, last line, -1) of the with block
            indent = lines[number - 1][:len(lines[number - 1]) - len(lines[number - 1].lstrip())]
            lines[number - 1:start] = [f"{indent}{self.call}\n"]
            return "".join(lines)
        raw = lines[number - 1].encode()
        lines[number - 1] = (raw[:start] + repr(self.actual).encode() + raw[end:]).decode()
        return "".join(lines)


def disagreements(workspace: Workspace, task: str) -> list[Disagreement]:
    """The failing asserts of the last test run that compare a call with a constant (written
    in the assert, or in a variable assigned just before it) that ``task`` does not state, with
    the value pytest reported for the call. Reads the test files; pure otherwise."""
    found: list[Disagreement] = []
    for failure in _failures(workspace):
        path, line, tree, after = failure.path, failure.line, failure.tree, failure.after
        if path == EXAMPLES_FILE:  # stated by the sources: never the test's mistake
            continue
        if failure.did_not_raise:
            case = _raise_disagreement(tree, line, path)
            if case is not None:
                found.append(case)
            continue
        said = _E_ASSERT.search(after)
        if said is None:
            continue
        try:
            shown = ast.parse(said.group(1).strip(), mode="eval").body
        except (SyntaxError, ValueError):
            continue
        case = _disagreement(tree, line, shown, path)
        if case is not None and not stated(case.expected, trusted_text(task)):
            found.append(case)
    return found


def _constants_before(function: ast.AST, line: int) -> dict[str, ast.expr]:
    """The last constant each simple name of ``function`` was assigned before ``line``."""
    constants: dict[str, ast.expr] = {}
    for node in ast.walk(function):
        if (isinstance(node, ast.Assign) and node.lineno < line and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and _literal(node.value)):
            name = node.targets[0].id
            if name not in constants or constants[name].lineno < node.lineno:
                constants[name] = node.value
    return constants


def _with_constants(call: ast.expr, constants: Mapping[str, ast.expr]) -> str:
    return ast.unparse(_Substitute(constants).visit(
        ast.parse(ast.unparse(call), mode="eval")).body)


def _raise_disagreement(tree: ast.Module, line: int, path: str) -> Disagreement | None:
    """The ``with pytest.raises(E): <call>`` block on ``line`` as a disagreement."""
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if not (isinstance(node, ast.With) and node.lineno == line and len(node.body) == 1
                    and isinstance(node.body[0], ast.Expr)
                    and isinstance(node.body[0].value, ast.Call)):
                continue
            raising = _raises_block(function, line)
            if raising is None:
                return None
            call = _with_constants(node.body[0].value, _constants_before(function, line))
            return Disagreement(path, line, call, None, None,
                                (node.lineno, node.end_lineno or node.lineno, -1),
                                raises=raising[0])
    return None


def _disagreement(tree: ast.Module, line: int, shown: ast.expr, path: str
                  ) -> Disagreement | None:
    if not (isinstance(shown, ast.Compare) and len(shown.comparators) == 1):
        return None
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        constants = _constants_before(function, line)
        for node in ast.walk(function):
            if not (isinstance(node, ast.Assert) and node.lineno == line
                    and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
                    and isinstance(node.test.ops[0], ast.Eq)):
                continue
            sides = [node.test.left, node.test.comparators[0]]
            values = [shown.left, shown.comparators[0]]
            for i in (1, 0):
                call, literal = sides[1 - i], sides[i]
                if isinstance(literal, ast.Name):
                    literal = constants.get(literal.id, literal)
                if not (isinstance(call, ast.Call) and _literal(literal)
                        and literal.lineno == literal.end_lineno):
                    continue
                try:
                    actual = ast.literal_eval(values[1 - i])
                    expected = ast.literal_eval(literal)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    return None
                if actual == expected or type(actual) is not type(expected):
                    return None
                shown_call = _with_constants(call, constants)
                return Disagreement(path, line, shown_call, actual, expected,
                                    (literal.lineno, literal.col_offset,
                                     literal.end_col_offset or literal.col_offset))
    return None


def _literal(node: ast.expr) -> bool:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return value is not None and not isinstance(value, bool)


class _Substitute(ast.NodeTransformer):
    """Names replaced by the constants the test assigned them."""

    def __init__(self, constants: Mapping[str, ast.expr]) -> None:
        self.constants = constants

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.constants.get(node.id, node)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(a: Any, b: Any) -> bool:
    return (_number(a) and _number(b)) or type(a) is type(b)


def _same(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return type(a) is type(b) and a == b


def _verdict(reply: str) -> str | None:
    """``"code"``, ``"test"`` or ``"neither"`` from a reply's last ``ANSWER:`` line; None
    without one."""
    answers = re.findall(r"ANSWER:\W*(CODE|TEST|NEITHER)", reply, re.I)
    return answers[-1].lower() if answers else None


def _step_messages(step: Step) -> list[Message]:
    """A finished step as the assistant and tool messages of a conversation."""
    ids = [f"call_{step.index}_{i}" for i in range(len(step.tool_calls))]
    assistant: Message = {"role": "assistant", "content": step.content or "", "tool_calls": [
        {"id": id_, "type": "function",
         "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
        for id_, c in zip(ids, step.tool_calls)]}
    return [assistant, *({"role": "tool", "tool_call_id": id_, "name": c.name, "content": c.output}
                         for id_, c in zip(ids, step.tool_calls))]


def _passed(workspace: Workspace) -> bool:
    return workspace.last_tests is not None and workspace.last_tests.returncode == 0


def _task_prompt(task: str, files: Mapping[str, str] | None) -> str:
    if not files:
        return task + "\n\nNo tests are given: write them first (test_*.py), then the code."
    shown = []
    for path, content in files.items():
        if len(content) <= _SHOW_FILE_CHARS:
            shown.append(f"{path}:\n```\n{content.rstrip()}\n```")
        else:
            shown.append(f"{path} ({len(content)} chars: read it with read_file)")
    return task + "\n\nThe workspace already has these files:\n" + "\n".join(shown)


def _feedback(workspace: Workspace) -> str:
    last = workspace.last_tests
    assert last is not None
    output = (last.stdout + last.stderr)[-_TEST_TAIL_CHARS:]
    if last.returncode == 5:
        return ("You said you were done, but there are no tests: write test_*.py files with "
                "test_ functions for the task, make them pass, then answer.")
    return ("You said you were done, but the tests do not pass (pytest exit code "
            f"{last.returncode}):\n{output}\nFix the code, run run_tests, and answer when they pass.")
