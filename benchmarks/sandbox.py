"""Start-up overhead of one sandboxed run against a plain subprocess (target: at most 50 ms added).

For each program (``true``, and ``python -c pass`` with this interpreter) it times, interleaved:
a plain ``subprocess.run``; ``agentos.sandbox.run`` in the default bubblewrap mode (bwrap set-up,
as root also setpriv and the second bwrap for the user namespace, workspace hand-over, output
watcher, status parsing); and the ``rlimits-only`` mode. The added cost is the median sandboxed
time minus the median plain time.

Prints a table and writes benchmarks/results/sandbox.json.

    python benchmarks/sandbox.py [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentos.sandbox import run

RESULTS = Path(__file__).parent / "results" / "sandbox.json"
TARGET_MS = 50.0


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per program and mode")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    programs = {"true": ["true"], "python -c pass": [sys.executable, "-c", "pass"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="agentos-bench-sandbox-") as tmp:
        workdir = Path(tmp)
        run(["true"], workdir)  # the one-time availability probe is not a per-run cost
        for label, argv in programs.items():
            modes: dict[str, Callable[[], object]] = {
                "plain subprocess": lambda argv=argv: subprocess.run(
                    argv, cwd=workdir, capture_output=True, check=True),
                "sandbox (bwrap)": lambda argv=argv: run(argv, workdir),
                "sandbox (rlimits-only)": lambda argv=argv: run(argv, workdir,
                                                                isolation="rlimits-only"),
            }
            samples: dict[str, list[float]] = {mode: [] for mode in modes}
            for _ in range(args.runs):  # interleaved, so load changes hit every mode alike
                for mode, fn in modes.items():
                    samples[mode].append(_time(fn))
            plain = statistics.median(samples["plain subprocess"])
            for mode, values in samples.items():
                values.sort()
                median = statistics.median(values)
                rows.append({
                    "program": label, "mode": mode, "runs": len(values),
                    "median_ms": round(median, 2),
                    "p90_ms": round(values[int(0.9 * (len(values) - 1))], 2),
                    "added_ms": round(median - plain, 2),
                })
    table = Table(title=f"sandbox start-up overhead ({args.runs} runs each, median)")
    for column in ("program", "mode", "median ms", "p90 ms", "added vs plain ms"):
        table.add_column(column, justify="left" if column in ("program", "mode") else "right")
    for row in rows:
        table.add_row(row["program"], row["mode"], f"{row['median_ms']:.1f}",
                      f"{row['p90_ms']:.1f}", f"{row['added_ms']:+.1f}")
    console = Console()
    console.print(table)
    bwrap_added = max(r["added_ms"] for r in rows if r["mode"] == "sandbox (bwrap)")
    verdict = "meets" if bwrap_added <= TARGET_MS else "misses"
    console.print(f"bwrap mode adds at most {bwrap_added:.1f} ms per run: {verdict} the "
                  f"{TARGET_MS:.0f} ms target")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "sandbox start-up overhead",
        "command": "python benchmarks/sandbox.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "kernel": platform.release(),
                    "cpus": os.cpu_count(), "euid": os.geteuid()},
        "target_added_ms": TARGET_MS,
        "bwrap_added_ms_max": bwrap_added,
        "rows": rows,
    }, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
