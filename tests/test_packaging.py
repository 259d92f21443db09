"""The wheel holds every package in the tree, and every declared entry point resolves.

setuptools installs only the packages ``pyproject.toml`` lists by name (``tools/`` and
``kernels/`` are mapped under ``agentos`` and must never be found as top-level packages), so a
new subpackage that is not in the list is silently left out of the wheel. These tests walk the
three source folders and compare.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

from agentos.runtime.tool import Tool

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
HOW_TO_FIX = 'add it to `packages = [...]` under [tool.setuptools] in pyproject.toml'


def _source_dirs() -> dict[str, Path]:
    """Every folder under the mapped roots that holds Python files, by its import name."""
    found: dict[str, Path] = {}
    for prefix, folder in SETUPTOOLS["package-dir"].items():
        base = ROOT / folder
        for path in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
            if "__pycache__" in path.parts or not any(path.glob("*.py")):
                continue
            found[".".join([prefix, *path.relative_to(base).parts])] = path
    return found


def test_package_dir_maps_the_three_source_folders() -> None:
    assert SETUPTOOLS["package-dir"] == {"agentos": "agentos", "agentos.tools": "tools", "agentos.kernels": "kernels"}


def test_every_folder_with_python_files_is_a_package() -> None:
    missing = [f"{path.relative_to(ROOT)}/" for path in _source_dirs().values() if not (path / "__init__.py").is_file()]
    assert not missing, f"{missing} hold .py files but no __init__.py: add one (and list the package in pyproject.toml)"


def test_every_package_is_in_the_wheel() -> None:
    listed = set(SETUPTOOLS["packages"])
    unlisted = sorted(name for name, path in _source_dirs().items()
                      if (path / "__init__.py").is_file() and name not in listed)
    assert not unlisted, f"packages missing from the wheel: {unlisted}; {HOW_TO_FIX}"


def test_every_data_file_is_in_the_wheel() -> None:
    """Files other than Python (page assets, tables) ship only where package-data names them."""
    import fnmatch

    data = SETUPTOOLS.get("package-data", {})
    roots = {prefix: ROOT / folder for prefix, folder in SETUPTOOLS["package-dir"].items()}

    def package_folder(name: str) -> Path:
        prefix = max((p for p in roots if name == p or name.startswith(p + ".")), key=len)
        return roots[prefix].joinpath(*name[len(prefix):].split(".")[1:])

    def shipped(path: Path) -> bool:
        for package, patterns in data.items():
            folder = package_folder(package)
            if folder in path.parents:
                relative = path.relative_to(folder).as_posix()
                if any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
                    return True
        return False

    missing = sorted(
        str(path.relative_to(ROOT)) for base in set(roots.values()) for path in base.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
        and not shipped(path)
    )
    assert not missing, (
        f"{missing} would be left out of the wheel: add a pattern for them under "
        "[tool.setuptools.package-data] in pyproject.toml (the key is the package that holds them)"
    )


def test_every_listed_package_exists() -> None:
    found = _source_dirs()
    stale = sorted(name for name in SETUPTOOLS["packages"]
                   if name not in found or not (found[name] / "__init__.py").is_file())
    assert not stale, f"pyproject.toml lists packages that do not exist: {stale}; remove them"


@pytest.mark.parametrize(("name", "target"), sorted(PYPROJECT["project"]["entry-points"]["agentos.tools"].items()))
def test_every_tool_entry_point_resolves_to_that_tool(name: str, target: str) -> None:
    module, _, attribute = target.partition(":")
    obj = getattr(importlib.import_module(module), attribute)
    assert isinstance(obj, Tool), f"{target} is {type(obj).__name__}, not an agentos Tool"
    assert obj.name == name, f"entry point {name!r} loads a tool named {obj.name!r}"


def test_the_console_script_resolves() -> None:
    module, _, attribute = PYPROJECT["project"]["scripts"]["agentos"].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


@pytest.mark.parametrize("name", ["kernels", "tools"])
def test_the_checkouts_folders_do_not_shadow_an_installed_top_level_package_under_pytest(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest puts the repository root on sys.path (tests/ is a package); an installed
    top-level package of the same name as kernels/ or tools/ (Hugging Face's `kernels`, which
    transformers >= 5.25 imports) must still be the one imported (tests/conftest.py)."""
    import sys

    site = tmp_path / "site-packages"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("WHO = 'installed'\n")
    assert ROOT in [Path(p or ".").resolve() for p in sys.path]  # the root comes first...
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])  # ...site-packages after it
    monkeypatch.delitem(sys.modules, name, raising=False)
    assert importlib.import_module(name).WHO == "installed"
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])
    del sys.modules[name]
    with pytest.raises(ModuleNotFoundError):  # nothing installed: not the checkout's either
        importlib.import_module(name)
