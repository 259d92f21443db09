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
