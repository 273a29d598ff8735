"""Fixtures for the faiss provider's tests: providers built directly, without a server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_faiss.config import FaissVectorIOConfig
from lamina_faiss.provider import FaissVectorIOProvider, create_provider


async def _open(state_dir: Path, config: dict[str, Any]) -> FaissVectorIOProvider:
    context = ProviderContext(
        api=Api.vector_io, provider_id="faiss", provider_type="inline::faiss", state_dir=state_dir
    )
    provider = await create_provider(FaissVectorIOConfig.model_validate(config), {}, context)
    await provider.initialize()
    return provider


@pytest.fixture
async def make_provider(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[FaissVectorIOProvider]]]:
    """``await make_provider(**config)``: a started provider keeping its state in ``tmp_path``
    (or in ``state_dir=...``, to play another machine).

    Every provider made is shut down after the test (again, if the test did already: harmless).
    """
    opened: list[FaissVectorIOProvider] = []

    async def make(state_dir: Path | None = None, **config: Any) -> FaissVectorIOProvider:
        provider = await _open(state_dir or tmp_path, config)
        opened.append(provider)
        return provider

    yield make
    for provider in opened:
        await provider.shutdown()


@pytest.fixture(params=["hnsw", "flat"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each index kind in turn."""
    return request.param
