"""Exact attention, dense and structured, with log-sum-exp partials that merge.

Every kernel here takes tensors shaped ``[B, H, T, D]`` and computes

    out[b, h, i] = sum_j softmax_j(scale * q[b, h, i] . k[b, h, j] + bias[i, j]) * v[b, h, j]

over the keys ``j`` its pattern allows. ``vanilla_attention`` materialises the whole score matrix
and is the reference; the others split the work into *tasks* (a block of queries against a block
of keys), run each task with torch's fused CPU flash kernel (which also returns the per-row
log-sum-exp), and merge the partial results in float32 with :func:`merge_partials`. The backward
pass re-runs every task's block backward against the *merged* output and log-sum-exp, the way
FlashAttention does, so nothing bigger than one block of scores is ever held.

Legend of dimension letters used in shape comments:

    B  batch            H  heads           T  sequence length     D  head dim
    Q  queries in a block                  K  keys in a block     N  segments (dilated)

Where things live (each name is re-exported here):

- ``vanilla``: :func:`vanilla_attention` (the dense reference) and :func:`causal_mask`.
- ``partials``: one block with its log-sum-exp, its backward, and :func:`merge_partials`.
- ``_tasks``: the task list a pattern is made of, run forward and backward as one autograd function.
- ``blockwise``: :func:`blockwise_attention`, dense (optionally causal), online softmax over blocks.
- ``sliding_window``: :func:`sliding_window_attention`, each query sees the ``window`` nearest keys
  (causal: itself and the ``window - 1`` before it; bidirectional: ``|i - j| < window``), and
  :func:`sliding_window_mask`, its dense mask.
- ``dilated``: :func:`dilated_attention`, LongNet's mix of segment lengths and dilation rates, and
  :func:`dilated_mask`, its dense reference.
- ``flops``: FLOP counts of what each kernel computes.
"""

from __future__ import annotations

from agentos.kernels.attention.blockwise import blockwise_attention
from agentos.kernels.attention.dilated import dilated_attention, dilated_mask
from agentos.kernels.attention.flops import blockwise_flops, dense_flops, dilated_flops, sliding_window_flops
from agentos.kernels.attention.partials import merge_partials
from agentos.kernels.attention.sliding_window import sliding_window_attention, sliding_window_mask
from agentos.kernels.attention.vanilla import causal_mask, vanilla_attention

__all__ = [
    "blockwise_attention",
    "blockwise_flops",
    "causal_mask",
    "dense_flops",
    "dilated_attention",
    "dilated_flops",
    "dilated_mask",
    "merge_partials",
    "sliding_window_attention",
    "sliding_window_flops",
    "sliding_window_mask",
    "vanilla_attention",
]
