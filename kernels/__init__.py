"""Compute kernels for agentos' local ML tools, in plain PyTorch.

Imports only torch (the energy meter also psutil and nvidia-ml-py, where it uses them). What is
here:

- :mod:`agentos.kernels.attention`: exact attention (dense reference, blockwise, sliding-window,
  dilated), log-sum-exp partials that merge, and FLOP counts of each kernel.
- :mod:`agentos.kernels.ring`: ring attention across the ranks of a ``torch.distributed`` group.
- :mod:`agentos.kernels.moe`: Mixture-of-Experts routing, sort-based dispatch and expert
  parallelism.
- :mod:`agentos.kernels.sparsity`: pruning masks (unstructured, N:M, structured), importance
  scores (magnitude, Wanda, movement), the cubic schedule and RigL dynamic sparsity.
- :mod:`agentos.kernels.quant`: int8 dynamic quantization of linears and weight-only int8 / int4.
- :mod:`agentos.kernels.energy`: the energy meter (RAPL, NVML, or modelled from CPU time), with
  carbon intensity by region; every figure carries its method and uncertainty.
- :mod:`agentos.kernels.flops`: FLOPs counted by ``torch.utils.flop_counter``, analytic for the
  kernels here (attention patterns, ring, MoE), estimated per token for LLMs.
- :mod:`agentos.kernels.launch`: run a function on local ranks of a real process group (gloo on
  CPU, NCCL on CUDA).

Submodules are imported by name, e.g. ``from agentos.kernels import attention``; this package's
``__init__`` stays empty so that ``import agentos.kernels`` is cheap.
"""

from __future__ import annotations

__all__: list[str] = []
