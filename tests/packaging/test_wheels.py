"""Build every package (sdist, then the wheel from that sdist), install the local distribution from the
wheels into a fresh venv with one pip command, and serve a chat completion and an embedding offline.

Marked ``packaging`` (``-m packaging`` selects it, ``-m "not packaging"`` skips it). The install step
uses the package index (pip's cache makes repeats cheap); serving runs in a network namespace with
loopback only (``unshare --net``; where that is not permitted, with HF_HUB_OFFLINE=1 and a warning).
Measurements (wheel sizes, install time, venv size) are printed: run with ``-s`` to see them.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import RepoPackage, in_repo_closure

pytestmark = pytest.mark.packaging

DISTRIBUTION = "lamina-distribution-local"
HERE = Path(__file__).resolve().parent


@dataclass
class Built:
    sdists: Path
    wheels: Path
    seconds: float

    def wheel(self, package: RepoPackage) -> Path:
        return self.wheels / f"{package.name.replace('-', '_')}-{package.version}-py3-none-any.whl"

    def sdist(self, package: RepoPackage) -> Path:
        return self.sdists / f"{package.name.replace('-', '_')}-{package.version}.tar.gz"


def _hatchling(target: str, source: Path, out: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", target, "--directory", str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"building the {target} of {source}:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def built(tmp_path_factory, repo_packages) -> Built:
    """An sdist of every package, and every wheel built from its unpacked sdist (so the sdist is
    known to hold all the wheel needs)."""
    base = tmp_path_factory.mktemp("dists")
    sdists, wheels, unpacked = base / "sdists", base / "wheels", base / "unpacked"
    started = time.monotonic()
    for package in repo_packages.values():
        _hatchling("sdist", package.directory, sdists)
    for sdist in sorted(sdists.glob("*.tar.gz")):
        with tarfile.open(sdist) as tar:
            tar.extractall(unpacked, filter="data")
        _hatchling("wheel", unpacked / sdist.name.removesuffix(".tar.gz"), wheels)
    return Built(sdists, wheels, time.monotonic() - started)


def _tracked_files(package: RepoPackage) -> dict[str, str]:
    """Git-tracked files of the package's import packages -> their path inside the wheel."""
    out = {}
    wheel_config = package.pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    for source in wheel_config["packages"]:
        listed = subprocess.run(
            ["git", "ls-files", source], cwd=package.directory, capture_output=True, text=True, check=True
        ).stdout.split()
        name = Path(source).name
        for rel in listed:
            out[rel] = f"{name}/{Path(rel).relative_to(source)}"
    return out


def test_every_sdist_builds_a_wheel_with_its_metadata_license_and_files(built, repo_packages) -> None:
    sizes = {}
    for package in repo_packages.values():
        wheel_path, sdist_path = built.wheel(package), built.sdist(package)
        assert wheel_path.is_file(), f"no wheel for {package.name} {package.version} in {built.wheels}"
        sizes[wheel_path.name] = wheel_path.stat().st_size
        with zipfile.ZipFile(wheel_path) as wheel:
            names = set(wheel.namelist())
            info = f"{package.name.replace('-', '_')}-{package.version}.dist-info"
            meta = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        assert (meta["Name"], meta["Version"]) == (package.project["name"], package.version)
        assert "MIT" in meta["License-Expression"].split(), meta["License-Expression"]
        assert f"{info}/licenses/LICENSE" in names, f"{wheel_path.name} lacks its LICENSE"
        assert meta["Requires-Python"] == ">=3.11"
        assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier", [])
        assert meta["Description-Content-Type"] == "text/markdown"
        readme = (package.directory / "README.md").read_text()
        assert meta.get_payload().strip() == readme.strip(), f"{wheel_path.name}: README.md lacks its README"
        missing = {rel: inside for rel, inside in _tracked_files(package).items() if inside not in names}
        assert not missing, f"{wheel_path.name} (built from its sdist) lacks {sorted(missing)}"
        with tarfile.open(sdist_path) as sdist:
            top = sdist_path.name.removesuffix(".tar.gz")
            in_sdist = set(sdist.getnames())
        assert {f"{top}/LICENSE", f"{top}/README.md", f"{top}/PKG-INFO"} <= in_sdist, sdist_path.name
    print(f"\nbuilt {len(sizes)} sdists and wheels (wheel from sdist) in {built.seconds:.0f} s")
    for name, size in sorted(sizes.items()):
        print(f"  {name}: {size / 1e6:.2f} MB" if size > 1e6 else f"  {name}: {size / 1e3:.0f} kB")


def test_the_model_wheel_holds_the_pinned_gguf(built, repo_packages) -> None:
    package = repo_packages["lamina-model-smollm2"]
    pin = {}
    exec((package.directory / "src/lamina_model_smollm2/__init__.py").read_text(), pin)
    digest = hashlib.sha256()
    member = f"lamina_model_smollm2/{pin['GGUF']}"
    with zipfile.ZipFile(built.wheel(package)) as wheel, wheel.open(member) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == pin["SHA256"]
    with tarfile.open(built.sdist(package)) as sdist:
        gguf = [n for n in sdist.getnames() if n.endswith(".gguf")]
    assert not gguf, "the sdist is the recipe, not the model file"


def _network_namespace() -> list[str] | None:
    """A command prefix that runs its command with loopback only, or None where that is not permitted."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return None
    for flags in (["--net"], ["--net", "--map-root-user"]):
        probe = subprocess.run(["unshare", *flags, "ip", "link", "set", "lo", "up"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", *flags, "sh", "-c", 'ip link set lo up && exec "$@"', "offline"]
    return None


def test_local_distribution_installs_from_wheels_with_one_pip_command_and_serves_offline(
    built, repo_packages, tmp_path
) -> None:
    needed = in_repo_closure(DISTRIBUTION, repo_packages)
    assert {"lamina", "lamina-llama-cpp", "lamina-model-smollm2", "lamina-onnx-embeddings"} <= set(needed)
    venv = tmp_path / "venv"
    # The base interpreter, not this environment's: the venv starts with pip and nothing else.
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python, bindir = venv / "bin" / "python", venv / "bin"

    started = time.monotonic()
    install = subprocess.run(
        [str(bindir / "pip"), "install", "--quiet", "--find-links", str(built.wheels), DISTRIBUTION],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    install_seconds = time.monotonic() - started
    assert install.returncode == 0, f"pip install failed:\n{install.stdout}{install.stderr[-4000:]}"
    check = subprocess.run([str(bindir / "pip"), "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, f"pip check:\n{check.stdout}{check.stderr}"
    size = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True).stdout.split()[0]

    # Every in-repo package came from our wheels, installed non-editable into the venv.
    listed = subprocess.run(
        [str(bindir / "pip"), "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    versions = {row["name"].lower(): row for row in json.loads(listed.stdout)}
    for name in needed:
        assert versions[name]["version"] == repo_packages[name].version, versions.get(name)
        assert "editable_project_location" not in versions[name], versions[name]
    plugins = subprocess.run(
        [str(bindir / "lamina"), "plugins", "--json"], capture_output=True, text=True, timeout=120
    )
    assert plugins.returncode == 0, plugins.stderr
    rows = {row["distribution"]: row for row in json.loads(plugins.stdout)}
    site = str(venv / "lib")
    for name in needed:
        if name in rows:  # model packages and the core have no entry point
            assert rows[name]["status"] == "loaded", rows[name]
            assert rows[name]["path"].startswith(site) and rows[name]["editable"] is False, rows[name]

    prefix = _network_namespace()
    if prefix is None:
        warnings.warn("no network namespace here: served with HF_HUB_OFFLINE=1 only", stacklevel=1)
    work = tmp_path / "serve"
    work.mkdir()
    served = subprocess.run(
        [*(prefix or []), str(python), str(HERE / "offline_serve.py"), str(bindir / "lamina"), str(work)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert served.returncode == 0, f"serving failed:\n{served.stdout}\n{served.stderr[-4000:]}"
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["network_cut"] is (prefix is not None), result
    assert result["chat"]["content"].strip(), result
    assert 0 < result["chat"]["usage"]["completion_tokens"] <= 8, result
    assert result["embedding_dims"] == 384, result
    assert result["exit_code"] == 0, result["log_tail"]
    print(
        f"\nfresh venv: `pip install --find-links DIR {DISTRIBUTION}` took {install_seconds:.0f} s, "
        f"venv {size} MB; {len(needed)} in-repo wheels ({', '.join(needed)}); network cut while "
        f"serving: {result['network_cut']}; ready in {result['ready_seconds']} s; chat: "
        f"{result['chat']['content']!r}"
    )
