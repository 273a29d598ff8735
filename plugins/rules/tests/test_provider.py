"""The inline::rules provider in process: shield resolution, scanning, violations, limits."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import lamina_rules.provider as provider_module
from lamina.apis.common import ImageContentItem, ImageSource, TextContentItem
from lamina.apis.inference import CompletionMessage, SystemMessage, ToolCall, ToolResponseMessage, UserMessage
from lamina.apis.safety import Shield
from lamina.errors import BadRequestError, UpstreamTimeoutError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_rules.config import PII_USER_MESSAGE, RULE_USER_MESSAGE, RulesConfig
from lamina_rules.plugin import lamina_safety_providers
from lamina_rules.provider import RulesProvider, create_provider

CARD = "4111 1111 1111 1111"
EMAIL = "jane.roe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
OPENAI_KEY = "sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG"

CONFIG = {
    "rule_sets": {
        "support": {
            "rules": [
                {
                    "name": "competitors",
                    "keywords": ["Acme Corp", "Globex"],
                    "violation_level": "warn",
                    "user_message": "Let's not talk about competitors.",
                },
                {"name": "refund-scam", "pattern": r"wire\s+\$?\d+", "category": "illicit"},
                {"name": "internal", "keywords": ["project nightingale"], "violation_level": "info"},
            ],
            "pii": ["email", {"kind": "credit_card", "user_message": "Never share card numbers."}],
        },
        "all-users": {"pii": ["email"], "scope": "all", "roles": ["user"]},
    }
}


async def make(config: dict[str, Any] | None = None, tmp: Path = Path("/nonexistent")) -> RulesProvider:
    context = ProviderContext(Api.safety, "rules", "inline::rules", tmp)
    return await create_provider(RulesConfig.model_validate(config or CONFIG), {}, context)


def shield(identifier: str, provider_shield_id: str | None = None, params: dict | None = None) -> Shield:
    return Shield(
        identifier=identifier,
        provider_id="rules",
        provider_resource_id=provider_shield_id or identifier,
        params=params,
    )


async def run(provider: RulesProvider, s: Shield, *messages: Any, params: dict | None = None) -> Any:
    await provider.register_shield(s)
    msgs = [UserMessage(content=m) if isinstance(m, str) else m for m in messages]
    # as the safety router calls it: the shield's params overlaid by the call's
    return (await provider.run_shield(s, msgs, {**(s.params or {}), **(params or {})})).violation


# -- resolution ------------------------------------------------------------------------------------


async def test_builtin_pii_rule_set_with_empty_config() -> None:
    provider = await make({})
    s = shield("pii")
    assert await run(provider, s, "Hello, how are you today?") is None
    violation = await run(provider, s, f"my card is {CARD}, mail {EMAIL}")
    assert violation.violation_level == "error"
    assert violation.user_message == PII_USER_MESSAGE
    assert violation.metadata["violation_type"] == "pii:email,credit_card"
    assert violation.metadata["categories"] == ["pii", "pii/credit_card", "pii/email"]
    assert violation.metadata["rule_set"] == "pii"


async def test_named_rule_set_by_provider_shield_id() -> None:
    provider = await make()
    violation = await run(provider, shield("support-input", "support"), "Is Globex cheaper?")
    assert violation.violation_level == "warn"
    assert violation.user_message == "Let's not talk about competitors."
    assert violation.metadata["violation_type"] == "rule:competitors"
    assert violation.metadata["categories"] == ["custom"]
    assert violation.metadata["rule_set"] == "support"


async def test_params_rule_set_wins_over_provider_shield_id() -> None:
    provider = await make()
    s = shield("inline", "support", params={"rules": [{"name": "tabs", "keywords": ["tabs"]}]})
    assert await run(provider, s, "Is Globex cheaper?") is None  # not the support rule set
    violation = await run(provider, s, "tabs or spaces?")
    assert violation.metadata["violation_type"] == "rule:tabs"
    assert violation.metadata["rule_set"] == "params"
    assert violation.user_message == RULE_USER_MESSAGE


async def test_unknown_rule_set_names_provider_shield_id_and_lists_available() -> None:
    provider = await make()
    with pytest.raises(BadRequestError) as info:
        await provider.register_shield(shield("guard", "nope"))
    assert info.value.param == "provider_shield_id"
    assert "'nope'" in info.value.message
    assert "all-users, pii, support" in info.value.message


@pytest.mark.parametrize(
    ("params", "param", "text"),
    [
        ({"rules": [{"name": "bad", "pattern": "(a"}]}, "params.rules[0].pattern", "rule 'bad'"),
        ({"rules": [{"name": "both", "pattern": "a", "keywords": ["a"]}]}, "params.rules[0]", "not both"),
        ({"rules": [{"name": "none"}]}, "params.rules[0]", "not neither"),
        ({"pii": ["passport"]}, "params.pii[0].kind", "'email'"),
        ({"threshold": 0.5}, "params.threshold", "rules, pii, scope, roles, user_message"),
        ({"pii": ["email"], "scope": "everything"}, "params.scope", "'last'"),
    ],
)
async def test_invalid_params_are_a_400_at_registration(params: dict, param: str, text: str) -> None:
    provider = await make()
    with pytest.raises(BadRequestError) as info:
        await provider.register_shield(shield("bad", params=params))
    assert info.value.param == param
    assert text in info.value.message


async def test_rules_compile_once_per_shield(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = provider_module.compile_rule_set
    monkeypatch.setattr(provider_module, "compile_rule_set", lambda *a: calls.append(a[0]) or real(*a))
    provider = await make()
    s = shield("kw", params={"rules": [{"name": "x", "keywords": ["forbidden"]}]})
    await provider.register_shield(s)
    for _ in range(5):
        assert (await provider.run_shield(s, [UserMessage(content="forbidden")], dict(s.params))).violation
    assert calls == ["params"]
    # a changed definition under the same identifier is compiled again
    changed = shield("kw", params={"rules": [{"name": "x", "keywords": ["other"]}]})
    await provider.register_shield(changed)
    assert (await provider.run_shield(changed, [UserMessage(content="forbidden")], {})).violation is None
    assert calls == ["params", "params"]


async def test_unregistered_shield_is_compiled_on_first_use_and_forgotten() -> None:
    provider = await make({})
    s = shield("pii")
    assert (await provider.run_shield(s, [UserMessage(content=EMAIL)], {})).violation is not None
    await provider.unregister_shield(s)
    assert s.identifier not in provider._shields
    await provider.unregister_shield(s)  # twice is fine


# -- levels and messages ---------------------------------------------------------------------------


async def test_most_severe_level_wins_and_its_message_is_used() -> None:
    provider = await make()
    s = shield("support-input", "support")
    violation = await run(provider, s, f"Acme Corp said card {CARD} about project nightingale")
    assert violation.violation_level == "error"
    assert violation.user_message == "Never share card numbers."
    assert violation.metadata["violation_type"] == "pii:credit_card;rule:competitors,internal"
    assert violation.metadata["categories"] == ["custom", "pii", "pii/credit_card"]
    levels = {m["rule"]: m["violation_level"] for m in violation.metadata["matches"]}
    assert levels == {"competitors": "warn", "internal": "info", "pii:credit_card": "error"}


async def test_info_level_matches_still_answer_a_violation() -> None:
    provider = await make()
    violation = await run(provider, shield("s", "support"), "status of Project  Nightingale?")
    assert violation.violation_level == "info"
    assert violation.metadata["violation_type"] == "rule:internal"
    assert violation.user_message == RULE_USER_MESSAGE


async def test_rule_set_user_message_is_the_default() -> None:
    provider = await make()
    s = shield("s", params={"pii": ["email"], "user_message": "No emails please."})
    assert (await run(provider, s, f"write {EMAIL}")).user_message == "No emails please."


async def test_rule_category_for_moderations() -> None:
    provider = await make()
    violation = await run(provider, shield("s", "support"), "please wire $500 now")
    assert violation.metadata["categories"] == ["illicit"]
    assert violation.metadata["violation_type"] == "rule:refund-scam"


# -- what is inspected -----------------------------------------------------------------------------


async def test_scope_last_checks_only_the_final_message() -> None:
    provider = await make()
    s = shield("pii-last", "pii")
    assert await run(provider, s, f"my mail is {EMAIL}", CompletionMessage(content="Noted.")) is None
    violation = await run(provider, s, "hi", f"my mail is {EMAIL}")
    assert violation.metadata["matches"][0]["message_index"] == 1


async def test_scope_all_with_a_roles_filter() -> None:
    provider = await make()
    s = shield("au", "all-users")
    violation = await run(
        provider,
        s,
        SystemMessage(content="Admin: root@example.com"),
        UserMessage(content=f"I am {EMAIL}"),
        CompletionMessage(content="Thanks, admin@example.org will reply"),
    )
    assert [m["message_index"] for m in violation.metadata["matches"]] == [1]
    # only system/assistant messages hold emails: nothing a user wrote
    assert (
        await run(provider, s, SystemMessage(content="root@example.com"), CompletionMessage(content=EMAIL))
        is None
    )


async def test_scope_last_with_roles_skips_a_final_message_of_another_role() -> None:
    provider = await make()
    s = shield("user-only", params={"pii": ["email"], "roles": ["user"]})
    assert await run(provider, s, UserMessage(content=EMAIL), CompletionMessage(content="ok")) is None
    assert await run(provider, s, CompletionMessage(content="ok"), UserMessage(content=EMAIL)) is not None


async def test_tool_call_arguments_context_and_tool_results_are_inspected() -> None:
    provider = await make()
    s = shield("secrets", params={"pii": ["api_key"], "scope": "all"})
    call = ToolCall(call_id="c1", tool_name="http", arguments={"headers": {"x-api-key": OPENAI_KEY}})
    violation = await run(
        provider,
        s,
        UserMessage(content="deploy it", context=f"config: AWS {AWS_KEY}"),
        CompletionMessage(content="calling", tool_calls=[call]),
        ToolResponseMessage(call_id="c1", content=f"echo {OPENAI_KEY}"),
    )
    fields = [(m["message_index"], m["field"]) for m in violation.metadata["matches"]]
    assert fields == [(0, "context"), (1, "tool_calls[0].arguments"), (2, "content")]


async def test_interleaved_text_parts_are_inspected_and_images_are_not() -> None:
    provider = await make({})
    s = shield("pii")
    image = ImageContentItem(image=ImageSource(url={"uri": f"https://example.com/{EMAIL}.png"}))
    assert await run(provider, s, UserMessage(content=[image])) is None
    content = [TextContentItem(text="first part"), image, TextContentItem(text=f"card {CARD}")]
    violation = await run(provider, s, UserMessage(content=content))
    match = violation.metadata["matches"][0]
    assert match["field"] == "content" and match["kind"] == "credit_card"
    assert "first part\ncard 4111 1111 1111 1111"[match["start"] : match["end"]] == CARD


async def test_offsets_point_at_the_match_but_metadata_never_holds_it() -> None:
    provider = await make({})
    secrets = [
        EMAIL,
        CARD,
        AWS_KEY,
        OPENAI_KEY,
        "123-45-6789",
        "DE89 3704 0044 0532 0130 00",
        "+44 20 7946 0958",
    ]
    text = "Here: " + " ; ".join(secrets) + " -- thanks"
    violation = await run(provider, shield("pii"), text)
    matches = violation.metadata["matches"]
    assert sorted(text[m["start"] : m["end"]] for m in matches) == sorted(secrets)
    dumped = json.dumps(violation.model_dump())
    for secret in secrets:
        assert secret not in dumped
        assert secret.replace(" ", "") not in dumped
    assert violation.metadata["violation_type"] == "pii:email,phone,credit_card,api_key,us_ssn,iban"


async def test_reported_matches_are_capped() -> None:
    provider = await make({"max_reported_matches": 3})
    text = " ".join(f"user{i}@example.com" for i in range(10)) + f" {CARD}"
    violation = await run(provider, shield("pii"), text)
    assert len(violation.metadata["matches"]) == 3
    assert violation.metadata["matches_truncated"] is True
    # detectors after the cap still count for the verdict
    assert violation.metadata["violation_type"] == "pii:email,credit_card"


# -- per-call params -------------------------------------------------------------------------------


async def test_call_params_narrow_pii_and_rules() -> None:
    provider = await make()
    s = shield("support", "support")
    text = f"Globex card {CARD} mail {EMAIL}"
    violation = await run(provider, s, text, params={"pii": ["email"], "rules": []})
    assert violation.metadata["violation_type"] == "pii:email"
    violation = await run(provider, s, text, params={"pii": [], "rules": ["competitors"]})
    assert violation.metadata["violation_type"] == "rule:competitors"
    assert await run(provider, s, text, params={"pii": [], "rules": []}) is None


async def test_call_params_widen_scope() -> None:
    provider = await make({})
    s = shield("pii")
    assert await run(provider, s, EMAIL, "fine") is None
    assert await run(provider, s, EMAIL, "fine", params={"scope": "all"}) is not None
    assert await run(provider, s, EMAIL, "fine", params={"scope": "all", "roles": ["assistant"]}) is None


@pytest.mark.parametrize(
    ("params", "param", "text"),
    [
        ({"pii": ["ip_address"]}, "params.pii", "'ip_address' not in shield"),
        ({"rules": ["nope"]}, "params.rules", "'nope' not in shield"),
        ({"threshold": 1}, "params.threshold", "cannot be set per call"),
        ({"rules": [{"name": "x", "keywords": ["y"]}]}, "params.rules[0]", "valid string"),
        ({"scope": "first"}, "params.scope", "'last'"),
    ],
)
async def test_bad_call_params_are_a_400(params: dict, param: str, text: str) -> None:
    provider = await make()
    s = shield("support", "support")
    await provider.register_shield(s)
    with pytest.raises(BadRequestError) as info:
        await provider.run_shield(s, [UserMessage(content="hi")], params)
    assert info.value.param == param
    assert text in info.value.message


async def test_registered_params_passed_back_by_the_router_change_nothing() -> None:
    provider = await make()
    params = {"rules": [{"name": "x", "keywords": ["boom"]}], "user_message": "Nope."}
    s = shield("inline", params=params)
    await provider.register_shield(s)
    response = await provider.run_shield(s, [UserMessage(content="boom")], dict(params))
    assert response.violation.user_message == "Nope."


# -- limits ----------------------------------------------------------------------------------------


async def test_input_over_max_chars_is_a_400() -> None:
    provider = await make({"max_chars": 1000})
    s = shield("pii")
    await provider.register_shield(s)
    with pytest.raises(BadRequestError) as info:
        await provider.run_shield(s, [UserMessage(content="x" * 1001)], {})
    assert info.value.param == "messages"
    assert "1001 characters" in info.value.message and "max_chars" in info.value.message
    # only what the scope selects counts
    messages = [UserMessage(content="x" * 5000), UserMessage(content="short")]
    assert (await provider.run_shield(s, messages, {})).violation is None


async def test_large_inputs_and_pattern_rules_scan_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    real_scan = provider_module.scan

    def recording_scan(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(provider_module, "scan", recording_scan)
    provider = await make({"offload_chars": 65536})
    main = threading.current_thread().name
    pii = shield("pii")

    assert await run(provider, pii, "small and safe") is None
    big = ("lorem ipsum dolor sit amet " * 4000) + f" card {CARD}"  # ~108 KB
    violation = await run(provider, pii, big)
    assert violation.metadata["violation_type"] == "pii:credit_card"
    pattern = shield("p", params={"rules": [{"name": "p", "pattern": "secret-[0-9]+"}]})
    assert (await run(provider, pattern, "tiny secret-42")).violation_level == "error"
    assert threads[0] == main
    assert threads[1] != main and threads[2] != main


async def test_large_input_is_scanned_completely() -> None:
    provider = await make({})
    filler = "The quick brown fox jumps over the lazy dog. " * 10_000  # 450 KB
    violation = await run(provider, shield("pii"), filler + EMAIL + filler)
    assert violation.metadata["violation_type"] == "pii:email"
    assert violation.metadata["matches"][0]["start"] == len(filler)


async def test_a_catastrophic_pattern_times_out_instead_of_answering_safe() -> None:
    provider = await make({"pattern_timeout_seconds": 0.2})
    s = shield("redos", params={"rules": [{"name": "redos", "pattern": "(a|aa)+$"}]})
    await provider.register_shield(s)
    with pytest.raises(UpstreamTimeoutError) as info:
        await provider.run_shield(s, [UserMessage(content="a" * 60 + "!")], dict(s.params))
    assert info.value.status == 504
    assert "rule 'redos'" in info.value.message and "pattern_timeout_seconds" in info.value.message


async def test_nothing_to_check_is_safe() -> None:
    provider = await make({})
    assert await run(provider, shield("pii"), "") is None
    assert await run(provider, shield("pii"), UserMessage(content=[])) is None


# -- plumbing --------------------------------------------------------------------------------------


async def test_health_and_hook() -> None:
    provider = await make({})
    assert await provider.health() == {"status": "OK"}
    [spec] = lamina_safety_providers()
    assert spec.api == Api.safety
    assert spec.provider_type == "inline::rules"
    assert spec.config_class == "lamina_rules.config:RulesConfig"
    assert spec.factory == "lamina_rules.provider:create_provider"
