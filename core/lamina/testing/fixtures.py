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

    Missing binaries skip the test with the install command as the reason (the Debian package
    ``postgresql``); ``LAMINA_REQUIRE_POSTGRES=1`` (set by .ci/run) fails it instead.
    """
    yield from serve_postgres("lamina-pg-", start_postgres)


def serve_postgres(
    prefix: str,
    start: Callable[[Path], PostgresServer],
    errors: tuple[type[Exception], ...] = (FileNotFoundError,),
) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server in a new temporary directory, yield it, stop it and remove the directory.

    ``start(base)`` raising one of ``errors`` (missing binaries) skips the test with its message as
    the reason, so a fresh machine runs everything else; with ``LAMINA_REQUIRE_POSTGRES=1`` (CI,
    where a silent skip would hide a broken install) it fails the test instead.
    """
    # A directory the postgres user can enter (pytest's tmp dirs are private to root).
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    try:
        server = start(base)
    except errors as exc:
        shutil.rmtree(base, ignore_errors=True)
        if os.environ.get("LAMINA_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{exc} (LAMINA_REQUIRE_POSTGRES=1)")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
