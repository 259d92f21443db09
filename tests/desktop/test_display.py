"""Private Xvfb displays: free numbers, their own cookie, stopped by PID; clear errors without X."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agentos.desktop.display import RealDisplay, VirtualDisplay
from agentos.errors import DesktopUnavailable
from tests.services import xvfb_or_fail

pytestmark = pytest.mark.desktop


def _connect(name: str, xauthority: str | None) -> None:
    from Xlib import display

    saved = os.environ.get("XAUTHORITY")
    os.environ["XAUTHORITY"] = xauthority or "/nonexistent"
    try:
        display.Display(name).close()
    finally:
        if saved is None:
            os.environ.pop("XAUTHORITY", None)
        else:
            os.environ["XAUTHORITY"] = saved


def test_two_displays_get_free_numbers_and_close_stops_each_by_pid() -> None:
    xvfb_or_fail()
    first, second = VirtualDisplay(640, 480), VirtualDisplay(640, 480)
    try:
        assert first.name != second.name
        assert first.running and second.running
        pid, auth = first.pid, Path(first.xauthority or "")
        assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    finally:
        first.close()
    assert not first.running
    assert not Path(f"/proc/{pid}").exists()
    assert not auth.exists() and not Path(f"/tmp/.X11-unix/X{first.name[1:]}").exists()
    assert second.running
    second.close()
    first.close()  # idempotent


def test_the_display_refuses_clients_without_its_cookie() -> None:
    from Xlib.error import DisplayConnectionError

    xvfb_or_fail()
    with VirtualDisplay(640, 480) as screen:
        _connect(screen.name, screen.xauthority)  # control: with the cookie it answers
        with pytest.raises(DisplayConnectionError, match="uthoriz"):
            _connect(screen.name, None)


def test_activate_points_the_environment_at_the_display_and_close_restores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xvfb_or_fail()
    monkeypatch.setenv("DISPLAY", ":4242")
    monkeypatch.delenv("XAUTHORITY", raising=False)
    screen = VirtualDisplay(640, 480)
    screen.activate()
    assert os.environ["DISPLAY"] == screen.name and os.environ["XAUTHORITY"] == screen.xauthority
    screen.close()
    assert os.environ["DISPLAY"] == ":4242" and "XAUTHORITY" not in os.environ


def test_no_xvfb_on_path_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DesktopUnavailable, match="apt-get install -y xvfb"):
        VirtualDisplay()


def test_real_display_without_an_x_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(DesktopUnavailable, match="DISPLAY is not set"):
        RealDisplay()
    monkeypatch.setenv("DISPLAY", ":987")
    with pytest.raises(DesktopUnavailable, match="no X server answers at DISPLAY=:987"):
        RealDisplay()
