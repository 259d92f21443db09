"""Stated examples: the sources' own examples become a fixed test file the LLM cannot change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos import Kernel, load_settings
from agentos.agents import Coder
from agentos.errors import UserError
from agentos.agents.stated import (
    EXAMPLES_FILE, SOURCES_END, examples_test, parse_examples, task_functions, trusted_text,
)
from agentos.testing import ScriptedLLM

KIVU = ("A Kivu year is a leap year when its number is divisible by 5, except when it is "
        "divisible by 40; but years divisible by 200 are leap years again. So 1995 and 2000 are "
        "leap years, 1960 and 2040 are not, and 2200 is. A year has 364 days, a leap year 371. "
        "Year numbers start at 1; year 0 does not exist (ValueError).")
GOAL = ("Write a Python function kivu_days(year: int) -> int that returns the days of a Kivu "
        "year. Put the function in solution.py and its pytest tests in test_solution.py.")


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / "data")}))
    yield k
    k.close()


def test_keeps_the_examples_the_text_states_and_says_why_it_drops_the_others() -> None:
    reply = ("```\nkivu_days(1995) == 371\n- kivu_days(1960) == 364\n"
             "2. `kivu_days(2200) == 371`  # a leap year\n"
             "kivu_days(1961) == 364\n"          # 1961 is not in the text: made up
             "kivu_days(2040) == 365\n"          # 365 is not in the text
             "kivu_days(0) raises ValueError\n"
             "kivu_days(-5) raises ValueError\n"  # -5 is not in the text
             "kivu_days(2000) raises KeyError\n"  # the text never names KeyError
             "leap(1995) == 371\n"               # not the task's function
             "kivu_days(year) == 371\n"          # not a literal argument
             "```")
    examples, dropped = parse_examples(reply, KIVU, ["kivu_days"])
    assert [e.line for e in examples] == [
        "kivu_days(1995) == 371", "kivu_days(1960) == 364", "kivu_days(2200) == 371",
        "kivu_days(0) raises ValueError"]
    assert len(dropped) == 6
    assert any("argument 1961" in d for d in dropped)
    assert any("result 365" in d for d in dropped)
    assert any("does not name KeyError" in d for d in dropped)
    assert parse_examples("NONE", KIVU, ["kivu_days"]) == ([], [])


def test_a_call_given_two_outcomes_is_dropped_and_floats_compare_approximately() -> None:
    text = "A parcel of 3.2 kg costs EUR 6.50 in zone domestic; 2 kg cost EUR 4.20 (ValueError)."
    reply = ("shipping_cost(3.2, 'domestic') == 6.5\nshipping_cost(2, 'domestic') == 4.2\n"
             "shipping_cost(2, 'domestic') raises ValueError\n")
    examples, dropped = parse_examples(reply, text, ["shipping_cost"])
    assert [e.line for e in examples] == ["shipping_cost(3.2, 'domestic') == 6.5"]
    assert dropped == ["shipping_cost(2, 'domestic'): given two different outcomes"]
    test = examples_test(examples, "solution")
    assert "from solution import shipping_cost" in test
    assert "assert shipping_cost(3.2, 'domestic') == pytest.approx(6.5)" in test


def test_trusted_text_leaves_out_what_a_model_wrote_between_the_task_and_the_sources() -> None:
    task = (f"{GOAL}\n\n## Input from research\nThe researcher says kivu_days(1961) == 365.\n\n"
            f"Sources cited (verbatim):\n\n[kivu.md, part 0]\n{KIVU}\n{SOURCES_END}\n\n"
            "## Your previous output\nsolution.py: return 365 if year % 4 else 366")
    trusted = trusted_text(task)
    assert GOAL in trusted and KIVU in trusted
    assert "1961" not in trusted and "365" not in trusted and "366" not in trusted
    assert trusted_text(GOAL) == GOAL  # no sources handed on: the task is the text
    assert task_functions(GOAL) == ["kivu_days"]


_RIGHT = ("def kivu_days(year):\n    if year < 1:\n        raise ValueError(year)\n"
          "    leap = year % 5 == 0 and (year % 40 != 0 or year % 200 == 0)\n"
          "    return 371 if leap else 364\n")
_NO_40 = ("def kivu_days(year):\n    if year < 1:\n        raise ValueError(year)\n"
          "    return 371 if year % 5 == 0 else 364\n")
_OWN_TESTS = ("from solution import kivu_days\n\n\ndef test_kivu():\n"
              "    assert kivu_days(1995) == 371\n    assert kivu_days(40) == 371\n")


def _files(code: str, tests: str) -> str:
    return f"solution.py\n```python\n{code}```\n\ntest_solution.py\n```python\n{tests}```\n"


def test_the_coder_runs_the_stated_examples_and_the_llm_cannot_rewrite_them(
    kernel: Kernel,
) -> None:
    """The code and its own tests agree on a wrong value (no divisible-by-40 rule, as the 1.5B
    wrote them); the stated example 1960 -> 364 fails them, and the LLM's attempt to weaken
    the fixed file is not written."""
    weakened = "def test_stated_example_1():\n    assert True\n"
    llm = ScriptedLLM([
        "kivu_days(1995) == 371\nkivu_days(1960) == 364\nkivu_days(0) raises ValueError",
        _files(_NO_40, _OWN_TESTS),
        _files(_NO_40, _OWN_TESTS) + f"\n{EXAMPLES_FILE}\n```python\n{weakened}```\n",
        _files(_RIGHT, _OWN_TESTS.replace("kivu_days(40) == 371", "kivu_days(1960) == 364")),
    ])
    task = f"{GOAL}\n\n{KIVU}"
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, stated_examples=True,
                   max_steps=5).run(task, kernel=kernel)
    assert result.ok and result.tests_passed, result.test_output
    assert result.stated_examples == ["kivu_days(1995) == 371", "kivu_days(1960) == 364",
                                      "kivu_days(0) raises ValueError"]
    assert result.files["solution.py"] == _RIGHT
    fixed = result.files[EXAMPLES_FILE]
    assert "assert kivu_days(1960) == 364" in fixed and "assert True" not in fixed
    asked = llm.calls[0][0]["content"]
    assert "List every example the text itself gives" in asked and KIVU in asked
    first = llm.calls[1][1]["content"]
    assert "- kivu_days(1960) == 364\n" in first  # every prompt lists the stated examples
    # While a stated example fails, the prompt shows just that: what the code gave and what
    # the sources say, not pytest's output with the LLM's own (agreeing, wrong) tests.
    second = llm.calls[2][1]["content"]
    assert ("- `kivu_days(1960)` returned 371; the sources say 364.") in second
    assert "## pytest" not in second and "kivu_days(40)" not in second.split("## The files")[0]
    assert f"Your {EXAMPLES_FILE} was not written" in llm.calls[3][1]["content"]
    writes = [json.loads(s.detail)["arguments"]["path"] if isinstance(s.detail, str) else
              s.detail["arguments"]["path"] for s in kernel.store.syscalls(result.run_id)
              if s.kind == "tool" and s.name == "write_file"]
    assert writes[0] == EXAMPLES_FILE and writes.count(EXAMPLES_FILE) == 1


def test_without_stated_examples_the_wrong_code_and_its_tests_pass_together(
    kernel: Kernel,
) -> None:
    """The control: the same replies with ``stated_examples=False`` end at the wrong code."""
    llm = ScriptedLLM([_files(_NO_40, _OWN_TESTS)])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, max_steps=5).run(
        f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert result.tests_passed and result.files["solution.py"] == _NO_40
    assert EXAMPLES_FILE not in result.files and result.stated_examples == []


def test_a_reply_with_no_stated_example_leaves_the_coder_as_it_was(kernel: Kernel) -> None:
    llm = ScriptedLLM(["NONE", _files(_RIGHT, _OWN_TESTS.replace("(40) == 371", "(40) == 364"))])
    result = Coder(llm=llm, edit_format="whole", stated_examples=True, max_steps=3).run(
        f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert result.tests_passed and EXAMPLES_FILE not in result.files
    assert len(llm.calls) == 2


def test_a_limit_is_not_an_error_case_and_a_result_must_have_the_declared_type() -> None:
    text = ("Write a function decode(frame: str) -> tuple[float, int] and cost(kg: float) -> "
            "float. Frame `A500EB2DC6` is 23.5 degrees and 45 %: raw value 235. Parcels heavier "
            "than 30 kg are refused (ValueError). A sequence outside 1 to 99999 is an error "
            "(ValueError). The frame `A5FF` is an error (ValueError).")
    reply = ("cost(30) raises ValueError\ncost(99999) raises ValueError\n"
             "decode('A5FF') raises ValueError\n"
             "decode('A500EB2DC6') == (235, 45)\ndecode('A500EB2DC6') == (23.5, 45)\n"
             "decode('A500EB2D') == (23.5, 45)\n")  # only a prefix of a stated frame
    examples, dropped = parse_examples(reply, text, ["cost", "decode"])
    assert [e.line for e in examples] == ["decode('A5FF') raises ValueError",
                                          "decode('A500EB2DC6') == (23.5, 45)"]
    assert sum("as an error case" in d for d in dropped) == 2  # 30 and 99999 are limits
    assert any("(235, 45) is not a tuple[float, int]" in d for d in dropped)
    assert any("argument 'A500EB2D'" in d for d in dropped)


def test_a_stated_error_case_that_returned_normally_is_said_in_words(kernel: Kernel) -> None:
    """``kivu_days(0)`` returns instead of raising: the next prompt says so, and that the
    sources make it an error."""
    lax = "def kivu_days(year):\n    leap = year % 5 == 0 and (year % 40 != 0 or year % 200 == 0)\n    return 371 if leap else 364\n"
    llm = ScriptedLLM(["kivu_days(0) raises ValueError\nkivu_days(2200) == 371",
                       _files(lax, _OWN_TESTS.replace("(40) == 371", "(40) == 364")),
                       _files(_RIGHT, _OWN_TESTS.replace("(40) == 371", "(40) == 364"))])
    result = Coder(llm=llm, edit_format="whole", stated_examples=True, max_steps=3).run(
        f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert result.tests_passed and result.files["solution.py"] == _RIGHT
    second = llm.calls[2][1]["content"]
    assert "- `kivu_days(0)` returned normally; the sources say it raises ValueError." in second
    assert "kivu_days(2200)" in second and "`kivu_days(2200)` returned" not in second


def test_a_test_file_that_does_not_compile_does_not_hide_the_stated_examples(
    kernel: Kernel,
) -> None:
    """The 1.5B wrote `(2025, 00043, ...)` (a SyntaxError) in its own test file: pytest still
    runs the stated examples, and the next prompt says which of them the code fails."""
    broken = "from solution import kivu_days\n\n\ndef test_kivu():\n    assert kivu_days(01960) == 364\n"
    llm = ScriptedLLM(["kivu_days(1960) == 364", _files(_NO_40, broken), _files(_RIGHT, broken)])
    result = Coder(llm=llm, edit_format="whole", stated_examples=True, max_steps=2).run(
        f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert not result.tests_passed  # the broken test file still fails the run
    assert "- `kivu_days(1960)` returned 371; the sources say 364." in llm.calls[2][1]["content"]
    assert "1 passed" in result.test_output and "1 error" in result.test_output


def test_a_result_paired_with_an_operand_of_the_sentence_that_works_it_out_is_dropped() -> None:
    # Twice in crew runs the 1.5B read "3.2 kg ... costs 4.20 + 2 x 1.15 = EUR 6.50" as
    # shipping_cost(2, 'domestic') == 6.5: a fixed test no right code can pass.
    parcels = (Path(__file__).resolve().parents[2] / "examples" / "crew_tasks" / "docs"
               / "parcels.md").read_text()
    reply = ("shipping_cost(2, 'domestic') == 6.5\nshipping_cost(3.2, 'domestic') == 6.5\n"
             "shipping_cost(2, 'domestic') == 4.20\n")
    kept, dropped = parse_examples(reply, parcels, ["shipping_cost"])
    assert [e.line for e in kept] == ["shipping_cost(3.2, 'domestic') == 6.5",
                                      "shipping_cost(2, 'domestic') == 4.2"]
    assert dropped == ["shipping_cost(2, 'domestic') == 6.5: the text works 6.5 out for 3.2, "
                       "not for these arguments"]
    # Without arithmetic the sentence says nothing of pairing: both readings stay.
    plain = "A parcel of 3 kg costs EUR 6.50; 2 parcels ship free."
    kept, _ = parse_examples("f(2) == 6.5\nf(3) == 6.5\n", plain, ["f"])
    assert len(kept) == 2


def test_a_turn_that_fails_no_fewer_stated_examples_is_written_anew_and_the_best_kept(
    kernel: Kernel,
) -> None:
    """The 1.5B swung between two wrong versions for a whole visit (invoices run). A change
    that fails no fewer of the sources' examples than the best turn gets a prompt without the
    files; when the turns end on code worse than an earlier turn's, that turn's files return."""
    always = "def kivu_days(year):\n    if year < 1:\n        raise ValueError(year)\n    return 364\n"
    llm = ScriptedLLM(["kivu_days(1995) == 371\nkivu_days(1960) == 364\nkivu_days(2200) == 371",
                       _files(_NO_40, _OWN_TESTS),      # fails 1960 only
                       _files(always, _OWN_TESTS),      # fails 1995 and 2200: not better
                       _files(always + "\n", _OWN_TESTS)])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, stated_examples=True,
                   max_steps=3).run(f"{GOAL}\n\n{KIVU}", kernel=kernel)
    second, third = llm.calls[2][1]["content"], llm.calls[3][1]["content"]
    assert "## The files now" in second and "did not make the code fail fewer" not in second
    assert "did not make the code fail fewer of the sources' examples" in third
    assert "## The files now" not in third and "return 364" not in third
    assert "- `kivu_days(1995)` returned 364; the sources say 371." in third
    assert not result.tests_passed and result.files["solution.py"] == _NO_40
    assert "the turn that failed the fewest of the sources' examples (1 of 3)" in result.error
    assert "1 failed" in result.test_output  # the tests ran again on the restored files


def test_the_first_prompt_gets_several_replies_and_the_one_failing_fewest_examples_is_kept(
    kernel: Kernel,
) -> None:
    """Best of n on the stated examples: three replies to the first prompt, each written and
    tested; the second fails one example, the others two, so its files are written back and
    the next prompt shows them."""
    always = "def kivu_days(year):\n    if year < 1:\n        raise ValueError(year)\n    return 364\n"
    llm = ScriptedLLM(["kivu_days(1995) == 371\nkivu_days(1960) == 364\nkivu_days(2200) == 371",
                       _files(always, _OWN_TESTS),         # fails 1995 and 2200
                       _files(_NO_40, _OWN_TESTS),         # fails 1960 only
                       _files(always + "\n", _OWN_TESTS),  # fails 1995 and 2200
                       _files(_RIGHT, _OWN_TESTS.replace("(40) == 371", "(40) == 364"))])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, stated_examples=True,
                   candidates=3, max_steps=2).run(f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert len(llm.calls) == 5
    repair = llm.calls[4][1]["content"]
    assert "## The files now" in repair and "return 371 if year % 5 == 0 else 364" in repair
    assert "- `kivu_days(1960)` returned 371; the sources say 364." in repair
    assert result.ok and result.files["solution.py"] == _RIGHT
    writes = [s for s in kernel.store.syscalls(result.run_id)
              if s.kind == "tool" and s.name == "write_file"]
    solutions = [s.detail["arguments"]["content"] for s in writes
                 if s.detail["arguments"]["path"] == "solution.py"]
    assert solutions == [always, _NO_40, always + "\n", _NO_40, _RIGHT]  # _NO_40 written back


def test_sampling_stops_at_a_reply_that_passes_every_stated_example(kernel: Kernel) -> None:
    """Its own test is wrong (kivu_days(40) == 371), but the code passes every stated example:
    no second candidate; the next turn repairs these files."""
    llm = ScriptedLLM(["kivu_days(1995) == 371\nkivu_days(1960) == 364",
                       _files(_RIGHT, _OWN_TESTS),
                       _files(_RIGHT, _OWN_TESTS.replace("(40) == 371", "(40) == 364"))])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, stated_examples=True,
                   candidates=4, max_steps=2).run(f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert len(llm.calls) == 3 and result.ok
    assert "## The files now" in llm.calls[2][1]["content"]
    with pytest.raises(UserError, match="candidates must be at least 1"):
        Coder(edit_format="whole", candidates=0)


def test_replies_after_the_first_are_sampled_not_greedy() -> None:
    """Under greedy decoding (HumanEval runs at temperature 0) the second reply would repeat
    the first, so later replies get temperature 0.7; a hotter setting or the model's default
    stays as it is."""
    from agentos.agents.coder import _sampled

    assert _sampled({"temperature": 0.0, "max_tokens": 9}) == {"temperature": 0.7,
                                                               "max_tokens": 9}
    assert _sampled({"temperature": 1.0}) == {"temperature": 1.0}
    assert _sampled({"max_tokens": 9}) == {"max_tokens": 9}


_BROKEN = "def kivu_days(year:\n    return 364\n"  # does not compile


def test_code_that_does_not_import_fails_every_stated_example_and_is_never_the_best_turn(
    kernel: Kernel,
) -> None:
    """Code that does not import reports no failing example in pytest's output (only a
    collection error). It had counted as the best turn and been written back at the end
    (HumanEval/6 ended on a file with an IndentationError); now it counts as failing all."""
    always = "def kivu_days(year):\n    if year < 1:\n        raise ValueError(year)\n    return 364\n"
    llm = ScriptedLLM(["kivu_days(1995) == 371\nkivu_days(1960) == 364\nkivu_days(2200) == 371",
                       _files(_NO_40, _OWN_TESTS),     # fails 1960 only
                       _files(_BROKEN, _OWN_TESTS),    # does not import
                       _files(always, _OWN_TESTS)])    # fails 1995 and 2200
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, stated_examples=True,
                   max_steps=3).run(f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert result.files["solution.py"] == _NO_40
    assert "(1 of 3)" in result.error
    # Among a prompt's replies, one that does not import is not taken for a full pass.
    llm = ScriptedLLM(["kivu_days(1995) == 371\nkivu_days(1960) == 364",
                       _files(_BROKEN, _OWN_TESTS), _files(_NO_40, _OWN_TESTS)])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, stated_examples=True,
                   candidates=2, max_steps=1).run(f"{GOAL}\n\n{KIVU}", kernel=kernel)
    assert len(llm.calls) == 3 and result.files["solution.py"] == _NO_40


_STUB = '''def below_zero(operations: list[int]) -> bool:
    """ Whether the balance falls below zero.
    >>> below_zero([1, 2, 3])
    False
    >>> below_zero([1, 2, -4, 5])
    True
    >>> below_zero([])  # no operations
    False
    >>> below_zero(None)
    Traceback (most recent call last):
        ...
    TypeError: 'NoneType' object is not iterable
    >>> print(below_zero([1]))
    False
    >>> below_zero([-1]) or object()
    True
    """
'''


def test_doctests_and_arrow_lines_are_read_as_stated_examples_without_the_llm() -> None:
    from agentos.agents.stated import written_examples

    examples = written_examples(_STUB, ["below_zero"])
    assert [e.line for e in examples] == [
        "below_zero([1, 2, 3]) == False", "below_zero([1, 2, -4, 5]) == True",
        "below_zero([]) == False", "below_zero(None) raises TypeError"]
    # the closing quotes of a docstring are not part of the last output
    assert [e.line for e in written_examples('    >>> f(2)\n    4\n    """\n', ["f"])] == ["f(2) == 4"]
    arrows = ("def fly(q: list, w: int) -> bool:\n    fly([1, 2], 5) ➞ False  # unbalanced\n"
              "    fly([3], 5) => True.\n    fly([3, 2, 3], 9) should return True\n"
              "    fly([1], 1) -> 'yes'\n"  # not a bool: the annotation says bool
              "    fly(q) == True\n"  # not a literal argument
              "    fly([2], 1) = False\n")  # a bare = defines, it does not call
    assert [e.line for e in written_examples(arrows, ["fly"])] == [
        "fly([1, 2], 5) == False", "fly([3], 5) == True", "fly([3, 2, 3], 9) == True"]
    # a call shown with two outcomes says nothing; text without doctests gives none
    assert written_examples(">>> f(1)\n2\n>>> f(1)\n3\n>>> f(2)\n4\n", ["f"]) == [
        e for e in written_examples(">>> f(2)\n4\n", ["f"])]
    assert written_examples(KIVU, ["kivu_days"]) == []


_BELOW = ("def below_zero(operations):\n    balance = 0\n    for op in operations:\n"
          "        balance += op\n        if balance < 0:\n            return True\n"
          "    return False\n")
_NEVER = "def below_zero(operations):\n    return sum(operations) < 0\n"
_AGREEING = ("from solution import below_zero\n\n\ndef test_it():\n"
             "    assert below_zero([1, 2, -4, 5]) is False\n")


def test_a_stub_with_doctests_gets_them_as_fixed_tests_and_no_examples_call(kernel: Kernel) -> None:
    """The code and its own test agree on a wrong value; the doctest `below_zero([1, 2, -4, 5])`
    -> True fails them. The scripted LLM is never asked to list examples: every call is a
    prompt for the files."""
    llm = ScriptedLLM([_files(_NEVER, _AGREEING),
                       _files(_BELOW, _AGREEING.replace("is False", "is True"))])
    result = Coder(llm=llm, edit_format="whole", arbitrate=False, stated_examples=True,
                   max_steps=4).run("Complete below_zero in solution.py.", kernel=kernel,
                                    files={"solution.py": _STUB})
    assert result.ok and result.tests_passed, result.test_output
    assert result.files["solution.py"] == _BELOW
    assert "below_zero([1, 2, -4, 5]) == True" in result.stated_examples
    assert len(llm.calls) == 2
    assert all("List every example" not in m["content"] for call in llm.calls for m in call)
    assert "- `below_zero([1, 2, -4, 5])` returned False; the sources say True." in \
        llm.calls[1][1]["content"]
