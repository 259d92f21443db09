"""The window list and the focused window of an X display, read with python-xlib.

Works with and without a window manager: top-level windows are the viewable children of the
root window (or of a window manager's frames), named by ``_NET_WM_NAME`` or ``WM_NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentos.desktop.ocr import Box

__all__ = ["Window", "fit_window", "focus_window", "list_windows"]


@dataclass(frozen=True, slots=True)
class Window:
    """A top-level window: X id, title, box on the screen, owning PID (when it says) and focus."""

    id: int
    title: str
    box: Box
    pid: int | None
    focused: bool


def _connect(name: str) -> Any:
    from Xlib import display

    return display.Display(name)


def _title(d: Any, win: Any) -> str:
    net_name = d.intern_atom("_NET_WM_NAME")
    utf8 = d.intern_atom("UTF8_STRING")
    prop = win.get_full_property(net_name, utf8)
    if prop is not None and prop.value:
        value = prop.value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    name = win.get_wm_name()
    if isinstance(name, bytes):
        return name.decode("latin-1")
    return name or ""


def _pid(d: Any, win: Any) -> int | None:
    from Xlib import Xatom

    prop = win.get_full_property(d.intern_atom("_NET_WM_PID"), Xatom.CARDINAL)
    return int(prop.value[0]) if prop is not None and len(prop.value) else None


def _named_client(d: Any, win: Any, depth: int = 0) -> Any | None:
    """``win`` if it has a title, else its first titled descendant (window-manager frames)."""
    if _title(d, win):
        return win
    if depth >= 3:
        return None
    for child in win.query_tree().children:
        found = _named_client(d, child, depth + 1)
        if found is not None:
            return found
    return None


def _top_level(d: Any, win: Any) -> int | None:
    """The root child that contains ``win`` (its top-level frame), by walking up the tree."""
    root = d.screen().root
    if win is None or isinstance(win, int):
        return None
    while True:
        tree = win.query_tree()
        if tree.parent == 0 or tree.parent.id == root.id:
            return int(win.id)
        win = tree.parent


def list_windows(display_name: str) -> list[Window]:
    """The viewable titled top-level windows, bottom to top of the stacking order.

    Args:
        display_name: an X display name such as ``:57`` (reached with the current XAUTHORITY).
    """
    from Xlib import X
    from Xlib.error import BadWindow

    d = _connect(display_name)
    try:
        root = d.screen().root
        focus = d.get_input_focus().focus
        focused_top = _top_level(d, focus)
        windows: list[Window] = []
        for top in root.query_tree().children:
            try:
                if top.get_attributes().map_state != X.IsViewable:
                    continue
                client = _named_client(d, top)
                if client is None:
                    continue
                geometry = top.get_geometry()
                origin = top.translate_coords(root, 0, 0)
                box = (-origin.x, -origin.y, geometry.width, geometry.height)
                if geometry.width <= 1 or geometry.height <= 1:
                    continue
                windows.append(Window(int(client.id), _title(d, client), box, _pid(d, client),
                                      focused_top == int(top.id)))
            except BadWindow:  # it closed while we looked
                continue
        return windows
    finally:
        d.close()


def focus_window(display_name: str, window_id: int) -> None:
    """Raise window ``window_id`` and give it the keyboard focus (works without a window manager)."""
    from Xlib import X

    d = _connect(display_name)
    try:
        win = d.create_resource_object("window", window_id)
        top_id = _top_level(d, win)
        if top_id is not None:
            d.create_resource_object("window", top_id).configure(stack_mode=X.Above)
        win.set_input_focus(X.RevertToParent, X.CurrentTime)
        d.sync()
    finally:
        d.close()


def fit_window(display_name: str, window_id: int, width: int, height: int) -> bool:
    """Move and shrink top-level window ``window_id`` to lie inside a ``width`` x ``height``
    screen (a window manager's job, for displays without one). Returns whether it moved."""
    d = _connect(display_name)
    try:
        win = d.create_resource_object("window", window_id)
        top_id = _top_level(d, win)
        if top_id is None:
            return False
        top = d.create_resource_object("window", top_id)
        geometry = top.get_geometry()
        w, h = min(geometry.width, width), min(geometry.height, height)
        x = min(max(0, geometry.x), width - w)
        y = min(max(0, geometry.y), height - h)
        if (x, y, w, h) == (geometry.x, geometry.y, geometry.width, geometry.height):
            return False
        top.configure(x=x, y=y, width=w, height=h)
        d.sync()
        return True
    finally:
        d.close()
