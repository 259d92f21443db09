"""What ``agentos energy report`` shows: a run's joules, CO2 and FLOPs by agent, model and tool.

:func:`summarise` is pure arithmetic over the run store's records; :func:`render_html` draws the
plots with matplotlib (the ``ml`` extra) into one self-contained HTML file (PNGs as base64).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentos.runtime.store import RunRecord, SyscallRecord

__all__ = ["Group", "Summary", "render_html", "summarise"]


@dataclass(slots=True)
class Group:
    """The syscalls of one agent, model or tool, added up."""

    by: str  # "agent" | "model" | "tool" | "other"
    name: str
    syscalls: int = 0
    energy_j: float = 0.0
    gco2: float = 0.0
    flops: float = 0.0
    energy_methods: set[str] = field(default_factory=set)
    flops_methods: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Summary:
    """A run's energy: totals, and groups by agent, model (LLM syscalls) and tool."""

    run: RunRecord
    records: list[SyscallRecord]
    groups: list[Group]
    energy_j: float
    gco2: float
    flops: float

    def rows(self, by: str) -> list[Group]:
        return [g for g in self.groups if g.by == by]

    def methods(self) -> list[str]:
        """Every method behind the figures, numbered by position (1-based) in the tables."""
        seen: dict[str, None] = {}
        for g in self.groups:
            for m in sorted(g.energy_methods) + sorted(g.flops_methods):
                seen.setdefault(m, None)
        return list(seen)

    def method_refs(self, group: Group) -> str:
        """``"energy [1]; FLOPs [2]"``: which of :meth:`methods` a group's figures come from."""
        number = {m: i for i, m in enumerate(self.methods(), 1)}
        energy = ",".join(str(number[m]) for m in sorted(group.energy_methods))
        flops = ",".join(str(number[m]) for m in sorted(group.flops_methods))
        return f"energy [{energy}]; FLOPs [{flops}]"


_UNRECORDED = "not recorded (run store written before energy metering)"


def summarise(run: RunRecord, records: Sequence[SyscallRecord]) -> Summary:
    """Group ``records`` (one run's syscalls) by agent, by model and by tool.

    Only completed syscalls (outcome ``ok`` or ``replayed``) used energy worth counting; refused
    and failed ones are left out, as budgets leave them out.
    """
    done = [r for r in records if r.outcome in ("ok", "replayed")]
    groups: dict[tuple[str, str], Group] = {}
    for r in done:
        keys = [("agent", r.agent)]
        if r.kind == "llm":
            keys.append(("model", r.name or r.resource))
        elif r.kind == "tool":
            keys.append(("tool", r.name or r.resource))
        else:
            keys.append(("other", r.kind))
        for key in keys:
            g = groups.setdefault(key, Group(*key))
            g.syscalls += 1
            g.energy_j += r.energy_j
            g.gco2 += r.gco2
            g.flops += r.flops
            g.energy_methods.add(r.energy_method or _UNRECORDED)
            g.flops_methods.add(r.flops_method or _UNRECORDED)
    order = {"agent": 0, "model": 1, "tool": 2, "other": 3}
    ranked = sorted(groups.values(), key=lambda g: (order[g.by], -g.energy_j, g.name))
    return Summary(run, list(records), ranked, sum(r.energy_j for r in done),
                   sum(r.gco2 for r in done), sum(r.flops for r in done))


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(summary: Summary) -> list[tuple[str, str]]:
    """``(title, base64 PNG)`` for each plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        from agentos.errors import UserError

        raise UserError('the HTML energy report draws with matplotlib: pip install "agentos-kit[ml]"') from error
    done = [r for r in summary.records if r.outcome in ("ok", "replayed")]
    start = summary.run.started_at
    plots: list[tuple[str, str]] = []

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ends = sorted((r.submitted_at + r.queue_wait_s + r.service_s - start, r.energy_j, r.gco2) for r in done)
    t, joules, grams = [0.0], [0.0], [0.0]
    for end, j, g in ends:
        t.append(end)
        joules.append(joules[-1] + j)
        grams.append(grams[-1] + g)
    ax.step(t, joules, where="post", color="tab:orange", label="energy (J)")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("cumulative energy (J)")
    co2 = ax.twinx()
    co2.step(t, [g * 1e3 for g in grams], where="post", color="tab:green", linestyle="--", label="CO2")
    co2.set_ylabel("cumulative CO2 (mgCO2e)")
    ax.set_title("Energy and CO2 over time")
    plots.append(("Energy and CO2 over time", _png(fig)))
    plt.close(fig)

    for by, title in (("agent", "Energy per agent"), ("model", "Energy per model")):
        rows = summary.rows(by)
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(1, len(rows))))
        names = [g.name for g in rows] or ["(none)"]
        ax.barh(names, [g.energy_j for g in rows] or [0.0], color="tab:blue")
        ax.invert_yaxis()
        ax.set_xlabel("energy (J)")
        ax.set_title(title)
        plots.append((title, _png(fig)))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    counted = [r for r in done if r.flops > 0 and r.energy_j > 0]
    for kind in sorted({r.kind for r in counted}):
        rs = [r for r in counted if r.kind == kind]
        ax.scatter([r.flops for r in rs], [r.energy_j for r in rs], label=kind, alpha=0.7)
    if counted:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no syscall with counted FLOPs", ha="center", transform=ax.transAxes)
    ax.set_xlabel("FLOPs")
    ax.set_ylabel("energy (J)")
    ax.set_title("FLOPs against joules, per syscall")
    plots.append(("FLOPs against joules", _png(fig)))
    plt.close(fig)
    return plots


def render_html(summary: Summary) -> str:
    """A self-contained HTML report (no external assets): tables, plots, and every method used.

    Raises:
        UserError: matplotlib is not installed.
    """
    e = html.escape
    run = summary.run
    rows = "".join(
        f"<tr><td>{e(g.by)}</td><td>{e(g.name)}</td><td>{g.syscalls}</td><td>{g.energy_j:.3f}</td>"
        f"<td>{g.gco2 * 1e3:.4f}</td><td>{g.flops:.3g}</td><td>{e(summary.method_refs(g))}</td></tr>"
        for g in summary.groups
    )
    legend = "".join(f"<li>{e(m)}</li>" for m in summary.methods())
    images = "".join(f'<h2>{e(title)}</h2><img alt="{e(title)}" src="data:image/png;base64,{data}">'
                     for title, data in _plots(summary))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agentos energy report {e(run.id)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:.9em}}img{{max-width:100%}}</style>
</head><body>
<h1>Energy report: run {e(run.id)} ({e(run.name)}, {e(run.status)})</h1>
<p id="totals">Total: <b>{summary.energy_j:.3f} J</b>, <b>{summary.gco2 * 1e3:.4f} mgCO2e</b>,
<b>{summary.flops:.3g} FLOPs</b> over {sum(g.syscalls for g in summary.rows('agent'))} completed syscalls.</p>
<p>Each figure is measured, modelled or estimated as its method says; modelled and estimated
figures are approximations, not measurements.</p>
<table><thead><tr><th>by</th><th>name</th><th>syscalls</th><th>energy J</th><th>mgCO2e</th>
<th>FLOPs</th><th>method</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Methods</h2><ol id="methods">{legend}</ol>
{images}
</body></html>
"""
