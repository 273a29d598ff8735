"""Fixtures shared by the core's in-process tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from lamina.resources.registry import ResourceRegistry
from lamina.storage import KVStoreConfig, open_kvstore


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[ResourceRegistry]:
    """A resource registry on a fresh SQLite KV store."""
    store = await open_kvstore(
        TypeAdapter(KVStoreConfig).validate_python({"type": "sqlite", "db_path": str(tmp_path / "r.db")})
    )
    registry = ResourceRegistry()
    await registry.attach(store)
    yield registry
    await store.close()
