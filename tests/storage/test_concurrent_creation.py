"""Several replicas opening one store's new table at the same moment, on a real PostgreSQL.

PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` is not safe against itself: two sessions creating the same
new table at once can fail with a unique violation on pg_type. Every replica must start all the same.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from lamina.jobs import jobs_store_config, open_jobs_store
from lamina.storage import KVStoreConfig, open_kvstore
from lamina.storage.inference_store import inference_store_config, open_inference_store
from lamina.testing.postgres import PostgresServer

pytestmark = pytest.mark.postgres

OPENERS: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
    "registry": lambda section: open_kvstore(TypeAdapter(KVStoreConfig).validate_python(section)),
    "jobs": lambda section: open_jobs_store(jobs_store_config(section, Path("unused.db"))),
    "inference": lambda section: open_inference_store(inference_store_config(section, Path("unused"))),
}


@pytest.mark.parametrize("store", sorted(OPENERS))
async def test_replicas_creating_a_new_table_at_once_all_start(
    postgres_server: PostgresServer, store: str
) -> None:
    for _ in range(5):  # a fresh table each round: the race is at creation
        section = postgres_server.kvstore_config(table_name=f"race_{uuid.uuid4().hex[:12]}")
        opened = await asyncio.gather(*(OPENERS[store](section) for _ in range(8)), return_exceptions=True)
        failures = [s for s in opened if isinstance(s, BaseException)]
        for each in opened:
            if not isinstance(each, BaseException):
                await each.close()
        assert not failures, failures[0]
