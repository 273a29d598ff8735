"""The repository's installable packages: the core at the root, plugins/*, models/*.

``repo_packages`` reads every pyproject.toml; the ``packaging``-marked tests build them (hatchling,
in this environment) into wheels and sdists and install the wheels into a fresh venv.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RepoPackage:
    """One pyproject.toml of the repository."""

    directory: Path
    pyproject: dict[str, Any]

    @property
    def project(self) -> dict[str, Any]:
        return self.pyproject["project"]

    @property
    def name(self) -> str:
        return canonicalize_name(self.project["name"])

    @property
    def rel(self) -> str:
        return str(self.directory.relative_to(ROOT)) or "."

    @property
    def version(self) -> str:
        if "version" in self.project:
            return self.project["version"]
        # Dynamic: hatch's regex source (`[tool.hatch.version] path`).
        source = self.directory / self.pyproject["tool"]["hatch"]["version"]["path"]
        match = re.search(r'^__version__ = "([^"]+)"', source.read_text(), re.M)
        assert match, f"{source} has no __version__"
        return match.group(1)

    def requirements(self, extra: str | None = None) -> list[Requirement]:
        deps = self.project.get("dependencies", [])
        if extra is not None:
            deps = self.project.get("optional-dependencies", {}).get(extra, [])
        return [Requirement(d) for d in deps]


def _load() -> dict[str, RepoPackage]:
    dirs = [ROOT, *sorted(ROOT.glob("plugins/*")), *sorted(ROOT.glob("models/*"))]
    packages = [
        RepoPackage(d, tomllib.loads((d / "pyproject.toml").read_text()))
        for d in dirs
        if (d / "pyproject.toml").is_file()
    ]
    return {p.name: p for p in packages}


REPO_PACKAGES = _load()


@pytest.fixture(scope="session")
def repo_packages() -> dict[str, RepoPackage]:
    """Every installable package of the repository, by canonical distribution name."""
    return REPO_PACKAGES


def in_repo_closure(name: str, packages: dict[str, RepoPackage]) -> list[str]:
    """``name`` and the in-repo packages it needs (dependencies and the extras it asks for), sorted."""
    seen: set[str] = set()
    todo = [Requirement(name)]
    while todo:
        req = todo.pop()
        dist = canonicalize_name(req.name)
        package = packages.get(dist)
        if package is None:
            continue
        new = dist not in seen
        seen.add(dist)
        reqs = package.requirements() if new else []
        for extra in req.extras:
            reqs += package.requirements(extra)
        todo.extend(r for r in reqs if canonicalize_name(r.name) in packages)
    return sorted(seen)
