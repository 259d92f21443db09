"""The desktop: displays, observation (screenshot, OCR, windows), safety policy, input, sessions.

The agent that uses these is :class:`agentos.agents.desktop.Desktop`. Heavy dependencies
(Pillow, python-xlib, pyautogui, pytesseract: the ``desktop`` extra) load only when a display
is observed or acted on.
"""

from __future__ import annotations

from agentos.desktop.actions import Actuator
from agentos.desktop.display import Display, RealDisplay, VirtualDisplay
from agentos.desktop.elements import Element, compress, render_elements
from agentos.desktop.observe import Observation, grab_screen, observe
from agentos.desktop.ocr import Word, read_words
from agentos.desktop.safety import DEFAULT_PROGRAMS, Policy, Verdict, find_instructions
from agentos.desktop.session import ActionRecord, DesktopSession
from agentos.desktop.windows import Window, focus_window, list_windows

__all__ = [
    "DEFAULT_PROGRAMS",
    "ActionRecord",
    "Actuator",
    "DesktopSession",
    "Display",
    "Element",
    "Observation",
    "Policy",
    "RealDisplay",
    "Verdict",
    "VirtualDisplay",
    "Window",
    "Word",
    "compress",
    "find_instructions",
    "focus_window",
    "grab_screen",
    "list_windows",
    "observe",
    "read_words",
    "render_elements",
]
