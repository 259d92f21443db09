"""The X display a desktop run acts on: its own Xvfb server (the default) or the user's screen.

:class:`VirtualDisplay` starts ``Xvfb`` on a free display number with its own ``XAUTHORITY``
cookie file (connections without the cookie are refused; TCP is off), starts a small window
manager when one is installed and a private accessibility bus when AT-SPI is installed (see
:mod:`agentos.desktop.atspi`), and stops them by PID when closed, at interpreter exit at the
latest. :class:`RealDisplay` is the screen ``$DISPLAY`` names, used only when asked for.

While a display is *active* (:meth:`Display.activate`), ``DISPLAY`` and ``XAUTHORITY`` in this
process's environment name it, so Pillow, python-xlib and pyautogui connect to it; closing it
restores the previous values. One display is active per process at a time.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.errors import DesktopUnavailable

if TYPE_CHECKING:
    from agentos.desktop.atspi import AccessibilityBus

__all__ = ["WINDOW_MANAGERS", "Display", "RealDisplay", "VirtualDisplay", "xvfb_path"]

WINDOW_MANAGERS = ("openbox", "matchbox-window-manager", "twm", "fluxbox", "icewm")
"""Window managers started on a virtual display when installed, first found wins."""

_INSTALL_XVFB = "apt-get install -y xvfb (or run ./system-packages.sh as root)"
_FAMILY_LOCAL = 256  # Xauthority entry families: this host by name
_FAMILY_WILD = 65535  # any host address


def xvfb_path() -> str:
    """The ``Xvfb`` binary.

    Raises:
        DesktopUnavailable: none on PATH; the message gives the install command.
    """
    found = shutil.which("Xvfb")
    if found is None:
        raise DesktopUnavailable(
            f"no Xvfb on PATH: the desktop agent runs on its own virtual X display. Install it: "
            f"{_INSTALL_XVFB}; or use --real-display to act on your own screen"
        )
    return found


class Display:
    """An X display: its name (``:57``) and the environment that reaches it."""

    name: str
    xauthority: str | None
    virtual: bool
    _saved: dict[str, str | None] | None = None

    @property
    def env(self) -> dict[str, str]:
        """``DISPLAY`` (and ``XAUTHORITY`` when there is one) for child processes."""
        env = {"DISPLAY": self.name}
        if self.xauthority:
            env["XAUTHORITY"] = self.xauthority
        return env

    def activate(self) -> None:
        """Point this process's ``DISPLAY``/``XAUTHORITY`` (and, with an accessibility bus,
        its address) at this display (undone by close)."""
        if self._saved is None:
            self._saved = {key: os.environ.get(key) for key in ("DISPLAY", "XAUTHORITY", *self.env)}
        os.environ.update(self.env)

    def _restore(self) -> None:
        if self._saved is None:
            return
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = None

    def close(self) -> None:
        self._restore()

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RealDisplay(Display):
    """The user's own screen, ``$DISPLAY``.

    Raises:
        DesktopUnavailable: ``DISPLAY`` is unset or no X server answers there.
    """

    def __init__(self, name: str | None = None) -> None:
        name = name or os.environ.get("DISPLAY")
        if not name:
            raise DesktopUnavailable(
                "--real-display needs an X server: DISPLAY is not set. Run from a desktop "
                "session, or drop --real-display to use a virtual display"
            )
        self.name = name
        self.xauthority = os.environ.get("XAUTHORITY")
        self.virtual = False
        _check_reachable(self.name, self.xauthority)


class VirtualDisplay(Display):
    """A private Xvfb server, started on construction and stopped by :meth:`close`.

    Args:
        width, height: screen size in pixels.
        window_manager: start the first of :data:`WINDOW_MANAGERS` found on PATH.
        accessibility: start a private AT-SPI bus when AT-SPI is installed, so programs
            launched here publish their accessibility tree.
        first: the lowest display number to try.
        timeout: seconds to wait for the server to accept connections.

    Attributes:
        pid: the Xvfb process id.
        window_manager: the window manager binary started, or None (none installed).
        accessibility: the AT-SPI bus, or None (not asked for, or not installed).
        accessibility_note: why there is none ("" when there is one).

    Raises:
        DesktopUnavailable: no Xvfb binary, or it did not start on any of 200 display numbers.
    """

    def __init__(
        self, width: int = 1280, height: int = 800, *, window_manager: bool = True,
        accessibility: bool = True, first: int = 90, timeout: float = 10.0,
    ) -> None:
        binary = xvfb_path()
        self.virtual = True
        self.width, self.height = width, height
        self._dir = tempfile.mkdtemp(prefix="agentos-xvfb-")
        self.xauthority = os.path.join(self._dir, "Xauthority")
        self._cookie = secrets.token_bytes(16)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _stop_all, self._procs, self._dir)
        self._log = open(os.path.join(self._dir, "xvfb.log"), "wb")  # noqa: SIM115 (closed by close)
        last_error = ""
        for number in range(first, first + 200):
            if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
                continue
            _write_xauthority(self.xauthority, number, self._cookie)
            proc = subprocess.Popen(
                [binary, f":{number}", "-screen", "0", f"{width}x{height}x24", "-auth",
                 self.xauthority, "-nolisten", "tcp", "-noreset"],
                stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            if _wait_for_socket(number, proc, timeout):
                self._procs.append(proc)
                self.name, self.pid = f":{number}", proc.pid
                break
            _stop(proc)
            last_error = Path(self._dir, "xvfb.log").read_text(errors="replace")[-500:]
        else:
            self.close()
            raise DesktopUnavailable(f"Xvfb did not start on displays :{first}-:{first + 199}: "
                                     f"{last_error.strip() or 'no output'}")
        self.window_manager = self._start_window_manager() if window_manager else None
        self.accessibility: AccessibilityBus | None = None
        self.accessibility_note = "not asked for"
        if accessibility:
            self._start_accessibility()

    def _start_accessibility(self) -> None:
        from agentos.desktop.atspi import AccessibilityBus, atspi_unavailable

        missing = atspi_unavailable()
        if missing is not None:
            self.accessibility_note = missing
            return
        try:
            bus = AccessibilityBus(self.env)
        except DesktopUnavailable as error:
            self.accessibility_note = str(error)
            return
        self._procs.extend(bus.procs)  # stopped before the server, by the finalizer
        self.accessibility, self.accessibility_note = bus, ""

    @property
    def env(self) -> dict[str, str]:
        """``DISPLAY``, ``XAUTHORITY`` and the accessibility bus's variables for programs."""
        env = super().env
        if getattr(self, "accessibility", None) is not None:
            env.update(self.accessibility.env)  # type: ignore[union-attr]
        return env

    def _start_window_manager(self) -> str | None:
        for candidate in WINDOW_MANAGERS:
            path = shutil.which(candidate)
            if path is not None:
                self._procs.append(subprocess.Popen(
                    [path], env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True,
                ))
                return candidate
        return None

    @property
    def running(self) -> bool:
        return bool(self._procs) and self._procs[0].poll() is None

    def close(self) -> None:
        """Stop the window manager and Xvfb (by PID) and delete the cookie file; idempotent."""
        self._restore()
        self._finalizer()
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> VirtualDisplay:
        return self


def _write_xauthority(path: str, number: int, cookie: bytes) -> None:
    """An Xauthority file with the MIT-MAGIC-COOKIE-1 ``cookie`` for display ``number``."""

    def field(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    def entry(family: int, address: bytes) -> bytes:
        return (family.to_bytes(2, "big") + field(address) + field(str(number).encode())
                + field(b"MIT-MAGIC-COOKIE-1") + field(cookie))

    # python-xlib looks only for a FamilyLocal entry named by this host; libxcb (Pillow) also
    # takes the wildcard one.
    data = entry(_FAMILY_LOCAL, socket.gethostname().encode()) + entry(_FAMILY_WILD, b"")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _wait_for_socket(number: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    socket_path = Path(f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if socket_path.exists():
            return True
        time.sleep(0.05)
    return False


def _check_reachable(name: str, xauthority: str | None) -> None:
    from Xlib import display as xdisplay
    from Xlib.error import DisplayError

    saved = os.environ.get("XAUTHORITY")
    try:
        if xauthority:
            os.environ["XAUTHORITY"] = xauthority
        xdisplay.Display(name).close()
    except (DisplayError, OSError) as error:
        raise DesktopUnavailable(
            f"no X server answers at DISPLAY={name} ({error}). Start one, fix DISPLAY/XAUTHORITY, "
            "or drop --real-display to use a virtual display"
        ) from None
    finally:
        if saved is None:
            os.environ.pop("XAUTHORITY", None)
        else:
            os.environ["XAUTHORITY"] = saved


def _stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _stop_all(procs: list[subprocess.Popen[bytes]], folder: str) -> None:
    for proc in reversed(procs):  # the window manager first, the server last
        _stop(proc)
    procs.clear()
    shutil.rmtree(folder, ignore_errors=True)
