"""Sync tools marked ``run_in="process"``: one child process per call, killed when it times out.

A thread cannot be stopped from outside; a process can. The child is started with ``spawn``
(no copy of the parent's threads or locks), imports the tool by reference, runs it once and
sends back its result or its exception; when the awaiting syscall is cancelled (its timeout,
the run's cancellation) the child is killed and reaped before the cancellation goes on.

What crosses the process boundary is pickled: a reference to the tool (a :func:`~agentos.tool`
function defined at module level is imported by name in the child; a :class:`~agentos.Tool`
instance is pickled, its class by name), its arguments and its result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
from typing import TYPE_CHECKING, Any

from agentos.errors import UserError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from agentos.runtime.tool import Tool

__all__ = ["process_target", "run_in_process"]


async def run_in_process(tool: Tool, values: dict[str, Any]) -> Any:
    """Run ``tool.run(**values)`` in a child process; kill the child if this is cancelled.

    Raises:
        UserError: the tool or its arguments cannot be pickled (define the tool at module level).
        RuntimeError: the child died without an answer (its exit code is in the message).
        Exception: whatever the tool raised, re-raised here.
    """
    target = process_target(tool)
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(target, values, send), daemon=True,
                          name=f"agentos-tool-{tool.name}")
    try:
        process.start()
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        receive.close()
        send.close()
        raise UserError(
            f"tool {tool.name} has run_in='process' but cannot be sent to a child process "
            f"({error}); define it at module level, with picklable arguments"
        ) from error
    send.close()
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(receive.fileno(), readable.set)
    try:
        await readable.wait()
        try:
            ok, payload = receive.recv()
        except EOFError:
            process.join()
            raise RuntimeError(
                f"the process running tool {tool.name} exited with code {process.exitcode} "
                "without a result"
            ) from None
    finally:
        loop.remove_reader(receive.fileno())
        receive.close()
        if process.is_alive():
            process.kill()  # cancelled or timed out: the work really stops here
        process.join()
    if ok:
        return payload
    raise payload


def process_target(tool: Tool) -> tuple[str, Any]:
    """What the child needs to find the tool: a function's module and name, or the instance.

    Raises:
        UserError: the tool's function is defined inside another function (not importable).
    """
    from agentos.runtime.tool import FunctionTool

    if not isinstance(tool, FunctionTool):
        return ("instance", tool)
    fn = tool.fn
    if "<locals>" in fn.__qualname__:
        raise UserError(
            f"tool {tool.name} has run_in='process' but {fn.__qualname__} is defined inside a "
            "function; define it at module level so the child process can import it"
        )
    return ("function", (fn.__module__, fn.__qualname__))


def _resolve(target: tuple[str, Any]) -> Any:
    """The callable the child runs: the tool function, or the tool instance's ``run``."""
    import importlib

    from agentos.runtime.tool import FunctionTool

    kind, ref = target
    if kind == "instance":
        return ref.run
    module, qualname = ref
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj.fn if isinstance(obj, FunctionTool) else obj


def _child(target: tuple[str, Any], values: dict[str, Any], send: Connection) -> None:
    name = "?"
    try:
        run = _resolve(target)
        name = getattr(run, "__qualname__", name)
        result = run(**values)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        answer: tuple[bool, Any] = (True, result)
    except BaseException as error:  # sent to the parent, which re-raises it
        answer = (False, error)
    try:
        send.send(answer)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        what = "result" if answer[0] else f"exception {answer[1]!r}"
        send.send((False, RuntimeError(f"{name}'s {what} cannot be pickled: {error}")))
    finally:
        send.close()
