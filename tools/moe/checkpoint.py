"""Checkpoints that refuse to half-load: a payload file plus a JSON manifest with its sha256.

Layout of a checkpoint ``path`` (a directory):

* ``state-<sha256 prefix>.pt`` — ``torch.save`` of the model/optimizer state and counters;
* ``manifest.json`` — format version, payload name, size and sha256, metadata (config, step).

The payload gets a new name each save and the manifest is renamed into place last, so a crash
mid-save leaves the previous checkpoint intact; older payloads are deleted afterwards. :func:`load_checkpoint` checks the manifest, the size and
the hash before unpickling anything and loads with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from agentos.errors import UserError

__all__ = ["CheckpointError", "FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1
_MANIFEST = "manifest.json"


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, truncated or of another format; nothing was loaded."""


def save_checkpoint(path: str | Path, state: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, nested dicts/lists) to the directory ``path``.

    Args:
        path: checkpoint directory (created if missing; an older checkpoint there is replaced).
        state: what to ``torch.save``.
        metadata: JSON-serialisable facts stored in the manifest (config, step, ...).

    Returns:
        The checkpoint directory.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    name = f"state-{digest[:16]}.pt"
    manifest = {
        "format_version": FORMAT_VERSION,
        "payload": name,
        "bytes": len(payload),
        "sha256": digest,
        "metadata": metadata,
    }
    _atomic_write(directory / name, payload)
    _atomic_write(directory / _MANIFEST, json.dumps(manifest, indent=2).encode())
    for old in directory.glob("state-*.pt"):
        if old.name != name:
            old.unlink()
    return directory


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify and load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(state, metadata)``.

    Raises:
        CheckpointError: the directory, manifest or payload is missing; the manifest is not valid
            JSON or has another format version; the payload size or sha256 differs from the
            manifest (truncated or corrupt file). Nothing is unpickled in those cases.
    """
    directory = Path(path)
    manifest_path = directory / _MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(
            f"no checkpoint at {directory}: {_MANIFEST} is missing (train first, or pass the "
            "directory that save_checkpoint wrote)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"corrupt checkpoint manifest {manifest_path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {directory} has format version "
            f"{manifest.get('format_version') if isinstance(manifest, dict) else None!r}, "
            f"this agentos reads version {FORMAT_VERSION}"
        )
    name = str(manifest.get("payload", ""))
    payload_path = directory / name
    if "/" in name or not name or not payload_path.is_file():
        raise CheckpointError(f"checkpoint payload {payload_path} is missing")
    payload = payload_path.read_bytes()
    if len(payload) != manifest.get("bytes"):
        raise CheckpointError(
            f"checkpoint payload {payload_path} is truncated or padded: {len(payload)} bytes, "
            f"manifest says {manifest.get('bytes')}; re-save or restore it from a copy"
        )
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest.get("sha256"):
        raise CheckpointError(
            f"checkpoint payload {payload_path} is corrupt: sha256 {digest[:12]}… differs from "
            f"the manifest's {str(manifest.get('sha256'))[:12]}…; re-save or restore it"
        )
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    return state, dict(manifest.get("metadata", {}))


def _atomic_write(target: Path, data: bytes) -> None:
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
