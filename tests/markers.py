"""Hardware and service gating for the test suite, in one place.

A missing *optional* service skips with a reason; required ones (see README) are installed by
``.ci/run`` and a test that needs them fails loudly when they are absent.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

__all__ = ["requires_cuda", "requires_display", "requires_redis", "requires_module"]


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
requires_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="needs redis-server on PATH (apt-get install redis-server; .ci/run installs it)",
)
requires_display = pytest.mark.skipif(
    shutil.which("Xvfb") is None,
    reason="needs Xvfb on PATH (apt-get install xvfb; .ci/run installs it)",
)


def requires_module(name: str) -> pytest.MarkDecorator:
    """Skip when an optional dependency (an extra) is not installed."""
    return pytest.mark.skipif(
        importlib.util.find_spec(name) is None,
        reason=f"needs the optional module {name!r} (pip install 'agentos-kit[all]')",
    )
