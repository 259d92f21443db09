from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos import Kernel, load_settings
from agentos.runtime.registry import ToolRegistry


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}), registry=ToolRegistry())
    yield k
    k.close()
