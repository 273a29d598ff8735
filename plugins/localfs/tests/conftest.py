"""Fixtures: the metadata store section for each backend (SQLite file, or a fresh table on the real
PostgreSQL of the ``postgres_server`` fixture) and an in-process localfs provider."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lamina.providers.base import ProviderContext
from lamina.specs import Api
from lamina.testing.postgres import PostgresServer
from lamina_localfs.config import LocalfsFilesImplConfig
from lamina_localfs.provider import LocalfsFilesImpl


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A ``metadata_store`` config section for each backend."""
    if request.param == "sqlite":
        return {"type": "sqlite", "db_path": str(tmp_path / "files_metadata.db")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"files_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def make_provider(tmp_path: Path, metadata_store: dict[str, Any]) -> AsyncIterator[Callable[..., Any]]:
    """Start an in-process provider (same storage_dir and metadata every time); all are shut down after."""
    started: list[LocalfsFilesImpl] = []

    async def make(**config: Any) -> LocalfsFilesImpl:
        cfg = LocalfsFilesImplConfig.model_validate(
            {"storage_dir": str(tmp_path / "files"), "metadata_store": metadata_store, **config}
        )
        context = ProviderContext(
            api=Api.files,
            provider_id="localfs",
            provider_type="inline::localfs",
            state_dir=tmp_path / "state",
        )
        provider = LocalfsFilesImpl(cfg, context)
        await provider.initialize()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        await provider.shutdown()


@pytest.fixture
async def provider(make_provider: Callable[..., Any]) -> LocalfsFilesImpl:
    return await make_provider()
