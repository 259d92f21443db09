"""Mouse and keyboard input through pyautogui, bound to one X display.

pyautogui connects to ``$DISPLAY`` once, when first imported; :class:`Actuator` imports it with
the run's display active and then points its X connection at that display, so one process can
drive several virtual displays one after the other. Key codes come from the first display
pyautogui saw (every Xvfb server has the same default keymap).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from agentos.errors import ActionRefused, DesktopUnavailable

__all__ = ["Actuator", "load_pyautogui"]

_BUTTONS = ("left", "right", "middle")


def load_pyautogui(display_name: str, connection: Any | None = None) -> Any:
    """pyautogui, its X connection pointed at ``display_name``.

    Args:
        display_name: the X display.
        connection: a python-xlib connection to it to use (a new one when None and pyautogui's
            current one is to another display name).

    Raises:
        DesktopUnavailable: the ``desktop`` extra is not installed.
    """
    saved = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display_name
    try:
        import pyautogui
        from pyautogui import _pyautogui_x11 as x11
        from Xlib.display import Display as XDisplay
    except ImportError as error:
        raise DesktopUnavailable(
            f"the desktop agent needs {error.name}: pip install 'agentos-kit[desktop]'"
        ) from None
    finally:
        if saved is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = saved
    if connection is not None:
        x11._display = connection
    elif x11._display.get_display_name() != display_name:
        x11._display = XDisplay(display_name)
    return pyautogui


class Actuator:
    """Sends input to one display.

    Args:
        display_name: the X display, e.g. ``:57``.
        fail_safe: pyautogui's fail-safe (moving the mouse to a screen corner aborts the run);
            on for the user's real screen, off on a private virtual one, where a corner click is
            a legitimate action.
        pause: seconds pyautogui waits after each call.
    """

    def __init__(self, display_name: str, *, fail_safe: bool = False, pause: float = 0.05) -> None:
        from Xlib.display import Display as XDisplay

        self.display_name = display_name
        self._gui = load_pyautogui(display_name)
        # Its own connection: a display number is reused after a server stops, so a connection
        # found under the same name may belong to a server that is gone.
        self._connection = XDisplay(display_name)
        self._gui.FAILSAFE = fail_safe
        self._gui.PAUSE = pause

    def _bind(self) -> Any:
        return load_pyautogui(self.display_name, self._connection)

    def close(self) -> None:
        """Close this actuator's X connection (before its display stops)."""
        self._connection.close()

    def click(self, x: int, y: int, *, button: str = "left", clicks: int = 1) -> None:
        if button not in _BUTTONS:
            raise ActionRefused(f"unknown mouse button {button!r}; use one of {', '.join(_BUTTONS)}")
        self._bind().click(x=x, y=y, clicks=clicks, interval=0.08, button=button)

    def untypable(self, text: str) -> list[str]:
        """Characters of ``text`` pyautogui cannot type on this keymap (it would drop them)."""
        from pyautogui import _pyautogui_x11 as x11

        return sorted({c for c in text if x11.keyboardMapping.get(c) is None and c != "\n"})

    def type(self, text: str, *, interval: float = 0.02) -> None:
        """Type ``text`` (``\\n`` presses Enter).

        Raises:
            ActionRefused: ``text`` has characters this keymap cannot type; nothing was typed.
        """
        missing = self.untypable(text)
        if missing:
            raise ActionRefused(f"cannot type {''.join(missing)!r} on this keyboard map; nothing "
                                "was typed. Type plain ASCII text")
        self._bind().write(text, interval=interval)

    def hotkey(self, keys: Sequence[str]) -> None:
        """Press ``keys`` together (``["ctrl", "s"]``).

        Raises:
            ActionRefused: a key name pyautogui does not know.
        """
        gui = self._bind()
        unknown = [k for k in keys if k not in gui.KEYBOARD_KEYS]
        if unknown:
            raise ActionRefused(f"unknown key name(s) {unknown}; use names like ctrl, alt, shift, "
                                "enter, tab, escape, f1, a, 1")
        gui.hotkey(*keys, interval=0.05)

    def scroll(self, amount: int, x: int | None = None, y: int | None = None) -> None:
        """Scroll ``amount`` clicks (positive: up) at ``(x, y)``, or where the mouse is."""
        self._bind().scroll(amount, x=x, y=y)
