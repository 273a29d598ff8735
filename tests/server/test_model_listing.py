"""Models an inference provider lists (``list_models``): registered by the core, kept in sync.

The provider is a small in-test plugin (registered with ``PluginManager.register``, as
tests/plugins/test_hooks.py does) whose "backend" is a ``Backend`` object the test edits; the
stack is a real one on SQLite, started and shut down as the server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import types
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel
from structlog.testing import capture_logs

from lamina.apis.models import Model, RegisterModelRequest
from lamina.config import parse_run_config
from lamina.errors import BadRequestError, UpstreamError
from lamina.hookspecs import hookimpl
from lamina.plugins import PluginManager
from lamina.providers import ProviderBase
from lamina.resources.models import LISTED
from lamina.server.app import create_app
from lamina.specs import Api, ProviderSpec
from lamina.stack import DEFAULT_REFRESH_INTERVAL, Stack

MODULE = "lamina_test_model_listing"
LISTING = "remote::test-listing"
PLAIN = "remote::test-plain"


@dataclass
class Backend:
    """What a provider's backend serves: identifier -> (model_type, metadata)."""

    models: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    down: bool = False
    refused: set[str] = field(default_factory=set)
    listings: int = 0
    unregistered: list[str] = field(default_factory=list)

    def serve(self, *names: str, model_type: str = "llm", **metadata: Any) -> None:
        for name in names:
            self.models[name] = (model_type, dict(metadata))


BACKENDS: dict[str, Backend] = {}  # provider_id -> its backend, for the test running


class ListingConfig(BaseModel):
    refresh: bool = False
    refresh_interval: Any = None


class ListingProvider(ProviderBase):
    def __init__(self, config: ListingConfig, context) -> None:
        super().__init__(context)
        self.config = config
        self.backend = BACKENDS[context.provider_id]
        if config.refresh_interval is not None:
            self.refresh_interval = config.refresh_interval

    async def list_models(self) -> list[Model]:
        self.backend.listings += 1
        if self.backend.down:
            raise UpstreamError(self.provider_id, "cannot connect to the backend")
        return [
            Model(
                identifier=name,
                provider_resource_id=f"upstream/{name}",
                provider_id=self.provider_id,
                model_type=model_type,
                metadata=metadata,
            )
            for name, (model_type, metadata) in self.backend.models.items()
        ]

    async def should_refresh_models(self) -> bool:
        return self.config.refresh

    async def register_model(self, model: Model) -> Model:
        if model.identifier in self.backend.refused:
            raise BadRequestError(f"the backend refuses {model.identifier}")
        return model

    async def unregister_model(self, model: Model) -> None:
        self.backend.unregistered.append(model.identifier)


class PlainProvider(ProviderBase):
    """A provider that cannot list (ProviderBase's defaults)."""

    def __init__(self, config: ListingConfig, context) -> None:
        super().__init__(context)

    async def register_model(self, model: Model) -> Model:
        return model


async def create_listing(config: ListingConfig, deps: dict, context) -> ListingProvider:
    return ListingProvider(config, context)


async def create_plain(config: ListingConfig, deps: dict, context) -> PlainProvider:
    return PlainProvider(config, context)


@pytest.fixture(autouse=True)
def provider_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The factories and config class importable by the stack (``import_object``) as MODULE."""
    module = types.ModuleType(MODULE)
    module.ListingConfig = ListingConfig
    module.create_listing = create_listing
    module.create_plain = create_plain
    monkeypatch.setitem(sys.modules, MODULE, module)
    BACKENDS.clear()


def plugin_manager() -> PluginManager:
    def lamina_inference_providers() -> list[ProviderSpec]:
        return [
            ProviderSpec(
                api=Api.inference,
                provider_type=provider_type,
                config_class=f"{MODULE}:ListingConfig",
                factory=f"{MODULE}:{factory}",
            )
            for provider_type, factory in ((LISTING, "create_listing"), (PLAIN, "create_plain"))
        ]

    plugin = types.ModuleType("lamina_test_listing_plugin")
    plugin.lamina_inference_providers = hookimpl(lamina_inference_providers)
    pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
    pm.register(plugin, name="test_listing", distribution="lamina-test-listing", version="0.0.1")
    return pm


def make_stack(tmp_path: Path, providers: dict[str, dict[str, Any]], models: list | None = None) -> Stack:
    """``providers``: provider_id -> config (``type`` picks PLAIN instead of LISTING)."""
    entries = []
    for provider_id, config in providers.items():
        config = dict(config)
        provider_type = config.pop("type", LISTING)
        BACKENDS.setdefault(provider_id, Backend())
        entries.append({"provider_id": provider_id, "provider_type": provider_type, "config": config})
    doc = {
        "version": 2,
        "image_name": "listing",
        "providers": {"inference": entries},
        "models": models or [],
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "inference_store": {"type": "sqlite", "db_path": str(tmp_path / "inference.db")},
    }
    return Stack.build(parse_run_config(doc, source="listing.yaml", env={}), plugin_manager())


@contextlib.asynccontextmanager
async def started(stack: Stack) -> AsyncIterator[Stack]:
    await stack.start()
    try:
        yield stack
    finally:
        await stack.shutdown()


async def registered(stack: Stack) -> dict[str, Model]:
    return {m.identifier: m for m in await stack.models.list()}


async def eventually(check: Callable[[], Any]) -> None:
    """Poll ``check`` (a coroutine function) for up to 5 seconds."""
    for _ in range(250):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


# -- start-up --------------------------------------------------------------------------------------


async def test_listed_models_are_registered_at_start(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, {"a": {}})
    BACKENDS["a"].serve("small", family="tiny")
    BACKENDS["a"].serve("embedder", model_type="embedding", embedding_dimension=8)
    async with started(stack):
        models = await registered(stack)
        assert set(models) == {"small", "embedder"}
        assert models["small"].provider_id == "a"
        assert models["small"].provider_resource_id == "upstream/small"
        assert models["small"].metadata == {"family": "tiny", "source": LISTED}
        assert models["embedder"].model_type == "embedding"
        assert models["embedder"].embedding_dimension == 8
        assert stack.refreshers == {}, "no loop for a provider that does not ask for refreshes"
    assert BACKENDS["a"].listings == 1


async def test_listed_models_are_served_when_the_server_answers(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, {"a": {}})
    BACKENDS["a"].serve("small")
    client = TestClient(TestServer(create_app(stack)))
    await client.start_server()
    try:
        assert (await client.get("/v1/health")).status == 200
        listed = (await (await client.get("/v1/models")).json())["data"]
        assert [(m["identifier"], m["metadata"]) for m in listed] == [("small", {"source": LISTED})]
        assert [m["id"] for m in (await (await client.get("/v1/openai/v1/models")).json())["data"]] == [
            "small"
        ]
    finally:
        await client.close()


async def test_a_provider_that_cannot_list_changes_nothing(tmp_path: Path) -> None:
    stack = make_stack(
        tmp_path,
        {"plain": {"type": PLAIN}},
        models=[{"model_id": "m", "provider_id": "plain", "provider_model_id": "m"}],
    )
    async with started(stack):
        assert set(await registered(stack)) == {"m"}
        assert stack.refreshers == {}


async def test_a_provider_whose_listing_fails_does_not_stop_start_up(tmp_path: Path) -> None:
    stack = make_stack(
        tmp_path,
        {"a": {}, "b": {}},
        models=[{"model_id": "configured", "provider_id": "a", "provider_model_id": "x"}],
    )
    BACKENDS["a"].down = True
    BACKENDS["a"].serve("from-a")
    BACKENDS["b"].serve("from-b")
    with capture_logs() as logs:
        async with started(stack):
            assert set(await registered(stack)) == {"configured", "from-b"}
    (warning,) = [e for e in logs if e["event"] == "provider_models_not_listed"]
    assert warning["log_level"] == "warning" and warning["provider_id"] == "a"
    assert "cannot connect" in warning["error"]


async def test_a_listing_that_fails_keeps_what_was_listed_before(tmp_path: Path) -> None:
    BACKENDS["a"] = Backend()
    BACKENDS["a"].serve("kept")
    async with started(make_stack(tmp_path, {"a": {}})):
        pass
    BACKENDS["a"].down = True
    async with started(stack := make_stack(tmp_path, {"a": {}})):
        assert set(await registered(stack)) == {"kept"}, "a backend that is down removes nothing"


async def test_a_model_the_provider_refuses_is_skipped(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, {"a": {}})
    BACKENDS["a"].serve("good", "bad")
    BACKENDS["a"].refused.add("bad")
    async with started(stack):
        assert set(await registered(stack)) == {"good"}


async def test_changes_since_the_last_start_are_applied(tmp_path: Path) -> None:
    """The registry persists; the next start-up adds, updates and removes listed models."""
    BACKENDS["a"] = Backend()
    BACKENDS["a"].serve("stays", "changes", "goes")
    async with started(make_stack(tmp_path, {"a": {}})):
        pass
    backend = BACKENDS["a"]
    backend.models.pop("goes")
    backend.serve("changes", model_type="embedding", embedding_dimension=4)
    backend.serve("new")
    async with started(stack := make_stack(tmp_path, {"a": {}})):
        models = await registered(stack)
        assert set(models) == {"stays", "changes", "new"}
        assert models["changes"].model_type == "embedding"
        assert models["changes"].metadata == {"embedding_dimension": 4, "source": LISTED}
    assert backend.unregistered == ["goes"], "a removed model is unregistered from its provider"


# -- who wins --------------------------------------------------------------------------------------


async def test_config_models_win_over_listed_ones(tmp_path: Path) -> None:
    models = [{"model_id": "shared", "provider_id": "a", "provider_model_id": "mine", "metadata": {"k": 1}}]
    stack = make_stack(tmp_path, {"a": {}}, models=models)
    BACKENDS["a"].serve("shared", model_type="embedding", embedding_dimension=3)
    BACKENDS["a"].serve("other")
    async with started(stack):
        shared = (await registered(stack))["shared"]
        assert (shared.provider_resource_id, shared.model_type, shared.metadata) == ("mine", "llm", {"k": 1})
        BACKENDS["a"].models.clear()
        result = await stack.models.sync_listed("a", [])
        assert result.removed == ["other"]
        assert set(await registered(stack)) == {"shared"}, "a config model is never removed by a listing"


async def test_user_models_win_over_listed_ones(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, {"a": {}})
    async with started(stack):
        await stack.models.register_model(
            RegisterModelRequest(model_id="mine", provider_id="a", provider_model_id="upstream/mine")
        )
        listing = [Model(identifier="mine", provider_id="a", model_type="embedding", metadata={"x": 1})]
        result = await stack.models.sync_listed("a", listing)
        assert result.added == result.updated == result.removed == []
        mine = (await registered(stack))["mine"]
        assert (mine.model_type, mine.metadata) == ("llm", {})
        await stack.models.sync_listed("a", [])
        assert "mine" in await registered(stack), "a user's model is never removed by a listing"


async def test_another_providers_model_is_not_taken_over(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, {"a": {}, "b": {}})
    BACKENDS["a"].serve("shared", owner="a")
    BACKENDS["b"].serve("shared", owner="b")
    BACKENDS["b"].serve("only-b")
    async with started(stack):
        models = await registered(stack)
        assert models["shared"].provider_id == "a" and models["shared"].metadata["owner"] == "a"
        assert models["only-b"].provider_id == "b"
        # b no longer listing "shared" does not remove a's.
        result = await stack.models.sync_listed("b", [])
        assert result.removed == ["only-b"]
        assert (await registered(stack))["shared"].provider_id == "a"


async def test_the_listed_marker_is_set_by_the_core_and_results_are_reported(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, {"a": {}})
    async with started(stack):
        first = await stack.models.sync_listed(
            "a", [Model(identifier="m", provider_id="ignored", metadata={"source": "whatever"})]
        )
        assert first.added == ["m"]
        m = (await registered(stack))["m"]
        assert m.provider_id == "a" and m.metadata == {"source": LISTED}
        again = await stack.models.sync_listed("a", [Model(identifier="m", provider_id="a")])
        assert again.added == again.updated == again.removed == [], "an unchanged listing changes nothing"
        changed = await stack.models.sync_listed(
            "a", [Model(identifier="m", provider_id="a", metadata={"v": 2})]
        )
        assert changed.updated == ["m"]


# -- the refresh loop ------------------------------------------------------------------------------


async def test_the_refresh_loop_picks_up_changes_and_stops_on_shutdown(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, {"a": {"refresh": True, "refresh_interval": 0.05}, "b": {}})
    backend = BACKENDS["a"]
    backend.serve("first")
    await stack.start()
    try:
        assert set(stack.refreshers) == {"a"}, "only the provider asking for refreshes gets a loop"
        task = stack.refreshers["a"]
        assert set(await registered(stack)) == {"first"}
        backend.serve("second")
        await eventually(lambda: _has(stack, "second"))
        backend.models.pop("first")
        await eventually(lambda: _lacks(stack, "first"))
        # A failing listing is logged; the loop goes on and the registered models stay.
        backend.down = True
        seen = backend.listings
        with capture_logs() as logs:
            await eventually(lambda: _true(backend.listings >= seen + 2))
        assert any(e["event"] == "provider_models_not_listed" for e in logs)
        assert not task.done() and set(await registered(stack)) == {"second"}
        backend.down = False
        backend.serve("third")
        await eventually(lambda: _has(stack, "third"))
    finally:
        await stack.shutdown()
    assert task.cancelled() and stack.refreshers == {}
    after = backend.listings
    await asyncio.sleep(0.2)
    assert backend.listings == after, "no listing after shutdown"


async def test_refresh_interval_defaults_to_60_seconds(tmp_path: Path) -> None:
    for interval in (None, 0, -1, "soon", True):
        BACKENDS.clear()
        (where := tmp_path / str(interval)).mkdir()
        stack = make_stack(where, {"a": {"refresh": True, "refresh_interval": interval}})
        async with started(stack):
            listed = BACKENDS["a"].listings
            await asyncio.sleep(0.1)
            assert BACKENDS["a"].listings == listed, f"{interval!r}: the default interval is used"
    assert DEFAULT_REFRESH_INTERVAL == 60.0


async def _has(stack: Stack, identifier: str) -> bool:
    return identifier in await registered(stack)


async def _lacks(stack: Stack, identifier: str) -> bool:
    return identifier not in await registered(stack)


async def _true(value: bool) -> bool:
    return value
