"""The dashboard's web app (Starlette): a page, its static files, JSON endpoints and live events.

Routes:

- ``GET /``: the page; it follows the newest run until one is picked.
- ``GET /runs/{run_id}``: the page pinned to one run (404 page when no run matches).
- ``GET /api/runs?limit=N``: the newest runs with their totals (:func:`queries.list_runs`).
- ``GET /api/runs/{run_id}``: one run, its agents, resources, syscalls and timeline
  (:func:`queries.run_detail`); 404 with a JSON ``error`` when no run matches.
- ``GET /api/events``: server-sent events: ``hello`` on connecting, then ``change`` each time
  the run store changes (a run or syscall committed by any other connection or process), and a
  comment line every 15 s otherwise.
- ``GET /static/...``: the page's script and style sheet, served from this package.

Every asset is served from the package; the page loads nothing from another host.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentos.dashboard import queries

if TYPE_CHECKING:
    from agentos.runtime.store import RunStore

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).parent / "static"
"""The folder of the page's files (``index.html``, ``dashboard.js``, ``dashboard.css``)."""

_MAX_LIMIT = 1000
_HEARTBEAT_S = 15.0


def create_app(
    store: RunStore, *, poll_s: float = 0.25, stopping: Callable[[], bool] = lambda: False
) -> Starlette:
    """The dashboard over ``store``.

    Args:
        store: the run store to read (the dashboard never writes to it).
        poll_s: how often the events stream checks the store for changes, in seconds.
        stopping: returns True once the server shuts down; open event streams then end (within
            ``poll_s``), so shutting down does not wait for the browsers to disconnect.

    Returns:
        An ASGI app; serve it with uvicorn (:func:`agentos.dashboard.serve` does).
    """
    where = str(store.path) if store.path is not None else ":memory:"

    def page(request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if queries.find_run(store, run_id) is None:
            return HTMLResponse(
                f"<!doctype html><meta charset=utf-8><title>no such run</title>"
                f"<p>{html.escape(_missing(run_id, where))}</p><p><a href='/'>all runs</a></p>",
                status_code=404,
            )
        return page(request)

    def api_runs(request: Request) -> Response:
        raw = request.query_params.get("limit", "50")
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= _MAX_LIMIT:
            return JSONResponse(
                {"error": f"limit must be a whole number from 1 to {_MAX_LIMIT}, got {raw!r}"},
                status_code=400,
            )
        return JSONResponse({"store": where, **queries.list_runs(store, limit)})

    def api_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        detail = queries.run_detail(store, run_id)
        if detail is None:
            return JSONResponse({"error": _missing(run_id, where)}, status_code=404)
        return JSONResponse(detail)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            last = await asyncio.to_thread(queries.change_token, store)
            yield _event("hello", {"token": last})
            idle = 0.0
            while not stopping() and not await request.is_disconnected():
                await asyncio.sleep(poll_s)
                token = await asyncio.to_thread(queries.change_token, store)
                if token != last:
                    last, idle = token, 0.0
                    yield _event("change", {"token": token})
                else:
                    idle += poll_s
                    if idle >= _HEARTBEAT_S:
                        idle = 0.0
                        yield ": still here\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return Starlette(routes=[
        Route("/", page),
        Route("/runs/{run_id}", run_page),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])


def _missing(run_id: str, where: str) -> str:
    return (f"no run {run_id!r} in the run store {where}; the runs list at / (or GET /api/runs, "
            "or `agentos runs list`) shows the recent ones")


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
