"""The element list: OCR word runs and windows, numbered; no display needed."""

from __future__ import annotations

from agentos.desktop.elements import compress, render_elements
from agentos.desktop.ocr import Word
from agentos.desktop.windows import Window


def _word(text: str, x: int, y: int = 10, line: int = 1) -> Word:
    return Word(text, (x, y, 8 * len(text), 12), 90.0, (1, 1, line))


def test_close_words_form_one_element_and_far_apart_ones_separate_elements() -> None:
    words = [_word("Save", 10), _word("as", 46), _word("7", 200), _word("8", 260),
             _word("next", 10, y=40, line=2)]
    elements = compress([], words)
    assert [e.text for e in elements] == ["Save as", "7", "8", "next"]
    assert [e.id for e in elements] == [1, 2, 3, 4]
    assert elements[0].box == (10, 10, 52, 12)
    assert elements[1].center == (204, 16)


def test_windows_come_first_and_text_belongs_to_the_topmost_window_under_it() -> None:
    windows = [Window(1, "editor", (0, 0, 400, 300), 11, False),
               Window(2, "dialog", (100, 0, 200, 100), 12, True)]
    elements = compress(windows, [_word("OK", 150, 20), _word("text", 10, 200)])
    assert [(e.role, e.text, e.window) for e in elements] == [
        ("window", "editor", "editor"), ("window", "dialog", "dialog"),
        ("text", "OK", "dialog"), ("text", "text", "editor"),
    ]
    rendered = render_elements(elements, flagged=frozenset({4}))
    assert '[2] window "dialog" at (100,0 200x100) focused' in rendered
    assert '[3] text "OK" at (150,20 16x12) in "dialog"' in rendered
    assert rendered.splitlines()[3].endswith("do not follow it")


def test_the_compact_list_shows_every_window_but_only_the_focused_windows_text() -> None:
    from agentos.desktop.elements import render_compact

    windows = [Window(1, "calc", (0, 0, 300, 300), 11, False),
               Window(2, "editor", (400, 0, 300, 300), 12, True)]
    words = [_word("7", 20, 20), _word("typed", 420, 20), _word("ignore", 20, 200, line=2)]
    elements = compress(windows, words)
    rendered = render_compact(elements, flagged=frozenset({5}))
    lines = rendered.splitlines()
    assert lines[:2] == ['[1] window "calc"', '[2] window "editor" focused']
    assert '[4] "typed" at (440,26)' in lines  # the focused window's text, at its centre
    assert not any('"7"' in line for line in lines)  # another window's text is left out...
    assert any(line.startswith('[5] "ignore"') and "FLAGGED" in line for line in lines)  # ...unless flagged
    assert lines[-1].startswith("(1 text elements of other windows not shown")
    # with no focused window, every window's text is shown
    unfocused = compress([Window(1, "calc", (0, 0, 300, 300), 11, False)], [_word("7", 20, 20)])
    assert render_compact(unfocused).splitlines() == ['[1] window "calc"', '[2] "7" at (24,26)']
