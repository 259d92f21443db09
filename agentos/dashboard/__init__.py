"""``agentos dashboard``: a local web page of runs, agents, syscalls, queue waits, tokens, cost,
energy and CO2, updated live while a crew runs.

Needs Starlette and uvicorn (the ``dashboard`` extra: ``pip install "agentos-kit[dashboard]"``);
importing this package imports Starlette, so ``agentos`` itself never imports it.
"""

from __future__ import annotations

from agentos.dashboard.app import create_app
from agentos.dashboard.server import DEFAULT_PORT, bind, serve

__all__ = ["DEFAULT_PORT", "bind", "create_app", "serve"]
