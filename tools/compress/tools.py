"""The agent tool ``compress``: run a compression recipe and return its report.

Torch and transformers are imported only when the tool runs.
"""

from __future__ import annotations

from typing import Any

from agentos.errors import DataNotInstalled, RecipeError, ToolRetry
from agentos.runtime.tool import tool

__all__ = ["compress"]


@tool(name="compress", concurrency=1)
def compress(recipe_path: str) -> dict[str, Any]:
    """Prune, distil, quantize and export a classifier as a YAML recipe says; report the numbers.

    Args:
        recipe_path: path to a YAML recipe (model, prune, recover, quantize, evaluate, export).

    Returns accuracy (dense and compressed), sparsity, exported file sizes in bytes, CPU latency
    per batch in seconds and the export directory.
    """
    from agentos.tools.compress.pipeline import compress as run
    from agentos.tools.compress.recipe import load_recipe

    try:
        report = run(load_recipe(recipe_path), progress=False)
    except (RecipeError, DataNotInstalled) as error:
        raise ToolRetry(str(error)) from error
    return {
        "name": report.name,
        "accuracy_dense": report.accuracy_dense,
        "accuracy": report.accuracy,
        "accuracy_quantized": report.accuracy_quantized,
        "eval_examples": report.eval_examples,
        "sparsity": round(report.sparsity, 4),
        "parameters": report.parameters,
        "sizes": report.sizes,
        "latency_s": report.latency.get("median_s"),
        "latency_dense_s": report.latency_dense.get("median_s"),
        "latency_quantized_s": report.latency_quantized.get("median_s"),
        "export_dir": report.export_dir,
    }
