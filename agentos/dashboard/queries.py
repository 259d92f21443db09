"""What the dashboard shows, read from the run store: runs, agents, resources, syscalls, timeline.

Every function here is a read over a :class:`~agentos.runtime.store.RunStore` that returns
JSON-able dicts; the web app only serialises them. Totals are summed from the ``syscalls`` table
itself (not from a run's stored ``usage``, which is written only when the run ends), so a run that
is still going shows what its completed syscalls used so far. A syscall is recorded when it
completes, so one that is queued or running does not appear yet.

The metrics are the numeric columns of the ``syscalls`` table: tokens, cost and ``energy_j``
always, and any numeric column the store gains later (FLOPs, CO2) is summed and shown without a
change here.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentos.runtime.store import RunStore

__all__ = [
    "change_token",
    "find_run",
    "list_runs",
    "metric_columns",
    "metric_spec",
    "methods",
    "run_detail",
    "timeline",
]

# Numeric syscall columns that are structure, not something a syscall used.
_STRUCTURAL = {"id", "submitted_at", "queue_wait_s", "service_s", "attempts"}
_FIRST = ("prompt_tokens", "completion_tokens", "cost", "energy_j")
_RUN_COLUMNS = "id, name, task, status, pid, started_at, ended_at, result, error, usage"


def metric_columns(store: RunStore) -> list[str]:
    """The ``syscalls`` columns summed per run, agent and resource, in display order.

    Tokens, cost and energy come first; then every other INTEGER or REAL column that is not a
    time, an id or an attempt count, in table order (e.g. FLOPs and CO2 once the store has them).
    """
    numeric = [
        name for _, name, kind, *_ in store.execute("PRAGMA table_info(syscalls)")
        if name not in _STRUCTURAL and kind.upper() in ("INTEGER", "REAL", "NUMERIC", "FLOAT")
    ]
    return [c for c in _FIRST if c in numeric] + [c for c in numeric if c not in _FIRST]


def metric_spec(column: str) -> dict[str, Any]:
    """How the page labels and formats a metric column.

    Returns:
        ``key``, ``label``, and ``format``: ``{"kind": "fixed", "digits": n}`` (grouped
        thousands, ``n`` decimals, like Python's ``f"{x:,.{n}f}"``) or ``{"kind": "exp",
        "digits": n}`` (like ``f"{x:.{n}e}"``).
    """
    lowered = column.lower()
    if lowered.endswith("tokens"):
        label, fmt = column.replace("_", " "), {"kind": "fixed", "digits": 0}
    elif lowered == "cost":
        label, fmt = "cost $", {"kind": "fixed", "digits": 6}
    elif lowered == "energy_j":
        label, fmt = "energy J", {"kind": "fixed", "digits": 2}
    elif "flop" in lowered:
        label, fmt = "FLOPs", {"kind": "exp", "digits": 2}
    elif "co2" in lowered:
        unit = "kg" if lowered.endswith("_kg") else "g"
        label, fmt = f"CO2e {unit}", {"kind": "fixed", "digits": 4}
    else:
        label, fmt = column.replace("_", " "), {"kind": "fixed", "digits": 3}
    return {"key": column, "label": label, "format": fmt}


def change_token(store: RunStore) -> int:
    """A number that changes whenever another connection commits to the run store.

    SQLite's ``PRAGMA data_version`` on the store's own connection: every run started or ended
    and every syscall recorded by any other process or connection changes it.
    """
    return int(store.execute("PRAGMA data_version")[0][0])


def list_runs(store: RunStore, limit: int = 50) -> dict[str, Any]:
    """The ``limit`` newest runs, newest first, each with its totals so far.

    Returns:
        ``metrics`` (:func:`metric_spec` of each metric column), ``runs`` (see
        :func:`run_detail`'s ``run``), ``now`` (the server's ``time.time()``).
    """
    metrics = metric_columns(store)
    rows = store.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
    )
    runs = [_run(row) for row in rows]
    totals = _totals(store, metrics, "run_id", [r["id"] for r in runs])
    for run in runs:
        run["totals"] = totals.get(run["id"], _zero(metrics))
    return {"metrics": [metric_spec(m) for m in metrics], "runs": runs, "now": time.time()}


def find_run(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The run with id ``run_id``, else the newest whose id starts with it; ``None`` if none.

    Returns:
        id, name, task, status (as stored), shown_status (``abandoned`` for a run stored as
        ``running`` whose process no longer exists: killed before it could say how it ended;
        agentos marks it so when it next starts a kernel), pid, started_at, ended_at,
        duration_s (``None`` while it runs), result, error and usage (as stored when it ended;
        ``{}`` before).
    """
    found = store.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=? OR id LIKE ? ESCAPE '\\' "
        "ORDER BY id=? DESC, started_at DESC LIMIT 1",
        (run_id, _like_prefix(run_id), run_id),
    )
    return _run(found[0]) if found else None


def run_detail(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """One run (exact id, or the newest whose id starts with ``run_id``) and all it did.

    Returns:
        ``None`` when no run matches; else ``run`` (:func:`find_run`'s, plus ``totals``: syscalls,
        tokens, queue_wait_s, service_s and each metric column), ``agents`` and ``resources``
        (the same totals per agent and per resource pool, plus ``max_wait_s``), ``syscalls``
        (every column of each, ``detail`` parsed, plus ``tokens``), ``timeline`` (see
        :func:`timeline`), ``methods`` (see :func:`methods`), ``metrics`` and ``now``.
    """
    run = find_run(store, run_id)
    if run is None:
        return None
    metrics = metric_columns(store)
    columns = [name for _, name, *_ in store.execute("PRAGMA table_info(syscalls)")]
    syscalls = []
    for row in store.execute("SELECT * FROM syscalls WHERE run_id=? ORDER BY id", (run["id"],)):
        record = dict(zip(columns, row))
        record["detail"] = json.loads(record["detail"]) if record.get("detail") else {}
        record["tokens"] = (record.get("prompt_tokens") or 0) + (record.get("completion_tokens") or 0)
        syscalls.append(record)
    # Totals from the same rows as the lists below, so one answer never disagrees with itself.
    run["totals"] = _zero(metrics)
    for whole in _grouped(syscalls, "run_id", metrics):
        run["totals"].update({key: whole[key] for key in run["totals"]})
    return {
        "run": run,
        "metrics": [metric_spec(m) for m in metrics],
        "methods": methods(syscalls, [c for c in columns if c.endswith("_method")]),
        "agents": _grouped(syscalls, "agent", metrics),
        "resources": _grouped(syscalls, "resource", metrics),
        "syscalls": syscalls,
        "timeline": timeline(syscalls, run["started_at"]),
        "now": time.time(),
    }


def methods(syscalls: list[dict[str, Any]], columns: list[str]) -> dict[str, list[dict[str, Any]]]:
    """How each measured number was obtained, e.g. ``energy_method``: which counter or model.

    Returns:
        Per ``*_method`` column, ``[{"method", "syscalls"}]``: each distinct text and how many of
        the run's syscalls it covers (``None`` for syscalls that recorded none), most first.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for column in columns:
        counts: dict[str | None, int] = {}
        for s in syscalls:
            counts[s.get(column)] = counts.get(s.get(column), 0) + 1
        out[column] = [{"method": m, "syscalls": n}
                       for m, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return out


def timeline(syscalls: list[dict[str, Any]], t0: float) -> dict[str, Any]:
    """Who waited for what: per agent, each syscall's queue wait then its service, packed in lanes.

    A syscall's wait starts at its ``submitted_at``; its service follows the wait. Two syscalls of
    one agent that overlap in time (concurrent tool calls) go on separate lanes of that agent.

    Args:
        syscalls: records with ``id``, ``agent``, ``kind``, ``name``, ``resource``, ``outcome``,
            ``submitted_at``, ``queue_wait_s``, ``service_s``.
        t0: the time offsets are measured from (the run's start).

    Returns:
        ``agents``: ``[{"agent", "lanes", "bars"}]`` in order of first syscall, each bar
        ``{"id", "lane", "start_s", "wait_s", "service_s", "kind", "name", "resource",
        "outcome"}`` with ``start_s`` relative to ``t0``; ``end_s``: the latest bar's end.
    """
    agents: dict[str, dict[str, Any]] = {}
    lane_ends: dict[str, list[float]] = {}
    end = 0.0
    for s in sorted(syscalls, key=lambda s: (s["submitted_at"], s["id"])):
        start = s["submitted_at"] - t0
        stop = start + s["queue_wait_s"] + s["service_s"]
        end = max(end, stop)
        ends = lane_ends.setdefault(s["agent"], [])
        lane = next((i for i, e in enumerate(ends) if e <= start), len(ends))
        if lane == len(ends):
            ends.append(stop)
        else:
            ends[lane] = stop
        entry = agents.setdefault(s["agent"], {"agent": s["agent"], "lanes": 0, "bars": []})
        entry["lanes"] = len(ends)
        entry["bars"].append({
            "id": s["id"], "lane": lane, "start_s": start, "wait_s": s["queue_wait_s"],
            "service_s": s["service_s"], "kind": s["kind"], "name": s["name"],
            "resource": s["resource"], "outcome": s["outcome"],
        })
    return {"agents": list(agents.values()), "end_s": end}


def _run(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, name, task, status, pid, started, ended, result, error, usage = row
    gone = status == "running" and not _process_alive(pid)
    return {
        "id": run_id, "name": name, "task": task, "status": status,
        "shown_status": "abandoned" if gone else status, "pid": pid, "started_at": started,
        "ended_at": ended, "duration_s": (ended - started) if ended is not None else None,
        "result": result, "error": error, "usage": json.loads(usage) if usage else {},
    }


def _process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists on this machine (the run store's own rule, read-only)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching strings that start with ``text`` (its wildcards escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _zero(metrics: list[str]) -> dict[str, Any]:
    return {"syscalls": 0, "tokens": 0, "queue_wait_s": 0.0, "service_s": 0.0,
            **{m: 0 for m in metrics}}


def _totals(
    store: RunStore, metrics: list[str], key: str, values: list[str]
) -> dict[str, dict[str, Any]]:
    """Per ``key`` value: syscall count, tokens, wait, service and each metric, summed in SQL."""
    if not values:
        return {}
    sums = "".join(f', TOTAL("{m}")' for m in metrics)
    marks = ",".join("?" * len(values))
    rows = store.execute(
        f"SELECT {key}, COUNT(*), TOTAL(queue_wait_s), TOTAL(service_s){sums} FROM syscalls "
        f"WHERE {key} IN ({marks}) GROUP BY {key}",
        values,
    )
    out = {}
    for value, count, wait, service, *totals in rows:
        entry = {"syscalls": count, "queue_wait_s": wait, "service_s": service}
        entry.update({m: _number(t) for m, t in zip(metrics, totals)})
        entry["tokens"] = int(entry.get("prompt_tokens", 0) + entry.get("completion_tokens", 0))
        out[value] = entry
    return out


def _grouped(syscalls: list[dict[str, Any]], key: str, metrics: list[str]) -> list[dict[str, Any]]:
    """Totals per value of ``key`` (agent or resource), in order of first syscall."""
    groups: dict[str, dict[str, Any]] = {}
    for s in syscalls:
        g = groups.setdefault(s[key], {key: s[key], **_zero(metrics), "max_wait_s": 0.0,
                                       "by_kind": {}})
        g["syscalls"] += 1
        g["tokens"] += s["tokens"]
        g["queue_wait_s"] += s["queue_wait_s"]
        g["service_s"] += s["service_s"]
        g["max_wait_s"] = max(g["max_wait_s"], s["queue_wait_s"])
        g["by_kind"][s["kind"]] = g["by_kind"].get(s["kind"], 0) + 1
        for m in metrics:
            g[m] += s.get(m) or 0
    return list(groups.values())


def _number(total: float) -> int | float:
    """SQLite's TOTAL is always a float; integral sums read back as ints (token counts)."""
    return int(total) if float(total).is_integer() else total
