"""The accessibility tree (AT-SPI) of the programs on a display, where they expose one.

GTK programs (mousepad, galculator) publish their widgets (role, name, box on the screen, and
a text field's contents) over AT-SPI when they find an accessibility bus on their D-Bus session
bus. A virtual display gets its own: :class:`AccessibilityBus` starts a private
``dbus-daemon --session`` and ``at-spi-bus-launcher`` for the programs launched on it, and stops
both by PID. Their settings go to memory (``GSETTINGS_BACKEND=memory``), so a run starts from
the same state and a program killed at the end of a run does not offer to restore its session
in the next one.

The tree is read by Debian's ``python3`` with ``python3-pyatspi`` (apt), in a subprocess: the
bindings are GObject introspection (PyGObject), which is built for the system Python and not
installable into a virtual environment from a wheel. :func:`atspi_unavailable` says what is
missing; without it the agent grounds on OCR and the window list alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from agentos.desktop.ocr import Box
from agentos.errors import DesktopUnavailable

__all__ = ["AccessibilityBus", "Accessible", "atspi_unavailable", "read_tree", "stop_group"]

SYSTEM_PYTHON = "/usr/bin/python3"
"""The interpreter that has ``pyatspi`` (Debian's ``python3-pyatspi``)."""

_LAUNCHERS = ("/usr/libexec/at-spi-bus-launcher", "/usr/lib/at-spi2-core/at-spi-bus-launcher")
_INSTALL = "apt-get install -y at-spi2-core python3-pyatspi gir1.2-atspi-2.0 dbus"

# Runs in SYSTEM_PYTHON: every showing, named widget with a box, as JSON lines.
_READER = r"""
import json, sys
import pyatspi
out = []
def walk(node, app, depth):
    if depth > 40 or len(out) > 400:
        return
    try:
        states = node.getState()
        if not states.contains(pyatspi.STATE_SHOWING):
            return
        role, name = node.getRoleName(), (node.name or "").strip()
        if role == "text":
            try:
                t = node.queryText()
                name = t.getText(0, min(t.characterCount, 200)).strip() or name
            except Exception:
                pass
        try:
            e = node.queryComponent().getExtents(pyatspi.DESKTOP_COORDS)
            box = [e.x, e.y, e.width, e.height]
        except Exception:
            box = None
        if box and box[2] > 1 and box[3] > 1 and box[0] > -10000 and name:
            out.append([app, role, name, box, states.contains(pyatspi.STATE_FOCUSED)])
        for i in range(node.childCount):
            walk(node.getChildAtIndex(i), app, depth + 1)
    except Exception:
        return
desktop = pyatspi.Registry.getDesktop(0)
for i in range(desktop.childCount):
    app = desktop.getChildAtIndex(i)
    if app is None:
        continue
    for j in range(app.childCount):
        walk(app.getChildAtIndex(j), app.name or "", 0)
json.dump(out, sys.stdout)
"""


@dataclass(frozen=True, slots=True)
class Accessible:
    """One widget as its program describes it: the program, its role (``push button``,
    ``text``, ``menu`` ...), its name (a text field's contents), its box and whether it has the
    keyboard focus."""

    app: str
    role: str
    name: str
    box: Box
    focused: bool = False


@cache
def atspi_unavailable() -> str | None:
    """Why the accessibility tree cannot be read here (what to install), or None when it can."""
    launcher = next((p for p in _LAUNCHERS if os.path.exists(p)), None)
    if shutil.which("dbus-daemon") is None or launcher is None:
        return f"no dbus-daemon or at-spi-bus-launcher; install them: {_INSTALL}"
    if not os.path.exists(SYSTEM_PYTHON):
        return f"no {SYSTEM_PYTHON} to read the tree with; install python3 and {_INSTALL}"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import pyatspi"], capture_output=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        return f"{SYSTEM_PYTHON} cannot import pyatspi; install it: {_INSTALL}"
    return None


class AccessibilityBus:
    """A private D-Bus session bus with an AT-SPI bus for the programs on one display.

    Args:
        display_env: ``DISPLAY`` (and ``XAUTHORITY``) of the display.

    Attributes:
        env: what a program needs to publish its tree here (the bus address, memory settings).

    Raises:
        DesktopUnavailable: AT-SPI is not installed (the message says what to install), or the
            bus did not start.
    """

    def __init__(self, display_env: Mapping[str, str]) -> None:
        missing = atspi_unavailable()
        if missing is not None:
            raise DesktopUnavailable(f"no accessibility tree: {missing}")
        self._procs: list[subprocess.Popen[bytes]] = []
        daemon = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
            env={**os.environ, **display_env}, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._procs.append(daemon)
        assert daemon.stdout is not None
        address = daemon.stdout.readline().decode().strip()
        if not address:
            self.close()
            raise DesktopUnavailable("dbus-daemon --session did not start (no address printed)")
        self.env = {"DBUS_SESSION_BUS_ADDRESS": address, "GSETTINGS_BACKEND": "memory"}
        launcher = next(p for p in _LAUNCHERS if os.path.exists(p))
        self._procs.append(subprocess.Popen(
            [launcher, "--launch-immediately"], env={**os.environ, **display_env, **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ))

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        """The bus processes (the daemon first), for whoever stops them."""
        return self._procs

    def close(self) -> None:
        """Stop the AT-SPI launcher and the bus (by PID); idempotent."""
        for proc in reversed(self._procs):
            stop_group(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()


def read_tree(env: Mapping[str, str], *, timeout: float = 10.0) -> list[Accessible]:
    """The showing, named widgets of every program on the bus ``env`` names (topmost last is
    not guaranteed: use the window list for stacking). Empty when no program publishes one, or
    the read failed or timed out (the observation then rests on OCR alone)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", _READER], env={**clean, **env},
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return []
    if done.returncode != 0:
        return []
    try:
        rows = json.loads(done.stdout or b"[]")
    except json.JSONDecodeError:
        return []
    return [Accessible(str(app), str(role), " ".join(str(name).split()),
                       (int(box[0]), int(box[1]), int(box[2]), int(box[3])), bool(focused))
            for app, role, name, box, focused in rows]


def stop_group(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """Stop ``proc``'s process group (SIGTERM, then SIGKILL after 3 s); a no-op once it ended."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(3)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
