"""Shared fixtures for the run-config tests: the CLI as a subprocess and the installed plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lamina.plugins import PluginManager, load_plugin_manager

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def plugin_manager() -> PluginManager:
    return load_plugin_manager()


@pytest.fixture
def lamina_cli(tmp_path: Path) -> CliRunner:
    """Run ``python -m lamina.cli ARGS`` with LAMINA_HOME in tmp_path; returns the finished process."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "LAMINA_HOME": str(tmp_path / "home"), "LAMINA_LOG_FORMAT": "json"}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "lamina.cli", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return run
