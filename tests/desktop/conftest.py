"""Fixtures for the desktop tests: a real Xvfb display (fails with the install command when
Xvfb is missing), a kernel with its own data directory, and ways to look at the screen that do
not go through the agent's own observation."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos.config import load_settings
from agentos.desktop.display import VirtualDisplay
from agentos.runtime.kernel import Kernel
from tests.services import xvfb_or_fail


@pytest.fixture
def display() -> Iterator[VirtualDisplay]:
    """A private Xvfb display, active in this process, stopped by PID afterwards."""
    xvfb_or_fail()
    screen = VirtualDisplay(1024, 700)
    screen.activate()
    try:
        yield screen
    finally:
        screen.close()


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(load_settings(data_dir=str(tmp_path / "data")))
    try:
        yield k
    finally:
        k.close()


def start_on(display: VirtualDisplay, *argv: str, title: str, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Start a program on ``display`` (outside the agent) and wait for its window ``title``."""
    from agentos.desktop.windows import list_windows

    proc = subprocess.Popen(list(argv), env={**os.environ, **display.env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(title in w.title for w in list_windows(display.name)):
            time.sleep(0.5)
            return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"{argv[0]} showed no window {title!r} within {timeout}s", pytrace=False)


def read_region(display_name: str, box: tuple[int, int, int, int], scale: int = 3) -> str:
    """The text in ``box`` (left, top, width, height), read by the test itself: its own
    screenshot and a single-block Tesseract pass, independent of the agent's observation."""
    import pytesseract
    from PIL import ImageGrab

    left, top, width, height = box
    shot = ImageGrab.grab(xdisplay=display_name).crop((left, top, left + width, top + height))
    big = shot.convert("L").resize((width * scale, height * scale))
    return str(pytesseract.image_to_string(big, config="--psm 6"))
