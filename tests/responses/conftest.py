"""Fixtures: a responses store on SQLite (a file per test) or on the real PostgreSQL (a table per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lamina.storage.responses_store import ResponsesStore, open_responses_store, responses_store_config
from lamina.testing.postgres import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """A ``responses_store`` config section for each backend."""
    if request.param == "sqlite":
        return {"type": "sqlite", "db_path": str(tmp_path / "responses_store.db")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"resp_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(store_section: dict, tmp_path: Path) -> AsyncIterator[ResponsesStore]:
    opened = await open_responses_store(responses_store_config(store_section, tmp_path / "default.db"))
    try:
        yield opened
    finally:
        await opened.close()
