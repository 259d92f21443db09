"""Agent tools over the local Mixture-of-Experts model: ``train_moe`` and ``moe``.

``train_moe`` trains (or resumes) a small MoE language model on the Python standard library
under a step and wall-time budget and saves it under the agentos data dir; ``moe`` generates from
or scores text with a trained model and reports routing statistics. Torch is imported only when a
tool runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from agentos.config import data_dir
from agentos.errors import ToolRetry
from agentos.runtime.tool import tool

__all__ = ["moe", "train_moe"]

_MAX_STEPS = 2000


def _model_dir(name: str) -> Path:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ToolRetry(f"model name {name!r} may only use letters, digits, '-' and '_'")
    return data_dir() / "moe" / name


@tool(name="train_moe", concurrency=1)
def train_moe(
    name: str = "default",
    preset: Literal["tiny", "small", "two_experts", "dense_small"] = "tiny",
    steps: int = 50,
    max_wall_s: float = 120.0,
) -> dict[str, Any]:
    """Train (or resume) a small Mixture-of-Experts language model on Python source code.

    Args:
        name: the model's name; training again with the same name resumes it.
        preset: the model size and routing (tiny: 2 layers 4 experts; small: 4 layers 8 experts;
            two_experts; dense_small is the dense baseline).
        steps: training steps in total (at most 2000).
        max_wall_s: stop early (with a checkpoint) after this many seconds.
    """
    from agentos.tools.moe.config import preset as get_preset
    from agentos.tools.moe.train import train_moe as train

    if not 1 <= steps <= _MAX_STEPS:
        raise ToolRetry(f"steps must be between 1 and {_MAX_STEPS}, got {steps}")
    config = get_preset(preset)
    out_dir = _model_dir(name)
    seq_len = min(128, config.max_seq_len)
    try:
        result = train(config, steps, out_dir=out_dir, seq_len=seq_len, batch_size=8,
                       eval_every=max(1, steps // 4), eval_batches=2, checkpoint_every=steps,
                       max_bytes=2_000_000, progress=False, max_wall_s=max_wall_s)
    except ValueError as error:  # e.g. resuming a checkpoint made with another preset
        raise ToolRetry(f"{error}; pick another name to start a new model") from error
    last = result.history[-1] if result.history else {}
    return {
        "name": name,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "resumed_from_step": result.resumed_from,
        "step": last.get("step"),
        "val_loss": last.get("val_loss"),
        "routing": last.get("routing"),
    }


@tool(name="moe")
def moe(
    action: Literal["generate", "score"],
    text: str,
    name: str = "default",
    max_new_tokens: int = 120,
) -> dict[str, Any]:
    """Generate from or score text with a trained local MoE model, with routing statistics.

    Args:
        action: "generate" continues the text; "score" returns bits per byte and per-layer routing.
        text: the prompt (generate) or the text to score.
        name: a model trained with train_moe.
        max_new_tokens: bytes to generate (at most 1000).
    """
    from agentos.tools.moe.checkpoint import CheckpointError
    from agentos.tools.moe.inference import generate, load_model, score

    directory = _model_dir(name)
    if not directory.exists():
        raise ToolRetry(f"no MoE model named {name!r}; train one first with train_moe(name={name!r})")
    try:
        model = load_model(directory)
    except CheckpointError as error:
        raise ToolRetry(f"the checkpoint of {name!r} cannot be used: {error}") from error
    if action == "generate":
        if not 1 <= max_new_tokens <= 1000:
            raise ToolRetry("max_new_tokens must be between 1 and 1000")
        return {"text": generate(model, text, max_new_tokens=max_new_tokens)}
    if len(text.encode()) < 2:
        raise ToolRetry("score needs at least 2 bytes of text")
    return score(model, text)
