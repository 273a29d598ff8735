"""Installed test distributions, and the ``lamina`` command run with a chosen set of them.

Every distribution under ``tests/plugin_dists`` is installed once per session with
``pip install --no-deps --target DIR`` into a directory of its own (its ``.dist-info`` carries the
``lamina`` entry point, exactly as a wheel installed from PyPI would). A test composes the installed
plugins by putting some of those directories on ``PYTHONPATH`` of a real ``python -m lamina.cli``
process, or (for in-process tests) on ``sys.path``.

The other in-repo plugins besides lamina-openai-compat (developed alongside, possibly mid-edit) are
disabled with ``LAMINA_DISABLE_PLUGINS`` in every command, so these tests only see what they install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from lamina.testing.processes import ServerProcess, lamina_server

ROOT = Path(__file__).resolve().parents[2]
DISTS_DIR = ROOT / "tests" / "plugin_dists"
DIST_NAMES = ("alpha", "beta", "broken", "dup", "badhook", "jobs")
PLUGIN_ENV = (
    "LAMINA_LOAD_PLUGINS",
    "LAMINA_DISABLE_PLUGINS",
    "LAMINA_STRICT_PLUGINS",
    "LAMINA_TRACE_PLUGINS",
)
KEPT_IN_REPO_PLUGIN = "lamina-openai-compat"  # the duplicate-provider test needs it


def _other_installed_plugins() -> list[str]:
    names = {ep.dist.name for ep in entry_points(group="lamina") if ep.dist is not None}
    return sorted(n for n in names if n != KEPT_IN_REPO_PLUGIN and not n.startswith("lamina-test-"))


OTHER_PLUGINS = _other_installed_plugins()


@dataclass
class Result:
    """A finished ``lamina`` command."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.explain()
        return json.loads(self.stdout)

    def explain(self) -> str:
        return (
            f"{' '.join(self.argv)} exited {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )

    def plugins(self) -> dict[str, dict[str, Any]]:
        """``lamina plugins --json`` rows by entry-point name (listed even when the command exits 1
        because a plugin failed to load)."""
        assert self.returncode in (0, 1) and self.stdout, self.explain()
        return {row["name"]: row for row in json.loads(self.stdout)}


class Dists:
    """The installed test distributions and ways to run ``lamina`` with some of them."""

    def __init__(self, dirs: dict[str, Path], work: Path) -> None:
        self.dirs = dirs
        self.work = work

    def pythonpath(self, names: Iterable[str]) -> str:
        return os.pathsep.join(str(self.dirs[n]) for n in names)

    def env(self, names: Iterable[str], env: dict[str, str] | None = None) -> dict[str, str]:
        """A child environment seeing only the named test distributions (plus the in-repo plugin)."""
        full = {k: v for k, v in os.environ.items() if k not in PLUGIN_ENV and k != "PYTHONPATH"}
        full["PYTHONPATH"] = self.pythonpath(names)
        full["LAMINA_HOME"] = str(self.work / "home")
        full["LAMINA_LOG_FORMAT"] = "json"
        extra = dict(env or {})
        disabled = [*OTHER_PLUGINS, *filter(None, extra.pop("LAMINA_DISABLE_PLUGINS", "").split(","))]
        if disabled:
            full["LAMINA_DISABLE_PLUGINS"] = ",".join(disabled)
        full.update(extra)
        return full

    def lamina(
        self, *args: str, dists: Iterable[str] = (), env: dict[str, str] | None = None, timeout: float = 60
    ) -> Result:
        """Run ``python -m lamina.cli ARGS`` (to its end) with the named distributions installed."""
        argv = [sys.executable, "-m", "lamina.cli", *args]
        proc = subprocess.run(
            argv,
            env=self.env(dists, env),
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(argv, proc.returncode, proc.stdout, proc.stderr)

    def write_config(self, name: str, config: dict[str, Any]) -> Path:
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def server(
        self,
        run_config: dict[str, Any] | str,
        work_dir: Path,
        *,
        dists: Iterable[str],
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> ServerProcess:
        """``lamina run`` (a config dict, or a distribution's name) with the named distributions."""
        server = lamina_server(run_config, work_dir, extra_args=extra_args)
        server.env = {**self.env(dists, env), "LAMINA_HOME": str(work_dir / "home")}  # exactly this
        return server


def _install(names: Iterable[str], target_root: Path) -> dict[str, Path]:
    """Install each test distribution into its own directory (in parallel: each is a pip process)."""
    started = {}
    for name in names:
        target = target_root / name
        argv = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-input", "--disable-pip-version-check", "--target", str(target),
            str(DISTS_DIR / f"lamina-test-{name}"),
        ]  # fmt: skip
        started[name] = (
            target,
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        )
    dirs = {}
    for name, (target, proc) in started.items():
        output, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"pip install of lamina-test-{name} failed:\n{output}")
        dirs[name] = target
    return dirs


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    dirs = _install(DIST_NAMES, tmp_path_factory.mktemp("plugin-dists"))
    return Dists(dirs, tmp_path_factory.mktemp("plugin-cli"))


@pytest.fixture
def installed(dists: Dists, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Put test distributions on this process's ``sys.path``: ``installed("alpha", "beta")``.

    The plugin switches are cleared, so in-process plugin managers see only what they are given;
    ``sys.path`` is restored after the test, so no other test sees these distributions.
    """
    for var in PLUGIN_ENV:
        monkeypatch.delenv(var, raising=False)

    def install(*names: str) -> None:
        for name in names:
            monkeypatch.syspath_prepend(str(dists.dirs[name]))

    yield install
