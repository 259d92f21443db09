"""OCR: the words on a screenshot with their boxes, by Tesseract (Debian's, through pytesseract).

Tesseract misses much of the small anti-aliased text of a raw screen capture and reads nearly
every word once the image is upscaled 2x (on a mousepad page of 45 known words: 28 read at 1x,
45 at 2x; ``tests/desktop/test_ocr.py`` measures it), so :func:`read_words` upscales before OCR
and maps boxes back to screen pixels.

Tesseract runs single-threaded (``OMP_THREAD_LIMIT=1`` unless the environment sets it): a
screen-sized page is about 3x faster that way than with OpenMP threads on a busy machine.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentos.errors import DesktopUnavailable

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Box", "Word", "read_words", "tesseract_path"]

Box = tuple[int, int, int, int]
"""``(left, top, width, height)`` in screen pixels."""


@dataclass(frozen=True, slots=True)
class Word:
    """One OCR word: its text, box in screen pixels, confidence (0-100) and Tesseract line key."""

    text: str
    box: Box
    confidence: float
    line: tuple[int, int, int]


def tesseract_path() -> str:
    """The ``tesseract`` binary.

    Raises:
        DesktopUnavailable: not installed; the message gives the install command.
    """
    found = shutil.which("tesseract")
    if found is None:
        raise DesktopUnavailable(
            "no tesseract on PATH: the desktop agent reads the screen with Tesseract OCR. "
            "Install it: apt-get install -y tesseract-ocr (or run ./system-packages.sh as root)"
        )
    return found


def read_words(
    image: Image, *, scale: int = 2, offset: tuple[int, int] = (0, 0), min_confidence: float = 30.0,
    psm: int = 3,
) -> list[Word]:
    """The words Tesseract reads in ``image``, in reading order.

    Args:
        image: a screenshot (or a crop of one).
        scale: upscale factor before OCR (2 reads UI text; 1 reads almost none of it).
        offset: where ``image``'s top-left corner is on the screen; added to every box.
        min_confidence: words Tesseract is less sure of are dropped.
        psm: Tesseract's page segmentation mode: 3 (automatic) for a whole screen, 6 (one
            uniform block) for one window, where it reads grids of buttons far better.

    Raises:
        DesktopUnavailable: no tesseract binary, or the ``desktop`` extra is not installed.
    """
    try:
        import pytesseract
        from PIL import Image as PILImage
    except ImportError as error:
        raise DesktopUnavailable(
            f"the desktop agent needs {error.name}: pip install 'agentos-kit[desktop]'"
        ) from None
    pytesseract.pytesseract.tesseract_cmd = tesseract_path()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # pytesseract passes this process's env
    big = image.convert("L")
    if scale != 1:
        big = big.resize((image.width * scale, image.height * scale), PILImage.Resampling.BICUBIC)
    data = pytesseract.image_to_data(big, output_type=pytesseract.Output.DICT, config=f"--psm {psm}")
    words: list[Word] = []
    dx, dy = offset
    for i, text in enumerate(data["text"]):
        text = text.strip()
        confidence = float(data["conf"][i])
        if not text or confidence < min_confidence:
            continue
        box = (
            dx + data["left"][i] // scale, dy + data["top"][i] // scale,
            max(1, data["width"][i] // scale), max(1, data["height"][i] // scale),
        )
        line = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        words.append(Word(text, box, confidence, line))
    return words
