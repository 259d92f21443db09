"""Sparsity kernels: masks, importance scores, gradual schedules and dynamic sparsity.

Re-exports the public names of :mod:`.masks`, :mod:`.scores`, :mod:`.schedule` and
:mod:`.dynamic`. Imports only torch.
"""

from __future__ import annotations

from agentos.kernels.sparsity.dynamic import rigl_drop_fraction, rigl_update, rigl_update_reference
from agentos.kernels.sparsity.masks import (
    check_nm,
    check_sparsity,
    global_unstructured_masks,
    global_unstructured_masks_reference,
    is_nm_sparse,
    nm_mask,
    nm_mask_reference,
    pruned_count,
    sparsity_of,
    structured_mask,
    structured_mask_reference,
    unstructured_mask,
    unstructured_mask_reference,
)
from agentos.kernels.sparsity.schedule import cubic_sparsity
from agentos.kernels.sparsity.scores import (
    activation_norms,
    head_scores,
    head_scores_reference,
    magnitude,
    movement_update,
    neuron_scores,
    neuron_scores_reference,
    wanda,
    wanda_reference,
)

__all__ = [
    "activation_norms",
    "check_nm",
    "check_sparsity",
    "cubic_sparsity",
    "global_unstructured_masks",
    "global_unstructured_masks_reference",
    "head_scores",
    "head_scores_reference",
    "is_nm_sparse",
    "magnitude",
    "movement_update",
    "neuron_scores",
    "neuron_scores_reference",
    "nm_mask",
    "nm_mask_reference",
    "pruned_count",
    "rigl_drop_fraction",
    "rigl_update",
    "rigl_update_reference",
    "sparsity_of",
    "structured_mask",
    "structured_mask_reference",
    "unstructured_mask",
    "unstructured_mask_reference",
    "wanda",
    "wanda_reference",
]
