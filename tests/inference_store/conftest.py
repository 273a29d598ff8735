"""Fixtures: an inference store on SQLite (a file per test) or on the real PostgreSQL (a table per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lamina.storage.inference_store import InferenceStore, inference_store_config, open_inference_store
from lamina.testing.postgres import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """A run config ``inference_store`` section for each backend."""
    if request.param == "sqlite":
        return {"type": "sqlite", "db_path": str(tmp_path / "inference_store.db")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"cc_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(store_section: dict, tmp_path: Path) -> AsyncIterator[InferenceStore]:
    opened = await open_inference_store(inference_store_config(store_section, tmp_path))
    try:
        yield opened
    finally:
        await opened.close()
