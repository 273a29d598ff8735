"""``lamina.api_table``: one entry serves a new API everywhere the server lists APIs.

The test adds an entry for Batch inference as its own API (one the server does not serve as such: its
routes are Inference's; Synthetic data generation and Post training were the last APIs added, the same
way), as the next API would be added: a Protocol with its route, a router, and the table
entry; nothing else in the core changes.
Its provider is the test distribution's GenericProvider (``lamina_test_alpha.provider``).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from lamina import api_table
from lamina.api_table import API_TABLE, SERVER_PROTOCOLS, ApiEntry, Built, provider_protocols, served_apis
from lamina.apis.inference import Inference, InferenceProvider
from lamina.apis.webmethod import routes_of, webmethod
from lamina.config import parse_run_config
from lamina.errors import ConfigError
from lamina.hookspecs import hookimpl
from lamina.plugins import PluginManager
from lamina.server.app import create_app
from lamina.specs import Api, ProviderSpec
from lamina.stack import Stack


class EchoRequest(BaseModel):
    text: str


class EchoResponse(BaseModel):
    answer: str


class BatchInferenceApi(Protocol):
    @webmethod("POST", "/v1/batch-inference/echo", request=EchoRequest, response=EchoResponse)
    async def echo(self, request: EchoRequest) -> EchoResponse:
        """Answer with the text, as the batch inference provider labels it."""
        ...


class BatchInferenceProvider(Protocol):
    config: Any


class BatchInferenceRouter:
    def __init__(self, providers: dict[str, Any]) -> None:
        self.providers = providers  # filled as providers start

    async def echo(self, request: EchoRequest) -> EchoResponse:
        provider = next(iter(self.providers.values()))
        return EchoResponse(answer=f"{provider.config.label}: {request.text}")


ECHO = ApiEntry(
    Api.batch_inference,
    (BatchInferenceApi,),
    BatchInferenceProvider,
    None,
    lambda stack: Built(BatchInferenceRouter(stack.impls[Api.batch_inference])),
)


def _stack(tmp_path: Path, installed: Any) -> Stack:
    installed("alpha")  # GenericProvider
    pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
    offer = ProviderSpec(
        api=Api.batch_inference,
        provider_type="inline::echo-bi",
        config_class="lamina_test_alpha.provider:GenericConfig",
        factory="lamina_test_alpha.provider:create_generic_provider",
    )
    module = types.ModuleType("lamina_test_echo_bi")
    module.lamina_batch_inference_providers = hookimpl(lambda: [offer])  # type: ignore[attr-defined]
    pm.register(module, name="echo_bi", distribution="lamina-test-echo")
    doc = {
        "version": 2,
        "image_name": "table",
        "providers": {
            "batch_inference": [
                {"provider_id": "a", "provider_type": "inline::echo-bi", "config": {"label": "L"}}
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
    }
    return Stack.build(parse_run_config(doc, source="table.yaml", env={}), pm)


def test_the_table_lists_each_api_once_with_its_protocols() -> None:
    apis = served_apis()
    assert apis == [
        Api.inference,
        Api.files,
        Api.vector_io,
        Api.tool_runtime,
        Api.safety,
        Api.datasetio,
        Api.scoring,
        Api.agents,
        Api.eval,
        Api.batches,
        Api.post_training,
        Api.synthetic_data_generation,
        Api.telemetry,
    ]
    assert dict(provider_protocols())[Api.inference] is InferenceProvider
    served = [p for entry in API_TABLE for p in (*entry.always_served, *entry.protocols)]
    assert len(served) == len(set(served)) and Inference in served
    assert not set(served) & set(SERVER_PROTOCOLS)


def test_an_api_missing_from_the_table_is_a_start_up_error(tmp_path: Path, installed: Any) -> None:
    with pytest.raises(ConfigError, match=r"does not serve the batch_inference API \(it serves: inference"):
        _stack(tmp_path, installed)


async def test_one_table_entry_serves_a_new_api_everywhere(
    tmp_path: Path, installed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_table, "API_TABLE", (*API_TABLE, ECHO))
    assert served_apis()[-1] == Api.batch_inference
    assert provider_protocols()[-1] == (Api.batch_inference, BatchInferenceProvider)
    stack = _stack(tmp_path, installed)
    assert (
        BatchInferenceApi,
        stack.protocol_impls[BatchInferenceApi],
        ["inline::echo-bi"],
    ) in stack.api_impls()
    async with TestClient(TestServer(create_app(stack))) as client:
        resp = await client.post("/v1/batch-inference/echo", json={"text": "hi"})
        assert resp.status == 200 and await resp.json() == {"answer": "L: hi"}
        routes = (await (await client.get("/v1/inspect/routes")).json())["data"]
        assert {
            "route": "/v1/batch-inference/echo",
            "method": "POST",
            "provider_types": ["inline::echo-bi"],
        } in routes
        openapi = await (await client.get("/openapi.json")).json()
        assert openapi["paths"]["/v1/batch-inference/echo"]["post"]["tags"] == ["BatchInferenceApi"]
        bad = await client.post("/v1/batch-inference/echo", json={})
        assert bad.status == 400 and "text: required, but missing" in (await bad.json())["detail"]
    assert [d.name for d in routes_of(BatchInferenceApi)] == ["echo"]
