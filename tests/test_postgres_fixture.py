"""On a machine without PostgreSQL the PostgreSQL tests skip, naming the Debian package; CI fails them.

Runs a generated test that uses the ``postgres_server`` fixture in a child pytest, with
``LAMINA_PG_BIN`` pointing at a directory that holds no PostgreSQL (as on a fresh machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TEST = """
def test_needs_postgres(postgres_server):
    raise AssertionError("ran without PostgreSQL")
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_generated.py").write_text(TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the repository's ini options out
    empty = tmp_path / "no-postgres"
    empty.mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k != "LAMINA_REQUIRE_POSTGRES"}
    full_env.update({"LAMINA_PG_BIN": str(empty), **env})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


def test_missing_postgresql_skips_with_the_package_to_install(tmp_path: Path) -> None:
    out = _run(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 skipped" in out.stdout
    assert "PostgreSQL server binaries (initdb, pg_ctl) not found" in out.stdout
    assert "Debian package postgresql" in out.stdout


def test_ci_requires_postgresql(tmp_path: Path) -> None:
    out = _run(tmp_path, LAMINA_REQUIRE_POSTGRES="1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 error" in out.stdout and "LAMINA_REQUIRE_POSTGRES=1" in out.stdout
