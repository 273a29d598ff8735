"""``lamina[testing]`` holds what the conformance kits and the pytest plugin import.

A plugin author installs ``lamina[testing]`` and runs a kit; a module the kits import that neither
the core nor the extra brings would fail their collection with an ImportError.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTING = ROOT / "core" / "lamina" / "testing"
# Modules a kit user loads: the kits, the pytest plugin and what it imports, the processes it starts.
LOADED = [
    *sorted((TESTING / "conformance").glob("*.py")),
    *(TESTING / f"{name}.py" for name in ("pytest_plugin", "processes", "child_processes", "fixtures")),
    *(TESTING / f"{name}.py" for name in ("postgres", "fake_openai", "pdfs")),
]
# Import name -> distribution name, where they differ.
DISTRIBUTION = {"llama_stack_client": "llama-stack-client", "yaml": "pyyaml"}


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:  # module level only: lazy imports are optional extras
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_testing_extra_brings_what_the_kits_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    provided = _names(project["dependencies"]) | _names(project["optional-dependencies"]["testing"])
    imported = set().union(*(_top_level_imports(p) for p in LOADED))
    third_party = {n for n in imported if n not in sys.stdlib_module_names and n != "lamina"}
    missing = sorted(n for n in third_party if DISTRIBUTION.get(n, n).lower() not in provided)
    assert not missing, f"lamina.testing imports these; lamina and lamina[testing] lack them: {missing}"
    # llama-stack-client 0.2.12 imports fire and requests without declaring them.
    assert {"llama-stack-client", "fire", "requests", "pytest-asyncio"} <= provided
