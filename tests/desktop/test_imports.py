"""The desktop modules load without their heavy dependencies (they load when a screen is used)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["PIL", "Xlib", "pyautogui", "pytesseract"]


def test_desktop_modules_import_none_of_pillow_xlib_pyautogui_pytesseract() -> None:
    code = ("import json, sys, agentos, agentos.desktop, agentos.agents.desktop, "
            f"agentos._cli_desktop; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
