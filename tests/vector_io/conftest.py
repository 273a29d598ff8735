"""The in-memory Vector IO test plugin, installed once per session like tests/plugins installs its dists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "tests" / "plugin_dists" / "lamina-test-memory-vectors"


@pytest.fixture(scope="session")
def memory_vectors_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding lamina-test-memory-vectors (with its entry point): put it on PYTHONPATH."""
    target = tmp_path_factory.mktemp("memory-vectors-dist")
    argv = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
        "--no-input", "--disable-pip-version-check", "--target", str(target), str(DIST),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"pip install of lamina-test-memory-vectors failed:\n{result.stdout}{result.stderr}")
    return target
