"""The Coder: writes files in its workspace, runs tests in the sandbox, fixes what fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos import Kernel, load_settings
from agentos.agents import Coder, CoderResult
from agentos.agents.coder import Workspace
from agentos.errors import SandboxUnavailable
from agentos.testing import ScriptedLLM, call

BUGGY = "def add(a, b):\n    return a - b\n"
TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / "data")}))
    yield k
    k.close()


def _tool_syscalls(kernel: Kernel, run_id: str) -> list[tuple[str | None, str]]:
    return [(s.name, s.outcome) for s in kernel.store.syscalls(run_id) if s.kind == "tool"]


def test_writes_a_buggy_file_sees_the_test_fail_fixes_it_and_the_tests_pass(
    kernel: Kernel, tmp_path: Path
) -> None:
    llm = ScriptedLLM([
        call("write_file", path="solution.py", content=BUGGY),
        call("write_file", path="test_solution.py", content=TESTS),
        call("run_tests"),
        call("edit_file", path="solution.py", search="a - b", replace="a + b"),
        call("run_tests"),
        "add() returns the sum; its test passes.",
    ])
    result = Coder(llm=llm).run("Write add(a, b) in solution.py.", kernel=kernel)
    assert isinstance(result, CoderResult)
    assert result.ok and result.tests_passed, result.test_output
    assert result.files == {"solution.py": "def add(a, b):\n    return a + b\n",
                            "test_solution.py": TESTS}
    assert "1 passed" in result.test_output
    first_run = [c for s in result.steps for c in s.tool_calls if c.name == "run_tests"][0]
    assert '"passed": false' in first_run.output and "assert -1 == 5" in first_run.output
    assert result.workspace == tmp_path / "data" / "workspaces" / result.run_id / "coder"
    # Every write and test run is a syscall in the run store; the Coder's own check is the last.
    assert _tool_syscalls(kernel, result.run_id) == [
        ("write_file", "ok"), ("write_file", "ok"), ("run_tests", "ok"), ("edit_file", "ok"),
        ("run_tests", "ok"), ("run_tests", "ok"),
    ]
    assert result.test_runs == 3 and "tests passed (3 test runs)" in result.summary
    # The model was told to write its own tests, since none were given.
    assert "No tests are given: write them first" in llm.calls[0][-1]["content"]


def test_given_tests_are_seeded_as_syscalls_and_the_prompt_lists_them(kernel: Kernel) -> None:
    llm = ScriptedLLM([
        call("write_file", path="solution.py", content="def add(a, b):\n    return a + b\n"),
        call("run_tests"),
        "Done.",
    ])
    result = Coder(llm=llm).run("Make the tests pass.", kernel=kernel,
                                files={"test_solution.py": TESTS})
    assert result.ok and result.tests_passed
    assert _tool_syscalls(kernel, result.run_id)[0] == ("write_file", "ok")
    assert f"test_solution.py:\n```\n{TESTS.rstrip()}\n```" in llm.calls[0][-1]["content"]


def test_paths_leaving_the_workspace_are_refused_back_to_the_llm(
    kernel: Kernel, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    llm = ScriptedLLM([
        call("write_file", path="../../evil.py", content="x"),
        call("write_file", path=str(outside), content="overwritten"),
        call("write_file", path="mk_link.py", content=(
            f"import os\nos.symlink({str(outside)!r}, 'link.txt')\n")),
        call("run_python", path="mk_link.py"),
        call("read_file", path="link.txt"),
        call("write_file", path="link.txt", content="overwritten"),
        "I could not leave the workspace.",
    ])
    result = Coder(llm=llm, max_rounds=0).run("Try to escape.", kernel=kernel)
    outputs = [c.output for s in result.steps for c in s.tool_calls]
    assert "leads outside the workspace" in outputs[0]
    assert "is absolute, outside the workspace" in outputs[1]
    assert "leads outside the workspace" in outputs[4] and "leads outside" in outputs[5]
    assert all("use a path relative to the workspace" in outputs[i] for i in (0, 1, 4, 5))
    assert outside.read_text() == "host file"
    assert not (tmp_path / "data" / "evil.py").exists()
    records = _tool_syscalls(kernel, result.run_id)
    assert records[0] == ("write_file", "error") and records[1] == ("write_file", "error")


def test_claiming_done_with_failing_tests_gets_the_failures_back(kernel: Kernel) -> None:
    llm = ScriptedLLM([
        call("write_file", path="solution.py", content=BUGGY),
        call("write_file", path="test_solution.py", content=TESTS),
        "Done!",  # it never ran the tests; the Coder runs them and sends the failure back
        call("write_file", path="solution.py", content="def add(a, b):\n    return a + b\n"),
        "Fixed.",
    ])
    result = Coder(llm=llm).run("Write add.", kernel=kernel)
    assert result.ok and result.tests_passed and result.answer == "Fixed."
    feedback = llm.calls[3][-1]["content"]
    assert feedback.startswith("You said you were done, but the tests do not pass")
    assert "assert -1 == 5" in feedback


def test_the_step_limit_ends_the_run_with_what_it_has(kernel: Kernel) -> None:
    llm = ScriptedLLM([
        call("write_file", path="solution.py", content=BUGGY),
        call("write_file", path="test_solution.py", content=TESTS),
        call("run_tests"),
    ])
    result = Coder(llm=llm, max_steps=3).run("Write add.", kernel=kernel)
    assert result.status == "max_steps" and not result.ok and not result.tests_passed
    assert set(result.files) == {"solution.py", "test_solution.py"}
    assert "1 failed" in result.test_output
    assert result.summary.startswith("max_steps: 2 files") and "3 LLM turns" in result.summary
    assert kernel.store.get_run(result.run_id).status == "max_steps"  # type: ignore[union-attr]


def test_without_bubblewrap_the_coder_refuses_before_any_llm_call(
    kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    llm = ScriptedLLM(["never used"])
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        Coder(llm=llm).run("Write add.", kernel=kernel)
    assert llm.calls == []


@pytest.mark.slow
def test_local_model_writes_a_tiny_function_that_passes_given_tests(
    kernel: Kernel, allow_model_requests: None
) -> None:
    from agentos.runtime.llm.models import resolve

    model = "local/qwen2.5-coder-0.5b"
    try:
        resolve("qwen2.5-coder-0.5b")
    except Exception as error:  # says how to get the model rather than skipping silently
        pytest.fail(f"{error} (run `agentos models install qwen2.5-coder-0.5b`)")
    tests = ("from solution import square\n\n\ndef test_square():\n"
             "    assert square(3) == 9\n    assert square(-2) == 4\n")
    coder = Coder(llm=model, max_steps=10, llm_params={"temperature": 0.0})
    result = coder.run("Write square(x) returning x * x in solution.py; test_solution.py "
                       "has the tests.", kernel=kernel, files={"test_solution.py": tests})
    assert result.tests_passed, (result.summary, result.test_output, result.error)
    assert "solution.py" in result.files


def test_rerunning_failing_tests_without_a_change_says_so(kernel: Kernel) -> None:
    llm = ScriptedLLM([
        call("write_file", path="solution.py", content=BUGGY),
        call("write_file", path="test_solution.py", content=TESTS),
        call("run_tests"),
        call("run_tests"),
    ])
    result = Coder(llm=llm, max_steps=4).run("Write add.", kernel=kernel)
    first, second = [c.output for s in result.steps for c in s.tool_calls if c.name == "run_tests"]
    assert "no file changed since the last test run" not in first
    assert "no file changed since the last test run" in second


def test_a_test_file_that_forgets_the_import_gets_it_added_and_passes(kernel: Kernel) -> None:
    # What the 1.5B wrote in the crew: the test calls the function without importing it.
    no_import = "import pytest\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    llm = ScriptedLLM([
        call("write_file", path="test_solution.py", content=no_import),
        call("write_file", path="solution.py", content="def add(a, b):\n    return a + b\n"),
        call("run_tests"),
        "Done.",
    ])
    result = Coder(llm=llm).run("Write add.", kernel=kernel)
    assert result.ok and result.tests_passed, result.test_output
    assert result.files["test_solution.py"] == (
        "import pytest\nfrom solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    [run] = [c for s in result.steps for c in s.tool_calls if c.name == "run_tests"]
    assert "added `from solution import add` to test_solution.py" in run.output
    assert '"passed": true' in run.output


def test_add_missing_imports_only_adds_what_one_module_defines() -> None:
    from agentos.agents.coder import add_missing_imports

    test = '"""Tests."""\nimport pytest\n\ndef test_x(tmp_path):\n    assert f(len([1])) == LIMIT\n'
    fixed, added = add_missing_imports(test, {"solution": "def f(x):\n    return x\nLIMIT = 1\n"})
    assert added == ["from solution import LIMIT, f"]
    assert fixed.splitlines()[:3] == ['"""Tests."""', "import pytest", "from solution import LIMIT, f"]
    # Already imported, defined in two modules, a builtin, a fixture argument: left alone.
    assert add_missing_imports(TESTS, {"solution": BUGGY}) == (TESTS, [])
    assert add_missing_imports("def test_x():\n    assert f()\n",
                               {"a": "def f(): pass", "b": "def f(): pass"})[1] == []
    # A module with a syntax error still counts its top-level defs; a broken test is untouched.
    assert add_missing_imports("def test_x():\n    assert f()\n",
                               {"solution": "def f():\n    return 'x\n"})[1] == ["from solution import f"]
    assert add_missing_imports("def test_x(:\n", {"solution": BUGGY}) == ("def test_x(:\n", [])


def test_writing_python_that_does_not_compile_says_where(kernel: Kernel) -> None:
    llm = ScriptedLLM([
        call("write_file", path="solution.py", content="def add(a, b):\n    return f'{a}\n"),
    ])
    result = Coder(llm=llm, max_steps=1).run("Write add.", kernel=kernel)
    [write] = [c for s in result.steps for c in s.tool_calls]
    assert "but it does not compile: unterminated" in write.output
    assert "(line 2: `return f'{a}`)" in write.output


def test_writing_the_same_content_again_says_nothing_changed(kernel: Kernel) -> None:
    # The 1.5B rewrote one broken file with identical content 20 times in a row.
    broken = "def add(a, b):\n    return f'{a}'}\n"
    llm = ScriptedLLM([call("write_file", path="test_solution.py", content=broken)] * 3)
    result = Coder(llm=llm, max_steps=3).run("Write add.", kernel=kernel)
    first, second, third = [c.output for s in result.steps for c in s.tool_calls]
    assert first.startswith("wrote test_solution.py") and "does not compile" in first
    assert second.startswith("test_solution.py already had exactly this content (written 2 "
                             "times in a row): nothing changed")
    assert "(written 3 times in a row)" in third and "line 2: `return f'{a}'}`" in third


def test_a_test_file_without_test_functions_is_pointed_out(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("write_file", path="test_solution.py", content=BUGGY)])
    result = Coder(llm=llm, max_steps=1).run("Write add.", kernel=kernel)
    [write] = [c.output for s in result.steps for c in s.tool_calls]
    assert "note: test_solution.py has no test_ function" in write


def test_asserting_a_call_equals_an_exception_becomes_pytest_raises_and_passes(
    kernel: Kernel,
) -> None:
    # What the 1.5B wrote in the crew to mean "this call raises": it can never pass.
    solution = ("def check(n):\n    if n < 1:\n        raise ValueError('n < 1')\n"
                "    return n\n")
    tests = ("from solution import *\n\ndef test_check():\n    assert check(2) == 2\n"
             "    assert check(0) == ValueError('n < 1'), 'zero is refused'\n")
    llm = ScriptedLLM([
        call("write_file", path="solution.py", content=solution),
        call("write_file", path="test_solution.py", content=tests),
        call("run_tests"),
        "Done.",
    ])
    result = Coder(llm=llm).run("Write check.", kernel=kernel)
    assert result.ok and result.tests_passed, result.test_output
    assert result.files["test_solution.py"] == (
        "from solution import *\nimport pytest\n\ndef test_check():\n    assert check(2) == 2\n"
        "    with pytest.raises(ValueError):\n        check(0)\n")
    [run] = [c for s in result.steps for c in s.tool_calls if c.name == "run_tests"]
    assert "rewrote line(s) 5 of test_solution.py" in run.output
    assert "added `import pytest`" in run.output


def test_raises_rewrite_leaves_real_comparisons_and_shared_lines_alone() -> None:
    from agentos.agents.coder import raises_for_exception_asserts

    test = ("def test_x():\n    assert f(1) == 2\n    assert f(0) == g(ValueError)\n"
            "    x = 1; assert f(0) == ValueError\n    if x:\n        assert KeyError == f(-1)\n")
    fixed, lines = raises_for_exception_asserts(test)
    assert lines == [6]
    assert fixed.splitlines()[1:4] == ["    assert f(1) == 2", "    assert f(0) == g(ValueError)",
                                       "    x = 1; assert f(0) == ValueError"]
    assert fixed.splitlines()[5:] == ["        with pytest.raises(KeyError):", "            f(-1)"]
    assert raises_for_exception_asserts("def test_x(:\n") == ("def test_x(:\n", [])


# --- the "whole" edit format: files in fenced blocks, a fresh prompt each turn -------------------

def _whole_reply(code: str, tests: str = TESTS, *, say: str = "Here are the files.") -> str:
    return f"{say}\n\nsolution.py\n```python\n{code}```\n\ntest_solution.py\n```python\n{tests}```\n"


def test_whole_format_writes_the_replied_files_tests_them_and_fixes_from_the_failure(
    kernel: Kernel,
) -> None:
    llm = ScriptedLLM([_whole_reply(BUGGY),
                       "```python\nresult = 2 + 3\nprint(repr(result))\n```",
                       _whole_reply("def add(a, b):\n    return a + b\n", say="Fixed the sign.")])
    result = Coder(llm=llm, edit_format="whole").run(
        "Write add(a, b) in solution.py, with tests in test_solution.py.", kernel=kernel)
    assert result.ok and result.tests_passed, result.test_output
    assert result.files == {"solution.py": "def add(a, b):\n    return a + b\n",
                            "test_solution.py": TESTS}
    assert result.answer == "Fixed the sign."
    # Every write and test run is still a syscall; no tools are offered to the LLM.
    assert _tool_syscalls(kernel, result.run_id) == [
        ("write_file", "ok"), ("write_file", "ok"), ("run_tests", "ok"),
        ("write_file", "ok"), ("run_python", "ok"),  # the check computation
        ("write_file", "ok"), ("write_file", "ok"), ("run_tests", "ok"),
    ]
    assert set(result.files) == {"solution.py", "test_solution.py"}  # .checks/ is not shown
    llm_calls = [s for s in kernel.store.syscalls(result.run_id) if s.kind == "llm"]
    assert len(llm_calls) == 3
    assert [n for n, _ in _tool_syscalls(kernel, result.run_id)][3:5] == ["write_file", "run_python"]
    # 5 is not in the task, so a separate call checked who is right: the test, it said.
    question = llm.calls[1][1]["content"]
    assert question.startswith("Compute, in plain Python, the value that `add(2, 3)` must return")
    assert "-1" not in question  # neither side's value is shown
    # The next turn is a fresh two-message prompt: the files as they are, the failure and the
    # verdict, not the first turn's history.
    second = llm.calls[2]
    assert ("test_solution.py:5: a separate check of the rules found that `add(2, 3)` must give "
            "5, as the test expects, not -1: fix the code.") in second[1]["content"]
    assert [m["role"] for m in second] == ["system", "user"]
    assert f"solution.py\n```python\n{BUGGY.rstrip()}\n```" in second[1]["content"]
    assert "assert -1 == 5" in second[1]["content"]
    assert "wrong expected value in a test" in second[1]["content"]
    assert "Here are the files." not in second[1]["content"]


def test_whole_format_says_when_a_reply_repeats_the_files_and_samples_hotter(
    kernel: Kernel,
) -> None:
    seen: list[dict[str, object]] = []

    class Recording(ScriptedLLM):
        async def complete(self, messages, tools=None, **params):  # type: ignore[no-untyped-def]
            seen.append(params)
            return await super().complete(messages, tools, **params)

    llm = Recording([_whole_reply(BUGGY), _whole_reply(BUGGY),
                     _whole_reply("def add(a, b):\n    return a + b\n")])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False,
                   llm_params={"temperature": 0.0}).run(
        "Write add.", kernel=kernel)
    assert result.ok
    third = llm.calls[2][1]["content"]
    assert "gave exactly the files that were already there" in third
    # Stuck: the files are left out (a small model copies what it is shown) and it samples hot.
    assert "write solution and tests anew" in third and "## The files now" not in third
    assert "assert -1 == 5" in third
    assert [p.get("temperature") for p in seen] == [0.0, 0.0, 1.0]


def test_whole_format_stops_after_two_replies_without_files_and_keeps_the_answer(
    kernel: Kernel,
) -> None:
    llm = ScriptedLLM(["FACTS MISSING: which zones exist?", "FACTS MISSING: which zones exist?"])
    result = Coder(llm=llm, edit_format="whole", max_steps=5).run("Write cost.", kernel=kernel)
    assert result.status == "tests_failed" and not result.tests_passed
    assert result.answer == "FACTS MISSING: which zones exist?"
    assert "had no file in it" in llm.calls[1][1]["content"]
    assert len(llm.calls) == 2 and _tool_syscalls(kernel, result.run_id) == []


def test_whole_format_ends_at_the_step_limit_with_the_failing_files(kernel: Kernel) -> None:
    llm = ScriptedLLM([_whole_reply(BUGGY), _whole_reply(BUGGY.replace("a - b", "a * b"))])
    result = Coder(llm=llm, edit_format="whole", max_steps=2, arbitrate=False).run(
        "Write add.", kernel=kernel)
    assert result.status == "tests_failed" and "after max_steps=2" in (result.error or "")
    assert result.files["solution.py"] == "def add(a, b):\n    return a * b\n"
    assert "assert 6 == 5" in result.test_output


def test_whole_format_refuses_a_path_outside_the_workspace_and_tells_the_llm(
    kernel: Kernel, tmp_path: Path,
) -> None:
    outside = tmp_path / "escape.py"
    reply = f"{outside}\n```python\nprint('out')\n```\n" + _whole_reply(
        "def add(a, b):\n    return a + b\n")
    llm = ScriptedLLM([reply])
    result = Coder(llm=llm, edit_format="whole").run("Write add.", kernel=kernel)
    assert result.ok and not outside.exists()
    refused = [c for s in result.steps for c in s.tool_calls if not c.ok]
    assert refused and "outside the workspace" in refused[0].output


def test_an_unknown_edit_format_is_refused_with_the_choices() -> None:
    from agentos.errors import UserError

    with pytest.raises(UserError, match="'tools' or 'whole'"):
        Coder(edit_format="diff")


def test_file_blocks_name_files_from_the_line_before_a_comment_or_the_content() -> None:
    from agentos.agents.coder import file_blocks

    reply = ("**solution.py**\n```python\ndef f():\n    return 1\n```\n"
             "```python\n# file: helpers/util.py\nX = 1\n```\n"
             "```python\nfrom solution import f\n\ndef test_f():\n    assert f() == 1\n```\n"
             "Run it with:\n```bash\npytest -q\n```\n"
             "### File: `solution.py`\n```python\ndef f():\n    return 2\n```\n")
    files, notes = file_blocks(reply, ["solution.py", "test_solution.py"])
    assert files == {
        "solution.py": "def f():\n    return 1\n",
        "helpers/util.py": "# file: helpers/util.py\nX = 1\n",
        "test_solution.py": "from solution import f\n\ndef test_f():\n    assert f() == 1\n",
    }
    assert notes == ["your reply had two blocks for solution.py; the first was used"]
    # An unnamed code block goes to the code file the task names.
    files, _ = file_blocks("```python\ndef g():\n    pass\n```", ["kivu.py", "test_kivu.py"])
    assert files == {"kivu.py": "def g():\n    pass\n"}


def test_file_blocks_close_a_block_left_open_before_the_next_file_opens() -> None:
    """The 1.5B (accounts crew run) left solution.py's block open: without the repair the file
    took in 'test_solution.py' and its fence, and did not compile."""
    from agentos.agents.coder import file_blocks

    reply = ("solution.py\n```python\ndef f():\n    return 1\n\n"
             "test_solution.py\n```python\nfrom solution import f\n\n\ndef test_f():\n"
             "    assert f() == 1\n```\n")
    files, _ = file_blocks(reply)
    assert files == {"solution.py": "def f():\n    return 1\n\n",
                     "test_solution.py": "from solution import f\n\n\ndef test_f():\n"
                                         "    assert f() == 1\n"}
    # Without a name line the new block still ends the open one; a bare fence closes as before.
    files, _ = file_blocks("```python\nX = 1\n```python\ndef test_x():\n    pass\n```\n"
                           "```\nY = 2\n```\n")
    assert files == {"solution.py": "X = 1\n", "test_solution.py": "def test_x():\n    pass\n"}


def test_whole_format_flags_a_failing_expected_value_the_sources_never_state(
    kernel: Kernel,
) -> None:
    code = "def letter(n):\n    return 'ABCDEFG'[n % 7]\n"
    tests = ("from solution import letter\n\n\ndef test_letter():\n"
             "    assert letter(6) == 'H'\n\n\ndef test_stated():\n    assert letter(2) == 'D'\n")
    fixed = tests.replace("letter(6) == 'H'", "letter(6) == 'G'").replace("== 'D'", "== 'C'")
    llm = ScriptedLLM([_whole_reply(code, tests), _whole_reply(code, fixed)])
    task = "Write letter(n). The sources say: letter(2) is 'D'? No: letter(2) is 'C'... and 'D'."
    result = Coder(llm=llm, edit_format="whole", arbitrate=False).run(task, kernel=kernel)
    assert result.ok, result.test_output
    feedback = llm.calls[1][1]["content"]
    assert ("test_solution.py:5 expects 'H', but that value appears nowhere in the task or its "
            "sources") in feedback
    assert "assert 'G' == 'H'" in feedback
    assert "test_solution.py:9 expects 'D', which the task or its sources state" in feedback


def test_stated_values_match_their_usual_spellings_only() -> None:
    from agentos.agents.stated import stated as _stated

    text = "A parcel of 3.2 kg costs EUR 6.50; -10.0 degrees; humidity 45 %; KF-2024-00042-G."
    assert _stated(6.5, text) and _stated(-10.0, text) and _stated(45, text)
    assert _stated((-10.0, 45), text) and _stated("KF-2024-00042-G", text)
    assert not _stated(4.5, text) and not _stated(5, text) and not _stated("KF-2024-00001-B", text)
    assert not _stated(2, text)  # "2" only occurs inside 3.2 and 2024


def test_whole_format_says_which_call_did_not_raise_and_that_the_sources_decide(
    kernel: Kernel,
) -> None:
    code = "def check(n):\n    if n < 0:\n        raise ValueError(n)\n    return n\n"
    tests = ("import pytest\nfrom solution import check\n\n\ndef test_check():\n"
             "    with pytest.raises(ValueError):\n        check(-1)\n"
             "    with pytest.raises(ValueError):\n        check(7)\n")
    llm = ScriptedLLM([_whole_reply(code, tests),
                       _whole_reply(code, tests.replace("check(7)", "check(-7)"))])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False).run("Write check(n).",
                                                                       kernel=kernel)
    assert result.ok, result.test_output
    assert ("test_solution.py:8 expects `check(7)` to raise ValueError, but it returned "
            "normally") in llm.calls[1][1]["content"]


def test_a_module_that_imports_itself_is_pointed_out(kernel: Kernel) -> None:
    ws = Workspace(kernel.settings.data_dir / "ws")
    said = ws.write_file("solution.py", "from solution import f\n\ndef f():\n    return 1\n")
    assert "solution.py imports itself (solution)" in said
    assert "imports itself" not in ws.write_file("test_solution.py", "from solution import f\n")


def test_a_disagreement_the_rules_settle_for_the_code_corrects_the_test_and_passes(
    kernel: Kernel,
) -> None:
    code = "def letter(n):\n    return 'ABCDEFG'[n % 7]\n"
    tests = ("from solution import letter\n\n\ndef test_letter():\n    n = 8\n"
             "    expected = 'C'\n    assert letter(n) == expected\n")
    llm = ScriptedLLM([_whole_reply(code, tests),
                       "```python\nresult = 'ABCDEFG'[8 % 7]\nprint(repr(result))\n```"])
    task = "Write letter(n): the capital letter at position n % 7 of the alphabet."
    result = Coder(llm=llm, edit_format="whole").run(task, kernel=kernel)
    assert result.ok and result.tests_passed, result.test_output
    assert len(llm.calls) == 2  # one turn of code, one check; no second turn was needed
    question = llm.calls[1][1]["content"]
    assert f"<<<\n{task}\n>>>" in question
    assert "the value that `letter(8)` must return" in question and "Do not define" in question
    # Only the expected literal changed, in the assignment the assert reads.
    assert result.files["test_solution.py"] == tests.replace("expected = 'C'", "expected = 'B'")
    assert _tool_syscalls(kernel, result.run_id) == [
        ("write_file", "ok"), ("write_file", "ok"), ("run_tests", "ok"),
        ("write_file", "ok"), ("run_python", "ok"), ("write_file", "ok"), ("run_tests", "ok"),
    ]


def test_a_stated_expected_value_or_a_reply_without_a_verdict_changes_no_test(
    kernel: Kernel,
) -> None:
    code = "def letter(n):\n    return 'ABCDEFG'[n % 7]\n"
    tests = ("from solution import letter\n\n\ndef test_letter():\n"
             "    assert letter(1) == 'Z'\n    assert letter(2) == 'Q'\n")
    llm = ScriptedLLM([_whole_reply(code, tests), "I am not sure.",
                       _whole_reply(code, tests.replace("'Z'", "'B'").replace("'Q'", "'C'"))])
    # 'Q' is stated by the task, 'Z' is not: only 'Z' is asked about.
    result = Coder(llm=llm, edit_format="whole").run("Write letter(n); Q is a letter.",
                                                     kernel=kernel)
    assert result.ok
    assert "the value that `letter(1)` must return" in llm.calls[1][1]["content"]
    assert len(llm.calls) == 3 and "separate check" not in llm.calls[2][1]["content"]


def test_a_call_wrongly_expected_to_raise_is_settled_and_kept_as_a_bare_call(
    kernel: Kernel,
) -> None:
    code = "def check(n):\n    if n < 0:\n        raise ValueError(n)\n    return n\n"
    tests = ("import pytest\nfrom solution import check\n\n\ndef test_check():\n    n = 7\n"
             "    with pytest.raises(ValueError):\n        check(-1)\n"
             "    with pytest.raises(ValueError):\n        check(n)\n")
    llm = ScriptedLLM([_whole_reply(code, tests), "7 is not negative.\nANSWER: CODE"])
    result = Coder(llm=llm, edit_format="whole").run("Write check(n): negative n raise.",
                                                     kernel=kernel)
    assert result.ok and result.tests_passed, result.test_output
    assert ("Does `check(7)` have to raise ValueError under the rules, or is it a valid call?"
            ) in llm.calls[1][1]["content"]
    assert result.files["test_solution.py"] == tests.replace(
        "    with pytest.raises(ValueError):\n        check(n)\n", "    check(7)\n")


def test_comparing_a_call_with_pytest_raises_becomes_a_raises_block() -> None:
    from agentos.agents.coder import raises_for_exception_asserts

    fixed, lines = raises_for_exception_asserts(
        "def test_x():\n    assert f(0) == pytest.raises(ValueError)\n")
    assert fixed == "def test_x():\n    with pytest.raises(ValueError):\n        f(0)\n"
    assert lines == [2]


def test_a_module_importing_itself_loses_that_import_before_the_tests_run(
    kernel: Kernel,
) -> None:
    from agentos.agents.coder import drop_self_imports

    ws = Workspace(kernel.settings.data_dir / "ws")
    ws.write_file("solution.py", "from solution import f\nimport os\n\ndef f():\n    return 1\n")
    ws.write_file("test_solution.py", "from solution import f\n\ndef test_f():\n    assert f() == 1\n")
    result = ws.run_tests()
    assert result["passed"], result
    assert "removed `from solution import f` from solution.py" in result["repaired"]
    assert ws.files()["solution.py"] == "import os\n\ndef f():\n    return 1\n"
    assert drop_self_imports("import solutions\n", "solution") == ("import solutions\n", [])


def test_a_module_that_checks_itself_at_import_loses_those_checks_before_the_tests_run(
    kernel: Kernel,
) -> None:
    """The 1.5B appended ``check_kivu_days()`` (failing asserts) to solution.py: every test
    file importing it failed to collect, the stated examples included."""
    from agentos.agents.coder import drop_import_time_checks

    code = ("def f(x):\n    return x + 1\n\n\ndef check_f():\n    assert f(1) == 3, 'wrong'\n\n\n"
            "check_f()\nassert f(0) == 5\nprint(f(2))\n"
            "if __name__ == '__main__':\n    check_f()\n")
    ws = Workspace(kernel.settings.data_dir / "ws")
    ws.write_file("solution.py", code)
    ws.write_file("test_solution.py", "from solution import f\n\ndef test_f():\n    assert f(1) == 2\n")
    result = ws.run_tests()
    assert result["passed"], result
    assert "removed `check_f()`, `assert f(0) == 5` from solution.py" in result["repaired"]
    kept = ws.files()["solution.py"]
    assert "\ncheck_f()" not in kept and "assert f(0)" not in kept
    assert "print(f(2))" in kept and "if __name__ == '__main__':\n    check_f()" in kept
    assert drop_import_time_checks("def f(:\n") == ("def f(:\n", [])


def test_a_test_file_that_pastes_the_modules_function_tests_the_module_instead(
    kernel: Kernel,
) -> None:
    """The 1.5B pasted its decode_frame into test_solution.py (sensors run): its tests checked
    that copy. The copy goes and the module's function is imported, so they fail on its bug."""
    from agentos.agents.coder import drop_copied_definitions

    ws = Workspace(kernel.settings.data_dir / "ws")
    ws.write_file("solution.py", "def f(x):\n    return x + 2\n")
    ws.write_file("test_solution.py", "import pytest\n\ndef f(x):\n    return x + 1\n\n\n"
                  "@pytest.fixture\ndef one():\n    return 1\n\n\n"
                  "def test_f(one):\n    assert f(one) == 2\n")
    result = ws.run_tests()
    assert not result["passed"] and "assert 3 == 2" in result["stdout"]
    assert "removed the copy of `f` from test_solution.py" in result["repaired"]
    tests = ws.files()["test_solution.py"]
    assert "from solution import f" in tests and "return x + 1" not in tests
    assert "def one():" in tests  # a fixture is the test's own
    assert drop_copied_definitions("def f(:\n", {"solution": "def f(): pass"}) == ("def f(:\n", [])


def test_a_check_that_agrees_with_neither_side_says_so_and_changes_nothing(
    kernel: Kernel,
) -> None:
    code = "def half(x):\n    return x / 3\n"
    tests = "from solution import half\n\n\ndef test_half():\n    assert half(9) == 4.0\n"
    llm = ScriptedLLM([_whole_reply(code, tests), "```python\nresult = 9 / 2\nprint(repr(result))\n```",
                       _whole_reply(code.replace("/ 3", "/ 2"), tests.replace("4.0", "4.5"))])
    result = Coder(llm=llm, edit_format="whole").run("Write half(x).", kernel=kernel)
    assert result.ok
    assert ("a separate check of the rules found that `half(9)` gives 4.5, neither the code's 3.0 "
            "nor the test's 4.0") in llm.calls[2][1]["content"]
    assert result.files["test_solution.py"].endswith("== 4.5\n")  # the model's own fix


def test_a_check_that_prints_a_value_of_another_kind_decides_nothing(kernel: Kernel) -> None:
    code = "def tag(n):\n    return 'T' + str(n)\n"
    tests = "from solution import tag\n\n\ndef test_tag():\n    assert tag(1) == 'T2'\n"
    llm = ScriptedLLM([_whole_reply(code, tests), "```python\nresult = 25\nprint(repr(result))\n```",
                       _whole_reply(code, tests.replace("'T2'", "'T1'"))])
    result = Coder(llm=llm, edit_format="whole").run("Write tag(n).", kernel=kernel)
    assert result.ok and "separate check" not in llm.calls[2][1]["content"]
