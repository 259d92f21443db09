from __future__ import annotations

import threading
from collections.abc import Iterator
import pytest

from agentos import Kernel, load_settings
from tests.services import DashboardServer, running_dashboard


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    """`agentos dashboard` in its own process over a fresh data directory, for this module."""
    with running_dashboard(tmp_path_factory.mktemp("dashboard")) as server:
        yield server


@pytest.fixture
def kernel(dashboard: DashboardServer) -> Iterator[Kernel]:
    """A kernel writing to the run store the dashboard reads (another process, as in real use)."""
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(dashboard.data_dir)}))
    yield k
    closer = threading.Thread(target=k.close)  # Playwright's sync API holds this thread's loop
    closer.start()
    closer.join()
