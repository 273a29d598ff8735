"""``lamina new-plugin``: the generated package installs and passes its conformance kit as generated,
and PLUGIN_GUIDE.md's example is that generated code.

The package is built and installed non-editable (``pip install --no-deps --target``, as a wheel from
PyPI would be) into a directory of its own, put on ``PYTHONPATH`` of a pytest run in the package's
own directory: its ``pyproject.toml`` ini options apply (``--strict-markers``), and the ``lamina run``
the kit starts sees the plugin through its entry point. Nothing is installed into this environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lamina import scaffold

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "PLUGIN_GUIDE.md"


def _lamina(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.e2e
@pytest.mark.parametrize("api", scaffold.apis())
def test_a_generated_plugin_installs_and_passes_its_kit(api: str, tmp_path: Path) -> None:
    created = _lamina("new-plugin", "echo", "--api", api, "--output", str(tmp_path), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    package = tmp_path / "lamina-echo"
    assert f"created {package}" in created.stdout
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    install = subprocess.run(
        [*pip, "--disable-pip-version-check", "--target", str(site), str(package)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert list(site.glob("lamina_echo-0.1.0.dist-info")), "installed as a built distribution"
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    listed = subprocess.run(
        [sys.executable, "-m", "lamina.cli", "plugins"], env=env, capture_output=True, text=True, timeout=120
    )
    assert re.search(r"lamina-echo .*: loaded", listed.stdout), listed.stdout + listed.stderr
    # The kit, as generated, from the package's own directory (its ini options: --strict-markers).
    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = kit.stdout + kit.stderr
    assert kit.returncode == 0, out
    passed = int(re.search(r"(\d+) passed", out).group(1))  # type: ignore[union-attr]
    assert passed >= 5 and " failed" not in out, out


def test_names_and_targets_are_checked(tmp_path: Path) -> None:
    bad = _lamina("new-plugin", "Echo_Bot", cwd=tmp_path)
    assert bad.returncode != 0 and "plugin name 'Echo_Bot'" in bad.stderr and "lowercase" in bad.stderr
    assert _lamina("new-plugin", "echo", cwd=tmp_path).returncode == 0
    again = _lamina("new-plugin", "echo", cwd=tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_the_template_fills_every_placeholder() -> None:
    for api in scaffold.apis():
        for path, text in scaffold.render("acme-guard", api).items():
            assert "{{" not in text and "}}" not in text, (api, path)
            assert "acme_guard" in path or not path.startswith("src/"), path


def guide_blocks() -> dict[str, str]:
    """The code blocks of PLUGIN_GUIDE.md that name a generated file on their first line (``# path``)."""
    blocks = {}
    for body in re.findall(r"```(?:python|toml)\n(.*?)```", GUIDE.read_text(), flags=re.S):
        first, _, rest = body.partition("\n")
        match = re.fullmatch(r"# (lamina-echo/\S+)", first)
        if match:
            blocks[match.group(1)] = rest
    return blocks


def test_the_guides_example_is_the_generated_code() -> None:
    """PLUGIN_GUIDE.md walks through `lamina new-plugin echo`: each file it shows is the template's output."""
    generated = {f"lamina-echo/{path}": text for path, text in scaffold.render("echo", "inference").items()}
    shown = guide_blocks()
    expected = {"pyproject.toml", "src/lamina_echo/plugin.py", "src/lamina_echo/provider.py"}
    assert {f"lamina-echo/{p}" for p in expected} <= set(shown), sorted(shown)
    for path, text in shown.items():
        assert text == generated[path], f"PLUGIN_GUIDE.md's {path} differs from `lamina new-plugin echo`"


@pytest.mark.parametrize("api", scaffold.apis())
def test_the_generated_code_is_lint_clean(api: str, tmp_path: Path) -> None:
    """ruff with this repository's rules and line length, on a long plugin name."""
    package = scaffold.write(tmp_path, "acme-guard-service", api)
    rules = ["--line-length", "110", "--target-version", "py311"]
    check = [sys.executable, "-m", "ruff", "check", "--select", "E,F,W,I,B,UP,ASYNC,RUF", *rules, "."]
    fmt = [sys.executable, "-m", "ruff", "format", "--check", "--diff", *rules, "."]
    for argv in (check, fmt):
        result = subprocess.run(argv, cwd=package, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
