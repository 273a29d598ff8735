"""Fixtures for services that the tests start themselves (PostgreSQL)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.testing.postgres import PostgresServer, start_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback for the whole session (trust auth, user ``postgres``).

    Missing binaries fail the test with the install command; set ``LAMINA_SKIP_POSTGRES=1`` to skip
    instead on a machine without PostgreSQL.
    """
    # A directory the postgres user can enter (pytest's tmp dirs are private to root).
    base = Path(tempfile.mkdtemp(prefix="lamina-pg-"))
    os.chmod(base, 0o755)
    try:
        server = start_postgres(base)
    except FileNotFoundError as exc:
        if os.environ.get("LAMINA_SKIP_POSTGRES") == "1":
            pytest.skip(str(exc))
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
