"""Calling the kernel from another framework's model interface, sync or async.

A :class:`KernelBinding` holds the kernel, the model, the agent name the calls are recorded
under and the run they belong to (opened on the first call unless one is given).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.llm.types import LLM, Completion, Message

__all__ = ["KernelBinding", "run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code: on a new event loop, or, when this thread
    already runs one (a sync call made from async code), on a new loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as error:  # handed to the caller below
            box["error"] = error

    thread = threading.Thread(target=target, name="agentos-interop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class KernelBinding:
    """Where a foreign framework's model calls go.

    Args:
        kernel: the kernel; default: a new one from the settings.
        model: a model string or LLM object; default: the configured model.
        agent: the agent name the calls are recorded (and budgeted, fair-shared) under.
        run: the run they belong to; default: a run named ``agent`` opened on the first call.
    """

    def __init__(self, kernel: Kernel | None = None, model: str | LLM | None = None,
                 agent: str = "interop", run: Run | None = None) -> None:
        self._kernel = kernel
        self.model = model
        self.agent = agent
        self._run = run

    @property
    def kernel(self) -> Kernel:
        if self._kernel is None:
            from agentos.runtime.kernel import Kernel

            self._kernel = Kernel()
        return self._kernel

    @property
    def run(self) -> Run:
        """The run the calls are recorded in (opened now if none yet)."""
        if self._run is None:
            self._run = self.kernel.start_run(self.agent, f"{self.agent} model calls")
        return self._run

    async def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None,
                        **params: Any) -> Completion:
        """One completion as a kernel ``llm`` syscall.

        Raises:
            BudgetExceeded, ProviderError, SyscallTimeout: as :meth:`Kernel.llm` raises them.
        """
        model = self.model if self.model is not None else self.kernel.settings.model
        return await self.kernel.llm(self.run, self.agent, model, messages, tools, **params)

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None,
                 **params: Any) -> Completion:
        """Sync :meth:`acomplete`."""
        return run_sync(self.acomplete(messages, tools, **params))

    def end(self, status: str = "succeeded", result: str | None = None) -> None:
        """Close the run the calls went to (if one was opened)."""
        if self._run is not None:
            self.kernel.end_run(self._run, status, result)
            self._run = None
