"""Settings: defaults, then an optional TOML file, then ``AGENTOS_*`` environment variables.

The TOML file is ``$AGENTOS_CONFIG`` if set, else ``./agentos.toml`` if present, else
``<data_dir>/config.toml`` if present. Keys are the field names below (``model = "…"``); the env
var for a field is ``AGENTOS_`` + its name in capitals (``AGENTOS_MODEL``). An invalid value fails
at start with :class:`~agentos.errors.ConfigError` naming the setting, where it came from, and
the fix.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentos.errors import ConfigError
from agentos.runtime.permissions import ToolPermissions

__all__ = ["DEFAULT_MODEL", "MCPServerConfig", "Settings", "data_dir", "load_settings"]

DEFAULT_MODEL = "local/qwen2.5-coder-1.5b"


def _default_data_dir() -> Path:
    return Path.home() / ".agentos"


class MCPServerConfig(BaseModel):
    """One ``[[mcp_servers]]`` table: an MCP server whose tools agents can use.

    Give ``command`` (a process spoken to over stdio) or ``url`` (streamable HTTP), not both.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="names the server in errors")
    command: str | None = Field(None, min_length=1, description="executable to start")
    args: list[str] = Field(default_factory=list, description="its arguments")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    cwd: str | None = None
    url: str | None = Field(None, pattern=r"^https?://.+", description="streamable HTTP endpoint")
    prefix: str = Field("", description="prepended to its tool names (avoids name clashes)")
    tools: list[str] | None = Field(None, description="only these of its tools; unset: all")
    startup_timeout_s: float = Field(30.0, gt=0, description="to start and list its tools")
    call_timeout_s: float = Field(120.0, gt=0, description="per tool call")

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {self.name!r} needs exactly one of `command` or `url`")
        return self


class Settings(BaseModel):
    """Every agentos setting, validated when built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=_default_data_dir, description=(
        "where the run store, local models, MoE checkpoints and memory live"))
    model: str = Field(DEFAULT_MODEL, min_length=1, description="default litellm model string")
    policy: Literal["fifo", "round_robin", "priority", "fair_share"] = "fifo"
    max_concurrency: int = Field(4, ge=1, le=1024, description="default slots per resource pool")
    max_steps: int = Field(12, ge=1, le=1000, description="agent loop steps before it stops")
    max_tool_retries: int = Field(3, ge=0, le=20, description="corrections of bad tool calls")
    timeout_s: float = Field(600.0, gt=0, description="per-syscall timeout")
    max_retries: int = Field(3, ge=0, le=20, description="retries of transient provider errors")
    rpm: float | None = Field(None, gt=0, description="requests per minute per model")
    tpm: float | None = Field(None, gt=0, description="tokens per minute per model")
    bus_url: str = Field("memory://", pattern=r"^(memory://|rediss?://.+)$",
                         description="message bus: memory:// (in-process) or redis://host:port/db")
    limits_url: str = Field("memory://", pattern=r"^(memory://|rediss?://.+)$", description=(
        "where pool limits (concurrency, rpm, tpm) and run budgets are kept: memory:// (this "
        "process) or redis://host:port/db (shared by every process using it)"))
    workers_url: str | None = Field(None, pattern=r"^rediss?://.+", description=(
        "redis://host:port/db: LLM, tool and memory syscalls are sent to `agentos worker` "
        "processes there; unset: they run in this process"))
    memory_url: str | None = Field(None, pattern=r"^https?://.+",
                                   description="Chroma server (http://host:port); unset: embedded")
    memory_embedder: str = Field("all-MiniLM-L6-v2", min_length=1, description=(
        "memory embeddings: the packaged all-MiniLM-L6-v2, a sentence-transformers model path, "
        "or openai:MODEL@BASE_URL for an OpenAI-compatible embeddings endpoint"))
    budget_tokens: int | None = Field(None, ge=0)
    budget_cost: float | None = Field(None, ge=0)
    budget_wall_s: float | None = Field(None, gt=0)
    tool_permissions: dict[str, ToolPermissions] = Field(default_factory=dict, description=(
        "per tool name: approval, agents, timeout_s, concurrency, max_output_chars "
        "([tool_permissions.NAME] tables)"))
    mcp_servers: list[MCPServerConfig] = Field(default_factory=list, description=(
        "MCP servers whose tools agents can use ([[mcp_servers]] tables: name, command and "
        "args, or url)"))
    budget_energy_j: float | None = Field(None, ge=0, description=(
        "joules a run may use (metered or modelled for local work, estimated for remote LLMs)"))
    energy_source: Literal["auto", "rapl", "nvml", "model"] = Field("auto", description=(
        "how syscalls' energy is metered: auto (RAPL if readable, else modelled from CPU time; "
        "plus NVML with an NVIDIA GPU), rapl, nvml, or model"))
    carbon_region: str = Field("WORLD", min_length=2, description=(
        "grid whose gCO2e/kWh converts joules to CO2: an ISO country code (US, FR, ...), EU or "
        "WORLD (Ember 2023 figures shipped with agentos)"))
    carbon_intensity: float | None = Field(None, ge=0, description=(
        "your own gCO2e/kWh, which wins over carbon_region"))
    local_speculative: Literal["off", "ngram", "draft"] = Field("ngram", description=(
        "speculative decoding for local models: off, ngram (drafts from n-grams already in the "
        "context) or draft (the packaged qwen2.5-coder-0.5b drafts)"))
    local_n_ctx: int | None = Field(None, ge=256, description=(
        "context tokens per slot for local models; unset: the model's trained context, capped "
        "so the KV cache fits a quarter of available memory"))
    local_kv_cache_type: Literal["f16", "q8_0", "q4_0"] = Field("f16", description=(
        "local models' KV-cache type (q8_0 / q4_0 fit about 2x / 3.5x the context)"))

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("carbon_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        from agentos.kernels.energy.carbon import regions

        code = value.upper()
        if code not in regions():
            raise ValueError(f"no carbon intensity for {value!r}; known: {', '.join(sorted(regions()))}")
        return code

    @property
    def store_path(self) -> Path:
        return self.data_dir / "runs.sqlite"

    @property
    def memory_path(self) -> Path:
        return self.data_dir / "memory"


def _config_file(env: dict[str, str]) -> Path | None:
    if "AGENTOS_CONFIG" in env:
        path = Path(env["AGENTOS_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError("AGENTOS_CONFIG", f"{path} does not exist; fix the path or unset it")
        return path
    local = Path("agentos.toml")
    if local.is_file():
        return local
    folder = Path(env["AGENTOS_DATA_DIR"]) if env.get("AGENTOS_DATA_DIR") else _default_data_dir()
    default = folder.expanduser() / "config.toml"
    return default if default.is_file() else None


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the TOML file, ``AGENTOS_*`` env vars and keyword overrides (last wins).

    Raises:
        ConfigError: a value is invalid or unknown; the message names the setting and its source.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = _config_file(env)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(str(path), f"not valid TOML ({error})") from None
        section = data.get("agentos", data)
        for key, value in section.items():
            values[key] = value
            sources[key] = f"{key} in {path}"
    for name in Settings.model_fields:
        var = f"AGENTOS_{name.upper()}"
        if var in env:
            raw = env[var]
            values[name] = None if raw.lower() in {"", "none"} else raw
            sources[name] = var
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
            sources[key] = key
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        source = sources.get(field, field)
        if first["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            raise ConfigError(source, f"unknown setting; known settings: {known}") from None
        description = Settings.model_fields[field].description if field in Settings.model_fields else ""
        raise ConfigError(
            source,
            f"{first['msg']} (got {first.get('input')!r})"
            + (f"; it sets the {description}" if description else "")
            + ". Fix the value or remove it to use the default.",
        ) from None


def data_dir(env: dict[str, str] | None = None) -> Path:
    """The agentos data directory: the run store, local models, MoE checkpoints and memory.

    ``$AGENTOS_DATA_DIR`` if set, else ``data_dir`` in the TOML file (see
    :func:`load_settings`), else ``~/.agentos``; ``~`` is expanded. Every part of agentos that
    keeps files finds the folder here.

    Args:
        env: the environment to read; defaults to ``os.environ``.

    Raises:
        ConfigError: the settings are invalid (the message names the setting and its source).
    """
    return load_settings(env).data_dir
