"""What the desktop agent may do: an allow-list of programs, deny-lists of key combinations and
typed patterns, which actions are risky enough to confirm, and instructions found in screen text.

Pure functions over an action's arguments, testable without a display. The session
(:class:`~agentos.desktop.session.DesktopSession`) asks :meth:`Policy.check` before every action.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_PROGRAMS",
    "DENIED_KEYS",
    "DENIED_TEXT",
    "Policy",
    "Verdict",
    "find_instructions",
    "normalize_keys",
]

DEFAULT_PROGRAMS = ("mousepad", "galculator", "xcalc", "xedit", "xclock")
"""Programs a run may launch unless told otherwise: editors, calculators, a clock; no shells."""

DENIED_KEYS = frozenset({
    "ctrl+alt+delete", "ctrl+alt+backspace", "alt+sysrq", "ctrl+alt+t", "super+l",
    *(f"ctrl+alt+f{n}" for n in range(1, 13)),
})
"""Key combinations never sent: session kill, virtual-terminal switch, terminal, lock screen."""

DENIED_TEXT: tuple[tuple[str, str], ...] = (
    (r"\brm\s+-[a-z]*[rf][a-z]*\b", "recursive or forced delete (rm -rf)"),
    (r"\b(shutdown|reboot|poweroff|halt|init\s+[06])\b", "shutdown or reboot"),
    (r"\bmkfs(\.\w+)?\b|\bdd\s+if=|>\s*/dev/sd", "disk overwrite"),
    (r":\(\)\s*\{", "fork bomb"),
    (r"\bsudo\b|\bsu\s+-", "privilege escalation"),
    (r"\b(curl|wget)\b[^|\n]*\|\s*(ba|z)?sh\b", "piping a download into a shell"),
    (r"\bchmod\s+-R\b", "recursive permission change"),
    (r"(?i)\b(password|passwd|api[_ -]?key|secret|token|private key)\b\s*[:=]",
     "a credential"),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bssh-(rsa|ed25519) AAAA", "a private or SSH key"),
    (r"\bAKIA[0-9A-Z]{16}\b|\bsk-[A-Za-z0-9_-]{20,}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b",
     "an access key"),
)
"""Typed-text patterns refused, with the reason given: regex, what it is."""

_CLOSE_KEYS = frozenset({"alt+f4", "ctrl+q", "ctrl+w", "ctrl+shift+w"})

_INSTRUCTION = re.compile(
    r"(?i)\b(ignore|disregard|forget)\b.{0,40}\b(task|instructions?|previous|above|rules)\b"
    r"|\b(you must|you should|assistant|ai agent|agent)\b.{0,40}\b(type|run|open|click|press|"
    r"delete|launch|execute)\b"
    r"|\b(type|run|execute|enter|paste)\b.{0,60}(rm\s+-|sudo|curl|wget|shutdown|terminal|password)"
)

_ALIASES = {
    "control": "ctrl", "ctl": "ctrl", "return": "enter", "esc": "escape", "del": "delete",
    "win": "super", "cmd": "super", "meta": "super", "option": "alt", "altgr": "alt",
}


def normalize_keys(keys: Sequence[str] | str) -> str:
    """A key combination in canonical form: lower case, aliases resolved, ``+``-joined,
    modifiers first (``["Control", "S"]`` → ``"ctrl+s"``)."""
    parts = keys.replace(" ", "").split("+") if isinstance(keys, str) else list(keys)
    names = [_ALIASES.get(k.strip().lower(), k.strip().lower()) for k in parts if k.strip()]
    modifiers = [m for m in ("ctrl", "alt", "shift", "super") if m in names]
    rest = [k for k in names if k not in modifiers]
    return "+".join(modifiers + rest)


def find_instructions(texts: Iterable[tuple[int, str]], task: str) -> frozenset[int]:
    """Ids of screen texts that read as instructions to the agent and are not part of the task.

    Screen text is data: these are marked in the prompt, and typing or launching what they say
    (when the task does not) is refused by :meth:`Policy.check`.
    """
    task_text = task.lower()
    flagged = set()
    for element_id, text in texts:
        if text.lower() in task_text:
            continue
        if _INSTRUCTION.search(text) or any(re.search(p, text) for p, _ in DENIED_TEXT):
            flagged.add(element_id)
    return frozenset(flagged)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the policy says about one action: ``allow``, ``confirm`` (ask first) or ``deny``."""

    decision: str
    reason: str = ""


@dataclass(frozen=True)
class Policy:
    """The safety rules of one desktop run.

    Args:
        programs: programs that may be launched (names on PATH).
        denied_keys: key combinations never sent (canonical form, see :func:`normalize_keys`).
        denied_text: ``(regex, reason)`` pairs: typed text matching any is refused.
        confirm_launch: launching a program asks the confirmation hook first.
        confirm_close: keys that close windows or quit programs ask first.
        confirm_enter: typed text containing a newline (it submits or runs things) asks first.
    """

    programs: tuple[str, ...] = DEFAULT_PROGRAMS
    denied_keys: frozenset[str] = DENIED_KEYS
    denied_text: tuple[tuple[str, str], ...] = DENIED_TEXT
    confirm_launch: bool = True
    confirm_close: bool = True
    confirm_enter: bool = True
    _compiled: tuple[tuple[re.Pattern[str], str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled",
                           tuple((re.compile(p), reason) for p, reason in self.denied_text))

    def allowing(self, *programs: str) -> Policy:
        """This policy with ``programs`` added to the allow-list."""
        extra = tuple(p for p in programs if p not in self.programs)
        return Policy(self.programs + extra, self.denied_keys, self.denied_text,
                      self.confirm_launch, self.confirm_close, self.confirm_enter)

    def check_text(self, text: str) -> Verdict:
        for pattern, reason in self._compiled:
            if pattern.search(text):
                return Verdict("deny", f"typed text matches the deny-list ({reason})")
        if self.confirm_enter and "\n" in text:
            return Verdict("confirm", "the text contains Enter, which submits or runs things")
        return Verdict("allow")

    def check_keys(self, keys: str) -> Verdict:
        combo = normalize_keys(keys)
        if combo in self.denied_keys:
            return Verdict("deny", f"key combination {combo} is on the deny-list")
        if self.confirm_close and combo in _CLOSE_KEYS:
            return Verdict("confirm", f"{combo} closes a window or quits a program")
        return Verdict("allow")

    def check_program(self, program: str) -> Verdict:
        name = program.strip().split()[0] if program.strip() else ""
        if name != program.strip() or "/" in name:
            return Verdict("deny", f"launch takes a bare program name without arguments or paths "
                                   f"(got {program!r})")
        if name not in self.programs:
            return Verdict("deny", f"{name!r} is not on the allow-list of programs "
                                   f"({', '.join(self.programs)}); the user can add it with "
                                   f"--allow {name}")
        if self.confirm_launch:
            return Verdict("confirm", f"launch {name}")
        return Verdict("allow")
