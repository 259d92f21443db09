"""What an action changed, as the agent's report says it; no display needed."""

from __future__ import annotations

from agentos.desktop.elements import compress
from agentos.desktop.observe import Observation, changes
from agentos.desktop.ocr import Word
from agentos.desktop.windows import Window


def _seen(focused: str, *texts: str) -> Observation:
    windows = [Window(1, "galculator", (0, 0, 300, 300), 11, focused == "galculator"),
               Window(2, "Save As", (400, 0, 600, 400), 12, focused == "Save As")]
    owner = next(w for w in windows if w.title == focused)
    words = [Word(t, (owner.box[0] + 10, 20 * i, 8 * len(t), 12), 90.0, (1, 1, i))
             for i, t in enumerate(texts)]
    return Observation(None, windows, words, compress(windows, words))  # type: ignore[arg-type]


def test_changes_name_new_text_in_the_focused_window_and_a_new_focus() -> None:
    before = _seen("galculator", "7", "8", "0")
    assert changes(before, _seen("galculator", "7", "8", "408")) == 'new text: "408"'
    assert changes(before, _seen("galculator", "7", "8", "0")) == ""
    # a second copy of a text that was there once is new
    assert changes(before, _seen("galculator", "7", "7", "8", "0")) == 'new text: "7"'
    moved = changes(before, _seen("Save As", "Name:", "Cancel", "Save"))
    assert moved == "focused window now: Save As"  # its text is in the screen list anyway


def test_changes_list_at_most_a_few_new_texts() -> None:
    many = _seen("galculator", *[f"t{i}" for i in range(12)])
    said = changes(_seen("galculator"), many, limit=3)
    assert said == 'new text: "t0", "t1", "t2" and 9 more'
