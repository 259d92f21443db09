"""Compute kernels for agentos' local ML tools.

Imports only torch (and optional triton/deepspeed). Submodules are imported by name, e.g.
``from agentos.kernels import attention`` — this package's ``__init__`` stays empty so that
``import agentos.kernels`` is cheap.
"""

from __future__ import annotations

__all__: list[str] = []
