"""``lamina new-plugin``: a new provider package from a template that passes its conformance kit.

The templates live in ``templates/`` (``common/`` for every API, one folder per API) as ``*.tmpl``
files with ``{{placeholder}}`` fields. ``render`` fills them in; ``write`` puts the package on disk.
tests/scaffold generates a package for each API, installs it and runs its kit as generated, and
checks that PLUGIN_GUIDE.md shows the generated code.
"""

from __future__ import annotations

import re
from pathlib import Path

from lamina import __version__

TEMPLATES = Path(__file__).parent / "templates"
# API -> the templates of its folder, by where each goes in the package.
LAYOUT = {
    "pyproject.toml": "common/pyproject.toml.tmpl",
    "README.md": "common/README.md.tmpl",
    "src/{package}/__init__.py": "common/__init__.py.tmpl",
    "src/{package}/plugin.py": "{api}/plugin.py.tmpl",
    "src/{package}/config.py": "{api}/config.py.tmpl",
    "src/{package}/provider.py": "{api}/provider.py.tmpl",
    "tests/test_conformance.py": "{api}/test_conformance.py.tmpl",
}
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def apis() -> list[str]:
    """The APIs a template exists for."""
    return sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir() and p.name != "common")


def fields(name: str, api: str, provider_type: str | None = None) -> dict[str, str]:
    """The placeholder values for plugin ``name`` (lowercase, digits and dashes: ``echo``, ``acme-guard``)."""
    if not NAME_RE.match(name):
        raise ValueError(
            f"plugin name {name!r}: use lowercase letters, digits and single dashes, starting with a letter "
            "(for example 'echo' or 'acme-guard'); the package becomes lamina-<name>"
        )
    if api not in apis():
        raise ValueError(f"--api {api!r}: no template for it; choose one of {', '.join(apis())}")
    major, minor = (int(part) for part in __version__.split(".")[:2])
    return {
        "name": name,
        "api": api,
        "dist": f"lamina-{name}",
        "package": f"lamina_{name.replace('-', '_')}",
        "Class": "".join(part.capitalize() for part in name.split("-")),
        "provider_type": provider_type or f"inline::{name}",
        "lamina_version": f"{major}.{minor}",
        # Before 1.0 a minor release may change the plugin contract; after it, a major one.
        "lamina_next": f"{major}.{minor + 1}" if major == 0 else f"{major + 1}",
    }


def render(name: str, api: str, provider_type: str | None = None) -> dict[str, str]:
    """Relative path -> text of every file of the new package."""
    values = fields(name, api, provider_type)
    files = {}
    for target, source in LAYOUT.items():
        text = (TEMPLATES / source.format(api=api)).read_text(encoding="utf-8")
        text = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)
        files[target.format(package=values["package"])] = text
    return files


def write(directory: Path, name: str, api: str, provider_type: str | None = None) -> Path:
    """Write the package to ``directory/lamina-<name>`` (which must not exist) and return that path."""
    files = render(name, api, provider_type)
    root = directory / f"lamina-{name}"
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another name or directory (--output)")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
