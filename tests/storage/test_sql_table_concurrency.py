"""Several processes (replicas) opening one store's table at the same moment, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from lamina.jobs import jobs_store_config, open_jobs_store
from lamina.testing.postgres import PostgresServer

pytestmark = pytest.mark.postgres


async def test_replicas_creating_a_new_table_at_once_all_start(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against itself: two sessions creating the
    same new table at once can fail with a unique violation on pg_type. Every replica must start."""
    for _ in range(5):  # a fresh table each round: the race is at creation
        section = postgres_server.kvstore_config(table_name=f"race_{uuid.uuid4().hex[:12]}")
        config = jobs_store_config(section, tmp_path / "unused.db")
        stores = await asyncio.gather(*(open_jobs_store(config) for _ in range(8)), return_exceptions=True)
        failures = [s for s in stores if isinstance(s, BaseException)]
        for store in stores:
            if not isinstance(store, BaseException):
                await store.close()
        assert not failures, failures[0]
