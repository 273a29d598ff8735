"""One test per hook in ``lamina.hookspecs``, each through a real plugin, asserting the hook's effect.

Hooks implemented by the test distributions are exercised through them, installed and loaded from
their entry points (``installed`` puts them on ``sys.path``). The API hooks of APIs that no test
distribution serves are exercised with a plugin module registered with ``PluginManager.register``
whose ProviderSpecs point at ``lamina_test_alpha.provider``'s GenericProvider: the stack must build
that provider with its validated config, hand it its context and dependencies, and initialise it.

``test_every_hook_has_a_test`` keeps this file complete as hooks are added.
"""

from __future__ import annotations

import ast
import contextlib
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import click
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from lamina import hookspecs
from lamina.api_table import entry_for, served_apis
from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.models import RegisterModelRequest
from lamina.cli import load_config_or_distribution
from lamina.config import RunConfig, parse_run_config
from lamina.errors import BadRequestError, ConfigError, PluginError
from lamina.hookspecs import API_HOOKS, RESOURCE_HOOKS, hookimpl
from lamina.plugins import PluginManager
from lamina.server.app import create_app
from lamina.specs import Api, DefaultResource, MiddlewareSpec, ProviderSpec, ResourceType, RouteSpec
from lamina.stack import Stack

GENERIC_CONFIG = "lamina_test_alpha.provider:GenericConfig"
GENERIC_FACTORY = "lamina_test_alpha.provider:create_generic_provider"


# -- helpers -------------------------------------------------------------------------------------


def plugin_module(name: str, **hooks: Callable[..., Any]) -> types.ModuleType:
    """A plugin module implementing ``hooks`` (hook name -> function), like one a package would hold."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def bare_manager(*, strict: bool = True) -> PluginManager:
    """A manager without entry points: only what the test registers."""
    return PluginManager(strict=strict, allow=(), deny=(), trace=False)


@pytest.fixture
def load(installed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., PluginManager]:
    """``load("alpha", "beta")``: a strict manager loading those test distributions' entry points.

    No other installed plugin (the in-repo ones included) is loaded.
    """
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path / "home"))

    def load(*names: str, strict: bool = True) -> PluginManager:
        installed(*names)
        allow = [f"lamina-test-{n}" for n in names]
        return PluginManager(strict=strict, allow=allow, deny=(), trace=False).load_entry_points()

    return load


def run_config(tmp_path: Path, providers: dict[str, list[dict[str, Any]]], **extra: Any) -> RunConfig:
    doc = {
        "version": 2,
        "image_name": "hooks",
        "providers": providers,
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        **extra,
    }
    return parse_run_config(doc, source="hooks.yaml", env={})


@contextlib.asynccontextmanager
async def started(stack: Stack) -> AsyncIterator[Stack]:
    await stack.start()
    try:
        yield stack
    finally:
        await stack.shutdown()


def alpha_entry(provider_id: str = "alpha", greeting: str = "hi") -> dict[str, Any]:
    return {
        "provider_id": provider_id,
        "provider_type": "remote::test-alpha",
        "config": {"greeting": greeting},
    }


def generic_plugin(api: Api, **spec: Any) -> tuple[types.ModuleType, str]:
    """A plugin offering ``inline::generic-<api>`` (the GenericProvider) from ``api``'s hook."""
    provider_type = f"inline::generic-{api.value.replace('_', '-')}"
    offer = ProviderSpec(
        api=api, provider_type=provider_type, config_class=GENERIC_CONFIG, factory=GENERIC_FACTORY, **spec
    )
    return plugin_module(
        f"lamina_test_generic_{api.value}", **{API_HOOKS[api.value]: lambda: [offer]}
    ), provider_type


# Vector IO computes embeddings through the Inference API, so the core refuses it alone.
NEEDS: dict[Api, list[Api]] = {Api.vector_io: [Api.inference]}


async def check_api_hook(api: Api, installed, tmp_path: Path) -> None:
    """The hook of ``api`` offers a provider type; the stack validates its config, creates and starts it."""
    installed("alpha")  # GenericProvider lives in lamina_test_alpha.provider
    hook = API_HOOKS[api.value]
    module, provider_type = generic_plugin(api)
    pm = bare_manager()
    pm.register(module, name=f"generic_{api.value}", distribution="lamina-test-generic", version="0.0.1")
    assert pm.plugins[f"generic_{api.value}"].hooks == [hook]
    assert list(pm.provider_specs(api)) == [provider_type]
    assert pm.provider_owner(api, provider_type) == "lamina-test-generic"
    assert all(provider_type not in pm.provider_specs(other) for other in Api if other != api)
    assert pm.contributions(f"generic_{api.value}")["providers"] == {api.value: [provider_type]}

    entries = [
        {"provider_id": "g2", "provider_type": provider_type, "config": {"label": "second"}},
        {"provider_id": "g1", "provider_type": provider_type, "config": {"label": "first"}},
    ]
    providers = {api.value: entries}
    if entry_for(api) is None:
        # Offered but not served (nothing in lamina.api_table): start-up names the API, not a silent no-op.
        served = ", ".join(a.value for a in served_apis())
        with pytest.raises(ConfigError) as info:
            Stack.build(run_config(tmp_path, providers), pm)
        assert str(info.value) == (
            f"hooks.yaml: providers.{api.value}[0]: {provider_type} is a {api.value} provider, but Lamina "
            f"does not serve the {api.value} API (it serves: {served}), so nothing would reach it. Remove "
            f"the provider, or disable it with an empty provider_id."
        )
        disabled = [{**entry, "provider_id": ""} for entry in entries]
        assert Stack.build(run_config(tmp_path, {api.value: disabled}), pm).order == []
        return
    for needed in NEEDS.get(api, []):  # APIs the core itself needs beside this one
        dep_module, dep_type = generic_plugin(needed)
        pm.register(
            dep_module, name=f"generic_{needed.value}", distribution="lamina-test-generic", version="0"
        )
        providers[needed.value] = [
            {"provider_id": "dep", "provider_type": dep_type, "config": {"label": "d"}}
        ]
    stack = Stack.build(run_config(tmp_path, providers), pm)
    assert [(r.api, r.provider_id) for r in stack.order if r.api == api] == [(api, "g1"), (api, "g2")]
    assert stack.providers[api]["g2"].config.model_dump() == {"label": "second"}
    assert stack.provider_types(api) == [provider_type]
    async with started(stack):
        for provider_id, label in (("g1", "first"), ("g2", "second")):
            impl = stack.impls[api][provider_id]
            assert type(impl).__name__ == "GenericProvider"
            assert impl.initialized, "the stack awaits initialize()"
            assert impl.config.label == label
            assert (impl.context.api, impl.context.provider_id, impl.context.provider_type) == (
                api,
                provider_id,
                provider_type,
            )
            assert impl.deps == {}
            assert stack.providers[api][provider_id].impl is impl

    # The spec's config class validates the run config's `config:`, naming the key.
    bad = run_config(
        tmp_path, {api.value: [{"provider_id": "g1", "provider_type": provider_type, "config": {}}]}
    )
    with pytest.raises(
        ConfigError, match=rf"providers\.{api.value}\[0\]\.config\.label: required, but missing"
    ):
        Stack.build(bad, pm)


async def check_resource_hook(rtype: ResourceType, params: dict[str, Any]) -> None:
    """The hook of ``rtype`` contributes validated default resources (records or dicts), sorted."""
    hook = RESOURCE_HOOKS[rtype.value]
    records = [
        DefaultResource(type=rtype, provider_type="inline::acme", identifier="zeta", params=params),
        {"type": rtype.value, "provider_type": "inline::acme", "identifier": "alpha"},  # dicts are accepted
    ]
    pm = bare_manager()
    pm.register(
        plugin_module("lamina_test_res", **{hook: lambda: records}), name="res", distribution="lamina-res"
    )
    got = pm.default_resources(rtype)
    assert [(r.type, r.provider_type, r.identifier) for r in got] == [
        (rtype, "inline::acme", "alpha"),
        (rtype, "inline::acme", "zeta"),
    ]
    assert got[1].params == params
    assert pm.contributions("res")["resources"] == {rtype.value: ["alpha", "zeta"]}
    assert all(pm.default_resources(other) == [] for other in ResourceType if other != rtype)

    # A record of another type is invalid: the plugin is reported and skipped, naming the right hook.
    other = next(t for t in ResourceType if t != rtype)
    wrong = [DefaultResource(type=other, provider_type="inline::acme", identifier="misfiled")]
    lax = bare_manager(strict=False)
    lax.register(plugin_module("lamina_test_wrong", **{hook: lambda: wrong}), name="wrong", distribution="x")
    assert lax.default_resources(rtype) == []
    assert lax.plugins["wrong"].status == "failed"
    assert (
        f"misfiled is a {other.value}; return it from {RESOURCE_HOOKS[other.value]}"
        in lax.plugins["wrong"].error
    )
    strict = bare_manager()
    strict.register(
        plugin_module("lamina_test_wrong", **{hook: lambda: wrong}), name="wrong", distribution="x"
    )
    with pytest.raises(PluginError, match="plugin 'wrong' from distribution 'x' is broken"):
        strict.default_resources(rtype)


# -- API hooks -----------------------------------------------------------------------------------


async def test_hook_lamina_inference_providers(load, tmp_path: Path) -> None:
    pm = load("alpha")
    spec = pm.provider_specs(Api.inference)["remote::test-alpha"]
    assert spec.factory == "lamina_test_alpha.provider:create_provider"
    assert pm.provider_owner(Api.inference, "remote::test-alpha") == "lamina-test-alpha"
    stack = Stack.build(run_config(tmp_path, {"inference": [alpha_entry(greeting="good day")]}), pm)
    async with started(stack):
        impl = stack.impls[Api.inference]["alpha"]
        assert type(impl).__name__ == "AlphaProvider" and impl.config.greeting == "good day"
        request = OpenAIChatCompletionRequest(
            model="alpha-default", messages=[{"role": "user", "content": "hi"}]
        )
        answer = await stack.routers[Api.inference].openai_chat_completion(request)
        assert answer["choices"][0]["message"]["content"] == "good day from alpha-upstream-1"
    # An unknown config key is refused by the provider's config class (extra="forbid").
    with pytest.raises(ConfigError, match=r"providers\.inference\[0\]\.config\.colour"):
        Stack.build(run_config(tmp_path, {"inference": [{**alpha_entry(), "config": {"colour": "red"}}]}), pm)


async def test_hook_lamina_safety_providers(load, tmp_path: Path) -> None:
    pm = load("beta")
    assert list(pm.provider_specs(Api.safety)) == ["inline::test-beta"]
    assert "inline::test-beta" not in pm.provider_specs(Api.inference)
    entry = {"provider_id": "beta", "provider_type": "inline::test-beta", "config": {}}
    stack = Stack.build(run_config(tmp_path, {"safety": [entry]}), pm)
    async with started(stack):
        impl = stack.impls[Api.safety]["beta"]
        assert (impl.context.api, impl.context.provider_type) == (Api.safety, "inline::test-beta")
        assert impl.provider_id == "beta"
        assert impl.shields == {"beta-shield"}  # the plugin's default shield, registered at start-up
        [shield] = await stack.shields.list()
        assert (shield.identifier, shield.provider_id) == ("beta-shield", "beta")
    # A provider returned from the wrong API's hook is invalid: its plugin is reported and skipped.
    misfiled = ProviderSpec(
        api=Api.safety, provider_type="inline::misfiled", config_class="x:y", factory="x:z"
    )
    lax = bare_manager(strict=False)
    lax.register(
        plugin_module("m", lamina_inference_providers=lambda: [misfiled]), name="m", distribution="d"
    )
    assert lax.provider_specs(Api.safety) == {} and lax.provider_specs(Api.inference) == {}
    assert lax.plugins["m"].error == (
        "hook lamina_inference_providers returned an invalid value: inline::misfiled is a safety provider; "
        "return it from lamina_safety_providers"
    )


async def test_hook_lamina_agents_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.agents, installed, tmp_path)


async def test_api_dependencies_start_first_and_reach_the_provider(load, tmp_path: Path) -> None:
    """A tool runtime depending on Inference: the stack starts inference first and hands it its router."""
    pm = load("alpha")
    module, provider_type = generic_plugin(Api.tool_runtime, api_dependencies=[Api.inference])
    pm.register(module, name="generic_tool_runtime", distribution="lamina-test-generic")
    assert pm.provider_specs(Api.tool_runtime)[provider_type].api_dependencies == [Api.inference]
    tools = [{"provider_id": "tools", "provider_type": provider_type, "config": {"label": "meta"}}]
    stack = Stack.build(run_config(tmp_path, {"tool_runtime": tools, "inference": [alpha_entry()]}), pm)
    assert [r.provider_id for r in stack.order] == ["alpha", "tools"], "dependencies start first"
    async with started(stack):
        impl = stack.impls[Api.tool_runtime]["tools"]
        assert impl.initialized and impl.config.label == "meta"
        assert impl.deps == {Api.inference: stack.routers[Api.inference]}
    with pytest.raises(
        ConfigError,
        match=r"providers\.tool_runtime\[0\]: inline::generic-tool-runtime needs the inference API",
    ):
        Stack.build(run_config(tmp_path, {"tool_runtime": tools}), pm)


async def test_hook_lamina_tool_runtime_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.tool_runtime, installed, tmp_path)


async def test_hook_lamina_vector_io_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.vector_io, installed, tmp_path)


async def test_hook_lamina_files_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.files, installed, tmp_path)


async def test_hook_lamina_datasetio_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.datasetio, installed, tmp_path)


async def test_hook_lamina_scoring_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.scoring, installed, tmp_path)


async def test_hook_lamina_eval_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.eval, installed, tmp_path)


async def test_hook_lamina_telemetry_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.telemetry, installed, tmp_path)


async def test_hook_lamina_batch_inference_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.batch_inference, installed, tmp_path)


async def test_hook_lamina_batches_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.batches, installed, tmp_path)


async def test_hook_lamina_post_training_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.post_training, installed, tmp_path)


async def test_hook_lamina_synthetic_data_generation_providers(installed, tmp_path: Path) -> None:
    await check_api_hook(Api.synthetic_data_generation, installed, tmp_path)


# -- resource hooks ------------------------------------------------------------------------------


async def test_hook_lamina_models(load, tmp_path: Path) -> None:
    pm = load("alpha")
    # Registered once, for the first configured provider of the type, with the plugin's fields.
    providers = {"inference": [alpha_entry("p2"), alpha_entry("p1")]}
    async with started(Stack.build(run_config(tmp_path / "a", providers), pm)) as stack:
        [model] = await stack.models.list()
        assert (model.identifier, model.provider_id, model.provider_resource_id) == (
            "alpha-default",
            "p2",
            "alpha-upstream-1",
        )
        assert model.metadata == {"contributed_by": "lamina-test-alpha"}
        assert "alpha-default" in stack.impls[Api.inference]["p2"].registered, "the provider saw it"
    # The run config's own definition of the identifier wins.
    mine = [{"model_id": "alpha-default", "provider_id": "p1", "provider_model_id": "mine"}]
    async with started(Stack.build(run_config(tmp_path / "b", providers, models=mine), pm)) as stack:
        [model] = await stack.models.list()
        assert (model.provider_id, model.provider_resource_id) == ("p1", "mine")
    # No provider of the type configured: no default model.
    module, generic_type = generic_plugin(Api.inference)
    pm.register(module, name="generic_inference", distribution="lamina-test-generic")
    generic = {"inference": [{"provider_id": "g", "provider_type": generic_type, "config": {"label": "x"}}]}
    async with started(Stack.build(run_config(tmp_path / "c", generic), pm)) as stack:
        assert await stack.models.list() == []


async def test_a_refused_default_model_is_skipped_and_start_up_goes_on(load, tmp_path: Path) -> None:
    """The one rule PLUGIN_GUIDE.md and docs/hooks.md state: a default the provider or a veto refuses is
    logged (``default_resource_not_registered``), never a start-up failure; the other defaults stay."""
    pm = load("alpha", "beta")  # beta vetoes model ids starting with "forbidden-"
    refused = DefaultResource(
        type=ResourceType.model, provider_type="remote::test-alpha", identifier="forbidden-default"
    )
    pm.register(plugin_module("lamina_test_refused", lamina_models=lambda: [refused]), name="refused")
    beta = {"provider_id": "b", "provider_type": "inline::test-beta"}
    providers = {"inference": [alpha_entry("p1")], "safety": [beta]}
    async with started(Stack.build(run_config(tmp_path, providers), pm)) as stack:
        assert [m.identifier for m in await stack.models.list()] == ["alpha-default"]


async def test_hook_lamina_shields(load) -> None:
    pm = load("beta")
    assert pm.default_resources(ResourceType.shield) == [
        DefaultResource(type=ResourceType.shield, provider_type="inline::test-beta", identifier="beta-shield")
    ]
    assert pm.contributions("test_beta")["resources"] == {"shield": ["beta-shield"]}
    await check_resource_hook(ResourceType.shield, {"params": {"threshold": 0.5}})


async def test_hook_lamina_vector_dbs() -> None:
    await check_resource_hook(ResourceType.vector_db, {"embedding_model": "e", "embedding_dimension": 384})


async def test_hook_lamina_datasets() -> None:
    await check_resource_hook(ResourceType.dataset, {"purpose": "eval/question-answer"})


async def test_hook_lamina_scoring_functions() -> None:
    await check_resource_hook(ResourceType.scoring_function, {"description": "1 if equal"})


async def test_hook_lamina_benchmarks() -> None:
    await check_resource_hook(ResourceType.benchmark, {"dataset_id": "qa", "scoring_functions": ["eq"]})


async def test_hook_lamina_tool_groups() -> None:
    await check_resource_hook(ResourceType.tool_group, {"args": {"max_results": 5}})


async def test_hook_lamina_validate_resource(load, tmp_path: Path) -> None:
    pm = load("alpha", "beta")
    seen: list[dict[str, Any]] = []
    # An implementation may take a subset of the arguments.
    pm.register(
        plugin_module("spy", lamina_validate_resource=lambda resource: seen.append(resource)), name="spy"
    )
    async with started(Stack.build(run_config(tmp_path / "a", {"inference": [alpha_entry()]}), pm)) as stack:
        with pytest.raises(BadRequestError) as refused:
            await stack.models.register_model(RegisterModelRequest(model_id="forbidden-x"))
        assert refused.value.message == (
            "registration of model 'forbidden-x' refused: lamina-test-beta: "
            "model ids starting with 'forbidden-' are refused by lamina-test-beta"
        )
        assert [m.identifier for m in await stack.models.list()] == ["alpha-default"]
        assert "forbidden-x" not in stack.impls[Api.inference]["alpha"].registered, (
            "vetoed before the provider"
        )
        await stack.models.register_model(RegisterModelRequest(model_id="fine-x"))
        assert [m.identifier for m in await stack.models.list()] == ["alpha-default", "fine-x"]
    assert [(r["identifier"], r["provider_id"], r["type"]) for r in seen] == [
        ("alpha-default", "alpha", "model"),  # plugin defaults are validated too
        ("forbidden-x", "alpha", "model"),
        ("fine-x", "alpha", "model"),
    ]
    # A vetoed model in the run config fails start-up, naming it.
    config = run_config(tmp_path / "b", {"inference": [alpha_entry()]}, models=[{"model_id": "forbidden-y"}])
    stack = Stack.build(config, pm)
    with pytest.raises(ConfigError, match=r"models\[0\]: registration of model 'forbidden-y' refused"):
        await stack.start()
    await stack.shutdown()
    # A plugin vetoing another plugin's default model: start-up goes on without that model.
    veto = plugin_module(
        "veto",
        lamina_validate_resource=lambda resource: (
            {"reason": "not here"} if resource["identifier"] == "alpha-default" else None
        ),
    )
    pm.register(veto, name="veto", distribution="lamina-veto")
    async with started(Stack.build(run_config(tmp_path / "c", {"inference": [alpha_entry()]}), pm)) as stack:
        assert await stack.models.list() == []


# -- server, CLI and distributions ---------------------------------------------------------------


async def test_hook_lamina_routes(load, tmp_path: Path) -> None:
    pm = load("alpha")
    assert [(r.path, r.method, r.access) for r in pm.routes()] == [
        ("/alpha/admin", "GET", "admin"),
        ("/alpha/hook/{name}", "POST", "open"),
        ("/alpha/notes", "GET", "caller"),
        ("/alpha/notes", "POST", "caller"),
        ("/alpha/notes/{note_id}", "GET", "caller"),
        ("/alpha/ping", "GET", "caller"),
    ]
    ping = RouteSpec(method="GET", path="/alpha/ping", handler="lamina_test_alpha.web:ping")
    assert pm.routes()[-1] == ping.model_copy(update={"description": "Answers {'pong': 'alpha'}."})
    stack = Stack.build(run_config(tmp_path, {"inference": [alpha_entry()]}), pm)
    async with TestClient(TestServer(create_app(stack))) as client:
        resp = await client.get("/alpha/ping")
        assert resp.status == 200 and await resp.json() == {"pong": "alpha"}
        assert "X-Request-ID" in resp.headers, "the core's middleware wraps plugin routes"
        assert (await client.post("/alpha/ping")).status == 405
        assert "/alpha/ping" not in (await (await client.get("/openapi.json")).json())["paths"]


async def test_plugin_routes_under_auth_follow_their_access_and_the_policy(load, tmp_path: Path) -> None:
    """With server.auth: a plugin's `caller` routes need a token and their handlers' checks
    (lamina.access.checks) keep each caller's notes apart, a denied read answering as a missing note;
    an `admin` route refuses a caller without the admin role; an `open` route needs no token."""
    pm = load("alpha")
    admin_key = "plugin-routes-bootstrap-admin-key-0123"
    policy = [  # Llama Stack's access_policy: admins everything, others their own notes
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user with admin in roles"},
        {"permit": {"actions": ["create"]}},
        {"permit": {"actions": ["read", "update", "delete"]}, "when": "user is owner"},
    ]
    config = {"bootstrap_admin_key": admin_key}
    auth = {"auth": {"provider_type": "api_keys", "config": config, "access_policy": policy}}
    stack = Stack.build(run_config(tmp_path, {"inference": [alpha_entry()]}, server=auth), pm)
    async with TestClient(TestServer(create_app(stack))) as client:
        admin = {"Authorization": f"Bearer {admin_key}"}

        async def key_of(principal: str) -> dict[str, str]:
            made = await client.post("/v1/admin/api-keys", json={"principal": principal}, headers=admin)
            assert made.status == 201, await made.text()
            return {"Authorization": f"Bearer {(await made.json())['key']}"}

        alice, bob = await key_of("alice"), await key_of("bob")
        assert (await client.get("/alpha/ping")).status == 401  # `caller` needs a token
        made = await client.post("/alpha/notes", json={"text": "alice's"}, headers=alice)
        note_id = (await made.json())["id"]
        got = await client.get(f"/alpha/notes/{note_id}", headers=alice)
        assert got.status == 200 and (await got.json())["text"] == "alice's"
        denied = await client.get(f"/alpha/notes/{note_id}", headers=bob)
        missing = await client.get("/alpha/notes/note-000000000000", headers=bob)
        assert denied.status == missing.status == 404
        said = (await missing.json())["error"]["message"]
        assert (await denied.json())["error"]["message"] == said.replace("note-000000000000", note_id)
        assert note_id in (await (await client.get("/alpha/notes", headers=alice)).json())["data"]
        assert note_id not in (await (await client.get("/alpha/notes", headers=bob)).json())["data"]
        assert (await client.get(f"/alpha/notes/{note_id}", headers=admin)).status == 200  # the admin rule
        refused = await client.get("/alpha/admin", headers=bob)
        assert refused.status == 403 and "'admin' role" in (await refused.json())["error"]["message"]
        assert (await client.get("/alpha/admin", headers=admin)).status == 200
        hook = await client.post("/alpha/hook/github")  # `open`: no token
        assert hook.status == 200 and await hook.json() == {"anonymous": True}
        assert (await client.post("/alpha/hook/github", headers=bob)).status == 200


async def test_hook_lamina_middlewares(load, tmp_path: Path) -> None:
    pm = load("alpha", "beta")
    first = {"name": "first", "middleware": "lamina_test_beta.web:add_header", "order": 5}  # a dict works too
    pm.register(plugin_module("mw", lamina_middlewares=lambda: [first]), name="mw", distribution="lamina-mw")
    assert [(m.name, m.order) for m in pm.middlewares()] == [("first", 5), ("beta-header", 100)]
    assert pm.middlewares()[1] == MiddlewareSpec(
        name="beta-header", middleware="lamina_test_beta.web:add_header"
    )
    stack = Stack.build(run_config(tmp_path, {"inference": [alpha_entry()]}), pm)
    async with TestClient(TestServer(create_app(stack))) as client:
        for path in ("/v1/health", "/v1/models", "/alpha/ping"):
            resp = await client.get(path)
            assert resp.status == 200 and resp.headers["X-Lamina-Test-Beta"] == "seen", path
    without = load("alpha")
    stack = Stack.build(run_config(tmp_path, {"inference": [alpha_entry()]}), without)
    async with TestClient(TestServer(create_app(stack))) as client:
        assert "X-Lamina-Test-Beta" not in (await client.get("/v1/health")).headers


async def test_hook_lamina_job_executors(load, tmp_path: Path) -> None:
    pm = load("jobs")
    [(name, spec)] = pm.job_executors().items()
    assert (name, spec.factory) == ("test-counting", "lamina_test_jobs.executor:create_executor")
    providers = {"inference": [{"provider_id": "jobs", "provider_type": "inline::test-jobs", "config": {}}]}
    jobs = {"executor": "test-counting", "executor_config": {"label": "hooks"}}
    async with started(Stack.build(run_config(tmp_path, providers, jobs=jobs), pm)) as stack:
        assert stack.jobs is not None
        executor = stack.jobs.executor
        assert executor.label == "hooks" and executor.events == ["start", "prepare"]
        assert executor.work.run_config is stack.config, "prepare gets the server's work environment"
        job = await stack.jobs.submit("test.count", {"items": 2})
        done = await stack.jobs.wait(job.id, within=30)
        assert done.status == "completed" and done.result["items"] == 2
        assert executor.runs == [job.id], "the configured executor ran the handler"
    assert executor.events == ["start", "prepare", "shutdown"]
    # A name nobody offers fails the build, listing what is there; so does a bad executor_config.
    with pytest.raises(ConfigError, match=r"jobs.executor: no installed plugin offers job executor 'ray' "):
        Stack.build(run_config(tmp_path, providers, jobs={"executor": "ray"}), pm)
    bad = Stack.build(run_config(tmp_path, providers, jobs={**jobs, "executor_config": {"x": 1}}), pm)
    with pytest.raises(ConfigError, match=r"jobs\.executor_config: test-counting takes only 'label'"):
        await bad.start()
    await bad.shutdown()
    # An executor name offered twice fails, naming both distributions.
    twin = {"name": "test-counting", "factory": "lamina_test_jobs.executor:create_executor"}
    twin_plugin = plugin_module("twin", lamina_job_executors=lambda: [twin])
    pm.register(twin_plugin, name="twin", distribution="lamina-twin")
    with pytest.raises(PluginError, match="'test-counting' is offered by two distributions: lamina-test-j"):
        pm.job_executors()


def test_hook_lamina_cli_commands(load, dists) -> None:
    pm = load("alpha", strict=False)
    pm.register(plugin_module("cmds", lamina_cli_commands=lambda: ["not-a-command"]), name="cmds")
    [command] = pm.cli_commands()
    assert isinstance(command, click.Command) and command.name == "alpha-hello"
    assert (
        pm.plugins["cmds"].status == "failed"
        and "expected click commands, got str" in pm.plugins["cmds"].error
    )
    result = CliRunner().invoke(command, ["--name", "pytest"])
    assert result.exit_code == 0 and result.output == "alpha says hello to pytest\n"
    # And through the real `lamina` command line.
    real = dists.lamina("alpha-hello", "--name", "hooks", dists=["alpha"])
    assert real.returncode == 0 and real.stdout == "alpha says hello to hooks\n", real.explain()


async def test_hook_lamina_distributions(load, tmp_path: Path) -> None:
    pm = load("alpha")
    [(name, dist)] = pm.distributions().items()
    assert (name, dist.description, dist.default) == ("alpha-demo", "One test-alpha provider.", False)
    assert dist.providers() == {"inference": ["remote::test-alpha"]}
    config = load_config_or_distribution("alpha-demo", {"ALPHA_GREETING": "ahoy"}, pm)
    assert (config.image_name, config.source) == ("alpha-demo", "distribution alpha-demo")
    config = config.model_copy(
        update={"metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "r.db")}}
    )
    async with started(Stack.build(config, pm)) as stack:
        assert stack.impls[Api.inference]["alpha"].config.greeting == "ahoy"
    # A distribution name shipped twice fails, naming both distributions.
    twin = {"name": "alpha-demo", "run_config": "version: 2\n"}
    pm.register(
        plugin_module("twin", lamina_distributions=lambda: [twin]), name="twin", distribution="lamina-twin"
    )
    with pytest.raises(
        PluginError, match="'alpha-demo' is shipped by two distributions: lamina-test-alpha and lamina-twin"
    ):
        pm.distributions()


# -- completeness --------------------------------------------------------------------------------


def test_every_hook_has_a_test() -> None:
    hooks = {name for name, obj in vars(hookspecs).items() if name.startswith("lamina_")}
    assert all(hasattr(getattr(hookspecs, name), "lamina_spec") for name in hooks), (
        "every lamina_* is a hookspec"
    )
    assert set(API_HOOKS.values()) | set(RESOURCE_HOOKS.values()) <= hooks
    tests = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_hook_"
            ):
                tests.add(node.name)
    missing = sorted(f"test_hook_{hook}" for hook in hooks if f"test_hook_{hook}" not in tests)
    assert not missing, f"hooks without a test: {missing}"
    stale = sorted(name for name in tests if name.removeprefix("test_hook_") not in hooks)
    assert not stale, f"tests of hooks that no longer exist: {stale}"
