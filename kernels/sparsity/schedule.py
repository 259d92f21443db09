"""Gradual pruning schedules: how sparse the model should be at each training step.

The cubic schedule of Zhu & Gupta (2017, "To prune, or not to prune"):

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0)) ** 3     for t_0 <= t <= t_1

``s_i`` before ``t_0``, ``s_f`` after ``t_1``. It prunes fast early, when many weights are
redundant, and slowly near the end.
"""

from __future__ import annotations

from agentos.kernels.sparsity.masks import check_sparsity

__all__ = ["cubic_sparsity"]


def cubic_sparsity(step: int, final: float, *, start: int, end: int, initial: float = 0.0) -> float:
    """The target sparsity at ``step`` under the cubic schedule.

    Args:
        step: the current step.
        final: sparsity reached at ``end``, in ``[0, 1)``.
        start: first step that prunes (``initial`` until then).
        end: the step at which ``final`` is reached (``end >= start``; ``end == start`` is
            one-shot pruning at ``start``).
        initial: sparsity at ``start``, in ``[0, final]``.

    Raises:
        ValueError: sparsities outside ``[0, 1)``, ``initial > final`` or ``end < start``.
    """
    check_sparsity(final)
    check_sparsity(initial)
    if initial > final:
        raise ValueError(f"initial sparsity {initial} exceeds the final {final}")
    if end < start:
        raise ValueError(f"the schedule ends (step {end}) before it starts (step {start})")
    if step < start:
        return initial
    if step >= end:
        return final
    progress = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3
