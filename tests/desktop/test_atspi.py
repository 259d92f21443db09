"""The accessibility tree on a private display: real Xvfb, a real AT-SPI bus, real galculator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentos.agents.desktop import Desktop
from agentos.desktop.atspi import atspi_unavailable, read_tree
from agentos.desktop.display import VirtualDisplay
from agentos.runtime.kernel import Kernel
from agentos.testing import ScriptedLLM, call
from tests.desktop.conftest import start_on
from tests.services import xvfb_or_fail

pytestmark = pytest.mark.desktop


def _atspi_or_fail() -> None:
    xvfb_or_fail()
    missing = atspi_unavailable()
    if missing is not None:
        pytest.fail(missing, pytrace=False)


def _yes(*_: Any) -> bool:
    return True


def test_a_private_display_has_its_own_accessibility_bus_that_galculator_publishes_on() -> None:
    _atspi_or_fail()
    screen = VirtualDisplay(800, 600)
    screen.activate()
    try:
        assert screen.accessibility is not None and screen.accessibility_note == ""
        env = screen.env
        assert env["GSETTINGS_BACKEND"] == "memory"  # no state carried into the next run
        assert env["DBUS_SESSION_BUS_ADDRESS"].startswith("unix:")
        bus_pids = [p.pid for p in screen.accessibility.procs]
        calc = start_on(screen, "galculator", title="galculator")
        try:
            tree = read_tree(env)
        finally:
            calc.kill()
            calc.wait()
        buttons = {a.name for a in tree if a.role in ("push button", "toggle button")}
        assert {"7", "8", "9", "=", "+"} <= buttons
        assert any(a.role == "text" and a.name == "0" for a in tree)  # the display's value
        seven = next(a for a in tree if a.name == "7")
        assert seven.box[2] > 10 and seven.box[3] > 10
    finally:
        screen.close()
    for pid in bus_pids:  # the bus is stopped with the display
        assert not Path(f"/proc/{pid}").exists()


def test_without_a_bus_the_same_program_publishes_nothing_we_can_read() -> None:
    _atspi_or_fail()
    screen = VirtualDisplay(800, 600, accessibility=False)
    screen.activate()
    try:
        assert screen.accessibility is None and "DBUS_SESSION_BUS_ADDRESS" not in screen.env
        calc = start_on(screen, "galculator", title="galculator")
        try:
            # control: a bus of another display does not see this display's program
            other = VirtualDisplay(640, 480)
            try:
                assert other.accessibility is not None
                assert read_tree(other.env) == []
            finally:
                other.close()
                screen.activate()
        finally:
            calc.kill()
            calc.wait()
    finally:
        screen.close()


def test_the_agent_sees_calculator_buttons_by_role_and_the_display_value_from_the_tree(
    kernel: Kernel,
) -> None:
    _atspi_or_fail()
    llm = ScriptedLLM([call("launch", program="galculator"), call("type_text", text="12*34="),
                       "408"])
    agent = Desktop(llm=llm, confirm=_yes, kernel=kernel, screen=(800, 600))
    result = agent.run("compute 12*34 in galculator")
    assert result.ok, result.error
    assert agent.session is not None and agent.session.grounding == "atspi+ocr+windows"
    screen = llm.calls[2][-1]["content"]
    assert 'text field "408"' in screen  # galculator's display, read from the tree
    assert 'toggle button "7"' in screen
    assert 'new text: "408"' in screen

    llm = ScriptedLLM([call("launch", program="galculator"), "done"])
    ocr_only = Desktop(llm=llm, confirm=_yes, kernel=kernel, screen=(800, 600),
                       accessibility=False)
    assert ocr_only.run("open galculator").ok
    assert ocr_only.session is not None and ocr_only.session.grounding == "ocr+windows"
    assert "toggle button" not in llm.calls[1][-1]["content"]
