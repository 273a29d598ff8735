"""Repository conventions: the README's two commands, CI running the same test command, module size."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lamina.config import load_run_config
from lamina.plugins import load_plugin_manager
from lamina.stack import Stack

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    commands = quick_start_commands()
    assert len(commands) >= 2
    serve, test = commands[0], commands[1]
    assert "hatch run serve" in serve and "hatch run test" in test
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci, ".ci/run must run the README's test command verbatim"


def test_the_serve_environment_holds_only_what_serving_needs() -> None:
    """`hatch run X` builds the default environment first, so `hatch run serve` must not pull in the
    tests' 1 GB (Chroma server, embedded PostgreSQL, ruff, pytest, ...): those live in `dev`."""
    envs = tomllib.loads((ROOT / "hatch.toml").read_text())["envs"]
    default, dev = envs["default"], envs["dev"]
    assert default["workspace"]["members"] == ["plugins/*", "models/*"]
    # Heavy plugins (ray: an 80 MB wheel and its own processes; torch for training) are the dev env's only.
    assert default["workspace"]["exclude"] == [
        "plugins/ray",
        "plugins/post-training-huggingface",
        "plugins/transformers",
    ]
    assert dev["workspace"] == {"members": ["plugins/*", "models/*"], "exclude": []}
    assert not default.get("dependencies") and not default.get("extra-dependencies"), (
        "serving needs the core and the plugins only: put test tools in [envs.dev]"
    )
    # The editable model package's GGUF is git-ignored: the scripts that run the model put it back first.
    assert default["scripts"]["serve"] == ["model-file", "lamina run {args}"]
    assert default["scripts"]["model-file"] == 'python "{root}/models/smollm2/model_file.py"'
    assert dev["scripts"]["test"] == ["model-file", "pytest {args}"]
    assert {"pytest>=8", "ruff==0.17.6", "llama-stack-client==0.2.12"} <= set(dev["dependencies"])
    for name in ("test", "lint", "fmt", "bench", "docs"):
        assert default["scripts"][name] == f"hatch run dev:{name} {{args}}"
        assert "hatch run" not in str(dev["scripts"][name]), f"dev's {name} must not hand over again"


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_run_configs_build(path: Path) -> None:
    config = load_run_config(path, env={"INFERENCE_MODEL": "my-model"})
    stack = Stack.build(config, load_plugin_manager())
    assert stack.order, "the example configures at least one provider"


def test_modules_stay_small() -> None:
    sources = [*ROOT.glob("core/**/*.py"), *ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("bench/**/*.py")]
    too_long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > 800}
    assert not too_long, f"split these modules (over 800 lines): {too_long}"


def test_lint_is_clean() -> None:
    """`hatch run lint` in CI's test run: ruff check and ruff format --check over the repo."""
    for args in (["check", "--quiet", "."], ["format", "--check", "--quiet", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_provider_health_lives_with_its_only_caller_and_inspect_does_not_import_the_stack() -> None:
    """The stack imports routers.inspect; inspect reads the stack through a Protocol (no cycle, not even
    under TYPE_CHECKING), and asks lamina.provider_health's monitor rather than probing providers itself."""
    inspect_source = (ROOT / "core/lamina/routers/inspect.py").read_text()
    assert not re.search(r"^\s*(from|import) lamina\.stack\b", inspect_source, re.M)
    probing = [
        p.relative_to(ROOT) for p in ROOT.glob("core/lamina/**/*.py") if "provider_health(" in p.read_text()
    ]
    assert probing == [Path("core/lamina/provider_health.py")]
