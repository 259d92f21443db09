"""What the core imports is declared: ``pip install agentos-kit`` alone runs ``agentos --help``.

A package that happens to be installed (as another package's dependency, or by hand) hides a
missing declaration until a fresh machine fails, as ``typer`` once did.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names a module imports when it loads (not in functions or TYPE_CHECKING)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_module_the_cli_loads_imports_only_declared_core_dependencies() -> None:
    code = (
        "import json, sys, agentos.cli; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'agentos')))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                       text=True, check=True).stdout)
    imported: set[str] = set()
    for name in loaded:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        imported |= _module_level_imports(Path(spec.origin))
    third_party = {m for m in imported if m not in sys.stdlib_module_names} - {"agentos", "__future__"}
    assert "typer" in third_party  # the check sees the CLI's own imports

    declared = {_canonical(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]) for req in CORE}
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        module: providers.get(module, [module])
        for module in sorted(third_party)
        if not {_canonical(d) for d in providers.get(module, [module])} & declared
    }
    assert not undeclared, (
        f"imported at load time but not in [project] dependencies of pyproject.toml: {undeclared}; "
        "declare them, or import them inside the function that needs them"
    )
