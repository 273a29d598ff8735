"""The shields routing table and the safety router (run-shield, moderations), in process.

``ScriptedGuard`` is a fake safety provider defined here, good for router logic only (params
overlay, shield resolution, moderation results built from violations, validation messages). The
real providers (plugins/rules, plugins/prompt-guard, plugins/llama-guard) are tested through a real
server in their own packages and in tests/e2e.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lamina.apis.common import Empty
from lamina.apis.inference import UserMessage
from lamina.apis.safety import (
    MAX_MODERATION_INPUTS,
    OPENAI_MODERATION_CATEGORIES,
    GetShieldRequest,
    ModerationRequest,
    ModerationResult,
    RegisterShieldRequest,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    Shield,
)
from lamina.config import RunConfig, SafetyConfig, parse_run_config
from lamina.errors import BadRequestError, ConfigError, ConflictError, NotFoundError, UpstreamError
from lamina.hookspecs import hookimpl
from lamina.plugins import PluginManager
from lamina.resources.registry import ResourceRegistry
from lamina.resources.shields import ShieldsRoutingTable
from lamina.routers.safety import SafetyRouter, complete_result
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType
from lamina.stack import Stack


class ScriptedGuard:
    """Flags a text containing a word of ``bad`` (violation level from ``params.level``, default
    error); refuses shields whose provider_shield_id is 'refused'; records every call."""

    def __init__(self, bad: tuple[str, ...] = ("bomb",)) -> None:
        self.bad = bad
        self.registered: list[str] = []
        self.unregistered: list[str] = []
        self.calls: list[tuple[str, list[Any], dict[str, Any]]] = []

    async def register_shield(self, shield: Shield) -> None:
        if shield.provider_shield_id == "refused":
            raise BadRequestError(
                "provider_shield_id 'refused' is not served here", param="provider_shield_id"
            )
        self.registered.append(shield.identifier)

    async def unregister_shield(self, shield: Shield) -> None:
        self.unregistered.append(shield.identifier)

    async def run_shield(
        self, shield: Shield, messages: list[Any], params: dict[str, Any]
    ) -> RunShieldResponse:
        self.calls.append((shield.identifier, messages, params))
        text = str(messages[-1].content)
        if not any(word in text for word in self.bad):
            return RunShieldResponse()
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level=params.get("level", "error"),
                user_message="no",
                metadata={"violation_type": "S9", "categories": ["violence", "weapons"]},
            )
        )


class ScoringGuard(ScriptedGuard):
    """Also implements run_moderation (scores every text); ``short`` drops the last result."""

    short = False

    async def run_moderation(
        self, shield: Shield, texts: list[str], params: dict[str, Any]
    ) -> list[ModerationResult]:
        results = [
            ModerationResult(
                flagged="bomb" in t,
                categories={"prompt_injection": "bomb" in t},
                category_scores={"prompt_injection": 0.9 if "bomb" in t else 0.1},
                category_applied_input_types={"prompt_injection": ["text"]},
            )
            for t in texts
        ]
        return results[:-1] if self.short else results


@pytest.fixture
def guard() -> ScriptedGuard:
    return ScriptedGuard()


@pytest.fixture
def table(registry: ResourceRegistry, guard: ScriptedGuard) -> ShieldsRoutingTable:
    pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
    return ShieldsRoutingTable(registry, {"guard": guard, "scorer": ScoringGuard()}, pm)


@pytest.fixture
def router(table: ShieldsRoutingTable) -> SafetyRouter:
    return SafetyRouter(table)


def reg(shield_id: str, **kw: Any) -> RegisterShieldRequest:
    kw.setdefault("provider_id", "guard")
    return RegisterShieldRequest(shield_id=shield_id, **kw)


def run(shield_id: str, text: str, **params: Any) -> RunShieldRequest:
    return RunShieldRequest(shield_id=shield_id, messages=[UserMessage(content=text)], params=params)


# -- the Shields API ---------------------------------------------------------------------------------


async def test_register_list_get_delete(table: ShieldsRoutingTable, guard: ScriptedGuard) -> None:
    shield = await table.register_shield(reg("s1", provider_shield_id="lg3", params={"a": 1}))
    assert (shield.identifier, shield.provider_resource_id, shield.provider_id, shield.type) == (
        "s1",
        "lg3",
        "guard",
        "shield",
    )
    assert shield.params == {"a": 1}
    assert guard.registered == ["s1"]
    assert [s.identifier for s in (await table.list_shields(Empty())).data] == ["s1"]
    assert (await table.get_shield(GetShieldRequest(identifier="s1"))).provider_shield_id == "lg3"
    await table.unregister_shield(GetShieldRequest(identifier="s1"))
    assert guard.unregistered == ["s1"]
    with pytest.raises(NotFoundError, match=r"shield 's1' is not registered.*POST /v1/shields"):
        await table.get_shield(GetShieldRequest(identifier="s1"))


async def test_provider_shield_id_defaults_to_the_shield_id(table: ShieldsRoutingTable) -> None:
    assert (await table.register_shield(reg("solo"))).provider_shield_id == "solo"


async def test_register_is_idempotent_and_conflicts_on_a_different_definition(
    table: ShieldsRoutingTable,
) -> None:
    first = await table.register_shield(reg("s1", params={"a": 1}))
    again = await table.register_shield(reg("s1", params={"a": 1}))
    assert again.created == first.created
    with pytest.raises(ConflictError, match=r"already registered differently.*DELETE /v1/shields/s1"):
        await table.register_shield(reg("s1", params={"a": 2}))
    replaced = await table.register_shield(reg("s1", params={"a": 2}), replace=True)
    assert replaced.params == {"a": 2}


async def test_register_refusals_name_the_field(table: ShieldsRoutingTable) -> None:
    with pytest.raises(BadRequestError, match="provider_shield_id 'refused'") as err:
        await table.register_shield(reg("s2", provider_shield_id="refused"))
    assert err.value.param == "provider_shield_id"
    assert await table.list() == []  # nothing persisted
    with pytest.raises(BadRequestError, match=r"several safety providers.*name one in provider_id"):
        await table.register_shield(RegisterShieldRequest(shield_id="s3"))
    with pytest.raises(BadRequestError, match=r"provider 'nope' is not a configured safety provider"):
        await table.register_shield(reg("s3", provider_id="nope"))
    with pytest.raises(ValidationError, match="shield_id"):
        RegisterShieldRequest.model_validate({"shield_id": "", "provider_id": "guard"})
    with pytest.raises(ValidationError, match="extra"):
        RegisterShieldRequest.model_validate({"shield_id": "x", "shield_type": "llama_guard"})


async def test_reopen_hands_every_shield_to_its_provider(
    table: ShieldsRoutingTable, guard: ScriptedGuard
) -> None:
    await table.register_shield(reg("a"))
    await table.register_shield(reg("b"))
    guard.registered.clear()
    await table.reopen()
    assert guard.registered == ["a", "b"]


# -- run-shield -------------------------------------------------------------------------------------


async def test_run_shield_overlays_call_params_on_the_shields(
    router: SafetyRouter, guard: ScriptedGuard
) -> None:
    await router.shields.register_shield(reg("s1", params={"level": "warn", "keep": True}))
    assert (await router.run_shield(run("s1", "hello"))).violation is None
    response = await router.run_shield(run("s1", "a bomb"))
    assert response.violation is not None and response.violation.violation_level == "warn"
    response = await router.run_shield(run("s1", "a bomb", level="info"))
    assert response.violation.violation_level == "info"
    assert guard.calls[-1][2] == {"level": "info", "keep": True}


async def test_run_shield_refusals(router: SafetyRouter) -> None:
    with pytest.raises(NotFoundError, match="shield 'ghost' is not registered"):
        await router.run_shield(run("ghost", "x"))
    with pytest.raises(ValidationError, match="messages"):
        RunShieldRequest.model_validate({"shield_id": "s", "messages": []})
    with pytest.raises(ValidationError, match="role"):
        RunShieldRequest.model_validate({"shield_id": "s", "messages": [{"role": "robot", "content": "x"}]})


# -- moderations ------------------------------------------------------------------------------------


async def test_moderation_builds_openai_results_from_violations(router: SafetyRouter) -> None:
    await router.shields.register_shield(reg("s1", provider_shield_id="guard-model"))
    out = await router.run_moderation(ModerationRequest(input=["hello", "a bomb"], model="s1"))
    assert out.id.startswith("modr-") and out.model == "s1"
    safe, bad = out.results
    assert not safe.flagged and set(OPENAI_MODERATION_CATEGORIES) <= set(safe.categories)
    assert not any(safe.categories.values()) and not any(safe.category_scores.values())
    assert bad.flagged and bad.categories["violence"] and bad.categories["weapons"]  # extra key kept
    assert bad.category_scores["violence"] == 1.0 and bad.category_applied_input_types["violence"] == ["text"]
    assert not bad.categories["hate"] and bad.category_scores["hate"] == 0.0
    assert bad.metadata["violation_type"] == "S9" and bad.user_message == "no"


async def test_info_level_violations_are_reported_not_flagged(router: SafetyRouter) -> None:
    await router.shields.register_shield(reg("s1", params={"level": "info"}))
    (result,) = (await router.run_moderation(ModerationRequest(input="a bomb", model="s1"))).results
    assert not result.flagged and result.metadata["violation_level"] == "info"
    assert not any(result.categories.values())  # a category set means flagged
    assert result.metadata["categories"] == ["violence", "weapons"]


async def test_moderation_errors_name_the_input_and_stop_the_other_texts(router: SafetyRouter) -> None:
    class Refusing(ScriptedGuard):
        async def run_shield(self, shield, messages, params):
            self.calls.append((shield.identifier, messages, params))
            if messages[-1].content == "bad":
                raise BadRequestError("messages[0].content is too long", param="messages[0].content")
            await asyncio.sleep(0.05)
            return RunShieldResponse()

    refusing = Refusing()
    router.shields.providers["guard"] = refusing
    await router.shields.register_shield(reg("s1"))
    with pytest.raises(BadRequestError, match=r"input\[2\]: messages\[0\].content is too long") as err:
        await router.run_moderation(ModerationRequest(input=["ok"] * 2 + ["bad"] + ["ok"] * 40, model="s1"))
    assert err.value.param == "input[2]"
    await asyncio.sleep(0.2)
    assert len(refusing.calls) < 43  # the texts still waiting were cancelled


async def test_moderation_model_resolution(router: SafetyRouter) -> None:
    await router.shields.register_shield(reg("only", provider_shield_id="guard-model"))
    for model in ("only", "guard-model", None):
        out = await router.run_moderation(ModerationRequest(input="a bomb", model=model))
        assert out.results[0].flagged, model
    with pytest.raises(
        NotFoundError, match=r"model 'nope' names no shield.*only \(provider_shield_id guard-model\)"
    ):
        await router.run_moderation(ModerationRequest(input="x", model="nope"))
    await router.shields.register_shield(reg("twin", provider_shield_id="guard-model"))
    with pytest.raises(BadRequestError, match=r"provider_shield_id of several shields \(only, twin\)"):
        await router.run_moderation(ModerationRequest(input="x", model="guard-model"))
    with pytest.raises(BadRequestError, match="model is required: 2 shields are registered") as err:
        await router.run_moderation(ModerationRequest(input="x"))
    assert err.value.param == "model" and "safety.default_shield_id" in err.value.message
    router.default_shield_id = "twin"  # the run config's default (lamina.config.default_moderation_shield)
    assert (await router.run_moderation(ModerationRequest(input="x"))).model == "twin"
    router.default_shield_id = "gone"  # unregistered through the API after start-up
    with pytest.raises(NotFoundError, match=r"default shield 'gone'.*Registered shields: only .*twin"):
        await router.run_moderation(ModerationRequest(input="x"))


async def test_moderation_input_shapes(router: SafetyRouter) -> None:
    await router.shields.register_shield(reg("s1"))
    out = await router.run_moderation(
        ModerationRequest.model_validate({"input": ["a bomb", {"type": "text", "text": "hi"}], "model": "s1"})
    )
    assert [r.flagged for r in out.results] == [True, False]
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with pytest.raises(BadRequestError, match=r"input\[1\] is an image"):
        await router.run_moderation(ModerationRequest.model_validate({"input": ["a", image], "model": "s1"}))
    with pytest.raises(BadRequestError, match="input is an empty list"):
        await router.run_moderation(ModerationRequest(input=[], model="s1"))
    with pytest.raises(BadRequestError, match=f"at most {MAX_MODERATION_INPUTS} per request"):
        await router.run_moderation(ModerationRequest(input=["x"] * (MAX_MODERATION_INPUTS + 1), model="s1"))


async def test_a_provider_that_scores_answers_moderations_itself(router: SafetyRouter) -> None:
    await router.shields.register_shield(reg("pg", provider_id="scorer"))
    out = await router.run_moderation(ModerationRequest(input=["hello", "a bomb"], model="pg"))
    assert [r.category_scores["prompt_injection"] for r in out.results] == [0.1, 0.9]
    assert all(set(OPENAI_MODERATION_CATEGORIES) <= set(r.categories) for r in out.results)
    router.shields.providers["scorer"].short = True
    with pytest.raises(
        UpstreamError, match="provider 'scorer': run_moderation returned 1 results for 2 inputs"
    ):
        await router.run_moderation(ModerationRequest(input=["hello", "a bomb"], model="pg"))


def test_complete_result_keeps_extra_categories() -> None:
    result = complete_result(
        ModerationResult(
            flagged=True, categories={"pii": True}, category_scores={}, category_applied_input_types={}
        )
    )
    assert result.categories["pii"] and result.category_scores["pii"] == 1.0
    assert result.category_applied_input_types["pii"] == ["text"]
    assert len(result.categories) == len(OPENAI_MODERATION_CATEGORIES) + 1


# -- the stack ----------------------------------------------------------------------------------------

GUARDS: dict[str, ScriptedGuard] = {}


async def create_guard(config: Any, deps: dict, context: Any) -> ScriptedGuard:
    GUARDS[context.provider_id] = guard = ScriptedGuard()
    return guard


class _GuardPlugin:
    @hookimpl
    def lamina_safety_providers(self) -> list[ProviderSpec]:
        return [
            ProviderSpec(
                api=Api.safety,
                provider_type="inline::unit-guard",
                config_class="lamina.apis.common:Empty",
                factory=f"{__name__}:create_guard",
            )
        ]

    @hookimpl
    def lamina_shields(self) -> list[DefaultResource]:
        return [
            DefaultResource(
                type=ResourceType.shield, provider_type="inline::unit-guard", identifier="default-guard"
            ),
            DefaultResource(
                type=ResourceType.shield,
                provider_type="inline::unit-guard",
                identifier="broken-default",
                provider_resource_id="refused",
            ),
        ]


def _config(tmp_path: Path, shields: list[dict[str, Any]]) -> RunConfig:
    return RunConfig.model_validate(
        {
            "providers": {"safety": [{"provider_id": "g", "provider_type": "inline::unit-guard"}]},
            "shields": shields,
            "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        }
    )


async def _started(config: RunConfig) -> Stack:
    pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
    pm.register(_GuardPlugin(), name="unit-guard")
    stack = Stack.build(config, pm)
    try:
        await stack.start()
    except BaseException:
        await stack.shutdown()
        raise
    return stack


async def test_the_stack_registers_default_and_configured_shields_and_reopens_them(tmp_path: Path) -> None:
    stack = await _started(_config(tmp_path, [{"shield_id": "cfg", "params": {"level": "warn"}}]))
    try:
        listed = {s.identifier: s for s in await stack.shields.list()}
        assert set(listed) == {"default-guard", "cfg"}  # the refused default is logged and skipped
        assert listed["cfg"].provider_id == "g" and listed["cfg"].params == {"level": "warn"}
        await stack.shields.register_shield(reg("api", provider_id="g"))
    finally:
        await stack.shutdown()
    stack = await _started(_config(tmp_path, [{"shield_id": "cfg", "params": {"level": "info"}}]))
    try:
        assert sorted(GUARDS["g"].registered) == [
            "api",
            "cfg",
            "cfg",
            "default-guard",
        ]  # reopened, then replaced
        assert (await stack.shields.get("cfg")).params == {"level": "info"}  # the run config wins
        response = await stack.routers[Api.safety].run_shield(run("cfg", "a bomb"))
        assert response.violation.violation_level == "info"
    finally:
        await stack.shutdown()


async def test_moderations_without_model_run_the_configured_default(tmp_path: Path) -> None:
    shields = [{"shield_id": "first"}, {"shield_id": "second"}]
    stack = await _started(_config(tmp_path, shields))
    try:  # three shields (default-guard is the plugin's): the first under shields: runs
        out = await stack.routers[Api.safety].run_moderation(ModerationRequest(input="a bomb"))
        assert out.model == "first" and out.results[0].flagged
    finally:
        await stack.shutdown()
    second = SafetyConfig(default_shield_id="second")
    config = _config(tmp_path, shields).model_copy(update={"safety": second})
    stack = await _started(config)
    try:
        out = await stack.routers[Api.safety].run_moderation(ModerationRequest(input="a bomb"))
        assert out.model == "second"
    finally:
        await stack.shutdown()
    config = config.model_copy(update={"safety": SafetyConfig(default_shield_id="third")})
    with pytest.raises(ConfigError, match=r"safety.default_shield_id: 'third' is not a registered shield"):
        await _started(config)


def test_a_default_shield_without_a_safety_provider_is_a_config_error() -> None:
    config = RunConfig.model_validate(
        {"providers": {}, "safety": {"default_shield_id": "pii"}, "source": "run.yaml"}
    )
    with pytest.raises(ConfigError, match=r"run\.yaml: safety\.default_shield_id: 'pii' names a shield"):
        Stack.build(config, PluginManager(strict=True, allow=(), deny=(), trace=False))


def test_the_safety_section_reads_as_in_newer_llama_stack() -> None:
    doc = {"version": 2, "providers": {}, "shields": [{"shield_id": None}, {"shield_id": "a"}]}
    assert parse_run_config(doc, source="x").default_moderation_shield() == "a"
    assert parse_run_config({**doc, "safety": None}, source="x").default_moderation_shield() == "a"
    with_default = {**doc, "safety": {"default_shield_id": "b"}}
    assert parse_run_config(with_default, source="x").default_moderation_shield() == "b"
    assert parse_run_config({"version": 2, "providers": {}}, source="x").default_moderation_shield() is None


async def test_a_bad_configured_shield_fails_start_up_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shields\[1\]: provider_shield_id 'refused'"):
        await _started(
            _config(tmp_path, [{"shield_id": "ok"}, {"shield_id": "bad", "provider_shield_id": "refused"}])
        )
