"""Built-in agentos tools, one module or subpackage per tool family.

- :mod:`agentos.tools.calculator`: ``calculator``, arithmetic on an expression (no ``eval``).
- :mod:`agentos.tools.code`: ``run_python``, Python in the sandbox.
- :mod:`agentos.tools.long_context`: ``long_context`` and ``run_attention_benchmark``, a local
  language model over long documents with blockwise, ring and chunked-memory attention.
- :mod:`agentos.tools.moe`: ``train_moe`` and ``moe``, a local Mixture-of-Experts language model.

The registry finds the tools through the ``agentos.tools`` entry points and imports each module
lazily; nothing heavy is imported here.
"""

from __future__ import annotations

__all__: list[str] = []
