from __future__ import annotations

from pathlib import Path

import pytest

from agentos.config import load_settings
from agentos.errors import ConfigError


def test_defaults_env_and_toml_layering(tmp_path: Path) -> None:
    cfg = tmp_path / "agentos.toml"
    cfg.write_text('model = "openai/gpt-4o-mini"\nmax_steps = 7\n')
    s = load_settings(env={"AGENTOS_CONFIG": str(cfg), "AGENTOS_MAX_STEPS": "9",
                           "AGENTOS_DATA_DIR": str(tmp_path)})
    assert s.model == "openai/gpt-4o-mini"  # from the file
    assert s.max_steps == 9  # env beats file
    assert s.store_path == tmp_path / "runs.sqlite"


def test_invalid_env_value_names_the_variable_and_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"AGENTOS_MAX_CONCURRENCY": "zero"})
    message = str(info.value)
    assert "AGENTOS_MAX_CONCURRENCY" in message and "'zero'" in message and "Fix the value" in message
    assert info.value.setting == "AGENTOS_MAX_CONCURRENCY"


def test_out_of_range_and_bad_policy() -> None:
    with pytest.raises(ConfigError, match="AGENTOS_MAX_STEPS.*greater than or equal to 1"):
        load_settings(env={"AGENTOS_MAX_STEPS": "0"})
    with pytest.raises(ConfigError, match="AGENTOS_POLICY"):
        load_settings(env={"AGENTOS_POLICY": "lottery"})


def test_unknown_key_in_toml_lists_known_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("modle = 'x'\n")
    with pytest.raises(ConfigError, match=r"modle in .*c.toml.*known settings: data_dir, model"):
        load_settings(env={"AGENTOS_CONFIG": str(cfg)})


def test_broken_toml_and_missing_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={"AGENTOS_CONFIG": str(cfg)})
    with pytest.raises(ConfigError, match="AGENTOS_CONFIG.*does not exist"):
        load_settings(env={"AGENTOS_CONFIG": str(tmp_path / "missing.toml")})


# --- the data directory: one function, used by everything that keeps files -------------------


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No agentos variables, a fresh home and working directory (no ./agentos.toml)."""
    import os

    for var in [v for v in os.environ if v.startswith("AGENTOS_")]:
        monkeypatch.delenv(var)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def test_data_dir_defaults_to_agentos_in_home(clean_env: Path) -> None:
    from agentos.config import data_dir

    assert data_dir() == clean_env / ".agentos"


def test_data_dir_from_the_environment_expands_home(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentos.config import data_dir

    monkeypatch.setenv("AGENTOS_DATA_DIR", "~/elsewhere")
    assert data_dir() == clean_env / "elsewhere"


def test_data_dir_from_agentos_toml_is_used_for_models_moe_and_the_store(
    clean_env: Path, tmp_path: Path
) -> None:
    from agentos.config import data_dir
    from agentos.runtime.llm import models
    from agentos.tools.moe.tools import _model_dir

    (tmp_path / "agentos.toml").write_text(f'data_dir = "{tmp_path / "data"}"\n')
    assert data_dir() == tmp_path / "data"
    assert models.models_dir() == tmp_path / "data" / "models"
    assert models.model_path("qwen2.5-coder-0.5b").parent == tmp_path / "data" / "models"
    assert _model_dir("mine") == tmp_path / "data" / "moe" / "mine"
    assert load_settings().store_path == tmp_path / "data" / "runs.sqlite"
    assert load_settings().memory_path == tmp_path / "data" / "memory"


def test_the_environment_beats_agentos_toml_for_the_data_dir(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentos.config import data_dir

    (tmp_path / "agentos.toml").write_text(f'data_dir = "{tmp_path / "data"}"\n')
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
