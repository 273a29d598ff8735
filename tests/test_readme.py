"""Every snippet of README.md that talks to a server runs on its own against a real ``lamina run``.

Each Python snippet runs in a fresh interpreter (so it must carry its own imports and client), each
``curl`` snippet in bash, against the local distribution (``local_lamina``: what ``hatch run serve``
starts), with the README's ``http://localhost:8321`` pointed at that server.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
README_URL = "http://localhost:8321"


def snippets(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


PYTHON = snippets("python")
CURL = [s for s in snippets("bash") if s.startswith("curl ")]


def _id(snippet: str) -> str:
    skip = ("#", "from ", "import ")
    lines = [line for line in snippet.splitlines() if line.strip() and not line.startswith(skip)]
    return lines[0][:40] if lines else snippet[:40]


def test_the_readme_has_snippets_to_run() -> None:
    assert len(PYTHON) >= 3 and len(CURL) >= 2
    assert all(README_URL in s for s in PYTHON + CURL), "every snippet talks to the server"


@pytest.mark.parametrize("snippet", PYTHON, ids=_id)
def test_python_snippet_runs_on_its_own(snippet: str, local_lamina: ServerProcess) -> None:
    out = subprocess.run(
        [sys.executable, "-c", snippet.replace(README_URL, local_lamina.url)],
        capture_output=True,
        text=True,
        timeout=600,  # "does not hang" only: SmolLM2 is slow on a busy 2-core machine
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip(), "the snippet prints its result"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
@pytest.mark.parametrize("snippet", CURL, ids=_id)
def test_curl_snippet_answers_json(snippet: str, local_lamina: ServerProcess) -> None:
    command = snippet.replace(README_URL, local_lamina.url).replace("\\\n", " ")
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert "error" not in body and "detail" not in body, body
