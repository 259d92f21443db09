"""Export: a Hugging Face directory, plus the formats that make the model smaller on disk.

- ``model.safetensors`` + ``config.json`` + tokenizer (``save_pretrained``): what
  ``AutoModelForSequenceClassification.from_pretrained`` loads. Unstructured zeros are stored as
  zeros here (safetensors is dense), so this file is no smaller for them.
- ``sparse_model.pt`` (unstructured and N:M): every pruned weight as a bitmask (1 bit per entry)
  plus its nonzero values; at sparsity ``s`` a float32 weight takes ``(1 - s) * 4 + 1/8`` bytes
  per entry instead of 4. :func:`load_sparse` turns it back into a dense state dict.
- structured pruning: the safetensors file itself is smaller (the shapes are); the directory
  carries ``_hf_pruned_bert.py`` and an ``auto_map`` so it loads with ``trust_remote_code=True``.
- ``model_int8_dynamic.pt``: the state dict of the int8 dynamic model (``torch.save``); load it
  with :func:`agentos.tools.compress.pipeline.load_exported`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["export_hf", "load_sparse", "save_sparse"]

_FORMAT = "agentos-bitmask-v1"


def save_sparse(state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], path: Path) -> int:
    """Write ``state`` with each ``masks[name + ".weight"]``-masked weight as bitmask + values.

    Returns:
        The file's size in bytes.
    """
    import numpy as np
    import torch

    out: dict[str, Any] = {"format": _FORMAT, "dense": {}, "sparse": {}}
    for key, tensor in state.items():
        mask = masks.get(key)
        if mask is None:
            out["dense"][key] = tensor.detach().clone()
            continue
        flat = mask.reshape(-1).numpy().astype(np.bool_)
        out["sparse"][key] = {
            "shape": tuple(tensor.shape),
            "bits": torch.from_numpy(np.packbits(flat)),  # [ceil(numel / 8)] uint8
            "values": tensor.detach().reshape(-1)[torch.from_numpy(flat)].clone(),  # [nnz]
        }
    torch.save(out, path)
    return path.stat().st_size


def load_sparse(path: Path) -> dict[str, torch.Tensor]:
    """The dense state dict of a :func:`save_sparse` file (pruned entries are zero).

    Raises:
        ValueError: the file is not in this format.
    """
    import numpy as np
    import torch

    data = torch.load(path, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{path} is not an {_FORMAT} file")
    state = dict(data["dense"])
    for key, entry in data["sparse"].items():
        numel = int(np.prod(entry["shape"]))
        flat = torch.from_numpy(np.unpackbits(entry["bits"].numpy())[:numel].astype(np.bool_))
        dense = torch.zeros(numel, dtype=entry["values"].dtype)
        dense[flat] = entry["values"]
        state[key] = dense.reshape(entry["shape"])
    return state


def export_hf(model: nn.Module, tokenizer: Any, out_dir: Path, *, masks: dict[str, torch.Tensor] | None = None,
              structured: dict[str, list[int]] | None = None, quantized: nn.Module | None = None) -> dict[str, int]:
    """Write the export directory; returns the size in bytes of each file that holds weights.

    Args:
        model: the float model (pruned, recovered); saved with ``save_pretrained``.
        tokenizer: saved beside it.
        masks: masks of unstructured / N:M pruning by module name (writes ``sparse_model.pt``).
        structured: ``{"layer_heads", "layer_intermediate"}`` of a structured-pruned model.
        quantized: the int8 dynamic model (writes ``model_int8_dynamic.pt``).
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if structured is not None:
        from agentos.tools.compress._hf_pruned_bert import PrunedBertConfig

        base = model.config.to_dict()
        for key in ("model_type", "layer_heads", "layer_intermediate", "auto_map", "architectures", "transformers_version"):
            base.pop(key, None)
        config = PrunedBertConfig(**structured, **base)
        config.auto_map = {"AutoConfig": "_hf_pruned_bert.PrunedBertConfig",
                           "AutoModelForSequenceClassification": "_hf_pruned_bert.PrunedBertForSequenceClassification"}
        config.architectures = ["PrunedBertForSequenceClassification"]
        original, model.config = model.config, config
        try:
            model.save_pretrained(out_dir)
        finally:
            model.config = original
        shutil.copy(Path(__file__).with_name("_hf_pruned_bert.py"), out_dir / "_hf_pruned_bert.py")
    else:
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    sizes = {"model.safetensors": (out_dir / "model.safetensors").stat().st_size}
    if masks:
        state = model.state_dict()
        sizes["sparse_model.pt"] = save_sparse(state, {f"{name}.weight": m for name, m in masks.items()}, out_dir / "sparse_model.pt")
    if quantized is not None:
        torch.save(quantized.state_dict(), out_dir / "model_int8_dynamic.pt")
        sizes["model_int8_dynamic.pt"] = (out_dir / "model_int8_dynamic.pt").stat().st_size
    return sizes
