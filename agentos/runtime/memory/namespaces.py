"""Memory namespaces and the grants that say which agent may read or write which of them.

Three kinds of namespace:

- ``agent:<name>``: private to one agent. Its owner always reads and writes it; no one else
  does unless granted.
- ``crew:<id>``: shared by a crew. Members get access by grant (a crew grants its members).
- ``global``: shared by everyone. Every agent reads it; writing needs a grant.

Chroma's tenants and databases do not isolate (anyone who knows a collection id can read it), so
the kernel checks these grants itself before every memory syscall.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from agentos.errors import MemoryAccessDenied, UserError

__all__ = ["GLOBAL", "Grants", "agent_namespace", "crew_namespace", "validate_namespace"]

GLOBAL = "global"
_NAME = re.compile(r"^(agent|crew):[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if well-formed.

    Raises:
        UserError: not ``global``, ``agent:<name>`` or ``crew:<id>`` (names: letters, digits,
            ``.``, ``_``, ``-``; at most 128 characters).
    """
    if namespace == GLOBAL or (isinstance(namespace, str) and _NAME.match(namespace)):
        return namespace
    raise UserError(
        f"bad memory namespace {namespace!r}: use 'global', 'agent:<name>' or 'crew:<id>' "
        "(names of letters, digits, '.', '_' and '-')"
    )


def agent_namespace(agent: str) -> str:
    """The private namespace of ``agent``."""
    return validate_namespace(f"agent:{agent}")


def crew_namespace(crew: str) -> str:
    """The shared namespace of crew ``crew``."""
    return validate_namespace(f"crew:{crew}")


@dataclass
class Grants:
    """Who may read and write which namespace, beyond the defaults.

    Defaults: an agent reads and writes its own ``agent:<name>``; everyone reads ``global``.
    Everything else needs :meth:`allow`. Grants are held by the kernel (trusted code sets them;
    an agent's LLM cannot).
    """

    _read: dict[str, set[str]] = field(default_factory=dict)
    _write: dict[str, set[str]] = field(default_factory=dict)

    def allow(self, agent: str, namespace: str, *, write: bool = False) -> None:
        """Let ``agent`` read ``namespace`` (and write it when ``write``)."""
        validate_namespace(namespace)
        self._read.setdefault(agent, set()).add(namespace)
        if write:
            self._write.setdefault(agent, set()).add(namespace)

    def allow_crew(self, crew: str, members: Iterable[str]) -> str:
        """Give every member read and write access to ``crew:<crew>``; returns that namespace."""
        namespace = crew_namespace(crew)
        for member in members:
            self.allow(member, namespace, write=True)
        return namespace

    def revoke(self, agent: str, namespace: str) -> None:
        """Take back what :meth:`allow` gave (the defaults stay)."""
        self._read.get(agent, set()).discard(namespace)
        self._write.get(agent, set()).discard(namespace)

    def can_read(self, agent: str, namespace: str) -> bool:
        return (
            namespace == GLOBAL
            or namespace == f"agent:{agent}"
            or namespace in self._read.get(agent, ())
        )

    def can_write(self, agent: str, namespace: str) -> bool:
        return namespace == f"agent:{agent}" or namespace in self._write.get(agent, ())

    def check(self, agent: str, namespaces: Iterable[str], access: str) -> None:
        """Raise unless ``agent`` has ``access`` (``"read"`` or ``"write"``) to every namespace.

        Raises:
            UserError: a namespace is malformed.
            MemoryAccessDenied: the first namespace it may not use.
        """
        allowed = self.can_write if access == "write" else self.can_read
        for namespace in namespaces:
            validate_namespace(namespace)
            if not allowed(agent, namespace):
                raise MemoryAccessDenied(agent, namespace, access)
