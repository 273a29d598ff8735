"""Fixtures for services that the tests start themselves (PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lamina.testing.postgres import PostgresServer, start_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback for the whole session (trust auth, user ``postgres``).

    Missing binaries fail the test with the install command; set ``LAMINA_SKIP_POSTGRES=1`` to skip
    instead on a machine without PostgreSQL.
    """
    yield from serve_postgres("lamina-pg-", start_postgres)


def serve_postgres(
    prefix: str,
    start: Callable[[Path], PostgresServer],
    errors: tuple[type[Exception], ...] = (FileNotFoundError,),
) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server in a new temporary directory, yield it, stop it and remove the directory.

    ``start(base)`` raising one of ``errors`` (missing binaries) fails the test with its message, or
    skips it when ``LAMINA_SKIP_POSTGRES=1``.
    """
    # A directory the postgres user can enter (pytest's tmp dirs are private to root).
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    try:
        server = start(base)
    except errors as exc:
        shutil.rmtree(base, ignore_errors=True)
        if os.environ.get("LAMINA_SKIP_POSTGRES") == "1":
            pytest.skip(str(exc))
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
