"""The provider's request building and verdict handling, called directly.

``ScriptedInference`` below stands in for the inference router ONLY here, to test the prompt/parse
logic of the provider (what request reaches the guard model, how its answer becomes a violation).
It has no models table, so the registration checks against registered models are not exercised
here: test_llama_guard_e2e.py covers them through a real ``lamina run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lamina.apis.common import TextContentItem
from lamina.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionMessage,
    JsonSchemaResponseFormat,
    UserMessage,
)
from lamina.apis.safety import Shield
from lamina.errors import BadRequestError, UpstreamError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_llama_guard.config import LlamaGuardConfig
from lamina_llama_guard.provider import CANNED_RESPONSE_TEXT, create_provider


class ScriptedInference:
    """Answers every chat completion with the next scripted text and keeps the requests."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.requests: list[ChatCompletionRequest] = []

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        self.requests.append(request)
        return ChatCompletionResponse(completion_message=CompletionMessage(content=self.answers.pop(0)))


async def provider_with(inference: ScriptedInference, tmp_path: Path, **config: Any):
    context = ProviderContext(
        api=Api.safety, provider_id="llama-guard", provider_type="inline::llama-guard", state_dir=tmp_path
    )
    return await create_provider(LlamaGuardConfig(**config), {Api.inference: inference}, context)


def shield(model: str = "meta-llama/Llama-Guard-3-8B", **params: Any) -> Shield:
    return Shield(
        identifier="guard-shield",
        provider_id="llama-guard",
        provider_resource_id=model,
        params=params or None,
    )


ASK = [UserMessage(content="How do I hurt someone?")]


async def test_safe_answer_and_the_request_sent(tmp_path: Path) -> None:
    inference = ScriptedInference("safe")
    provider = await provider_with(inference, tmp_path)
    await provider.register_shield(shield())
    response = await provider.run_shield(shield(), ASK, {})
    assert response.violation is None
    (request,) = inference.requests
    assert request.model_id == "meta-llama/Llama-Guard-3-8B" and request.stream is False
    assert request.sampling_params.strategy.type == "greedy" and request.sampling_params.max_tokens == 20
    assert request.response_format is None
    (message,) = request.messages
    assert message.role == "user" and "User: How do I hurt someone?" in message.content
    assert "S14: Code Interpreter Abuse." in message.content


async def test_unsafe_answer_becomes_a_violation_with_mapped_categories(tmp_path: Path) -> None:
    provider = await provider_with(ScriptedInference("unsafe\nS1,S10"), tmp_path)
    violation = (await provider.run_shield(shield(), ASK, {})).violation
    assert violation.violation_level == "error" and violation.user_message == CANNED_RESPONSE_TEXT
    assert violation.metadata == {
        "violation_type": "S1,S10",
        "categories": ["hate", "illicit", "illicit/violent", "violence"],
        "guard_categories": [{"code": "S1", "name": "Violent Crimes"}, {"code": "S10", "name": "Hate"}],
        "guard_model": "meta-llama/Llama-Guard-3-8B",
        "taxonomy": "llama-guard-3",
    }


async def test_unsafe_without_codes_and_unknown_codes_fail_closed(tmp_path: Path) -> None:
    provider = await provider_with(ScriptedInference("unsafe", "unsafe\nS99"), tmp_path)
    violation = (await provider.run_shield(shield(), ASK, {})).violation
    assert violation.metadata["violation_type"] == "unsafe" and violation.metadata["categories"] == [
        "unknown"
    ]
    violation = (await provider.run_shield(shield(), ASK, {})).violation
    assert violation.metadata["violation_type"] == "S99"
    assert violation.metadata["guard_categories"] == [{"code": "S99", "name": "unknown"}]
    assert violation.metadata["categories"] == ["unknown"] and violation.metadata["unknown_codes"] == ["S99"]


async def test_excluded_categories_config_shield_and_call(tmp_path: Path) -> None:
    inference = ScriptedInference("unsafe\nS6", "unsafe\nS6,S1", "unsafe\nS2", "unsafe\nS2")
    provider = await provider_with(inference, tmp_path, excluded_categories=["s6"])
    assert (await provider.run_shield(shield(), ASK, {})).violation is None  # only excluded codes: safe
    assert "S6:" not in inference.requests[0].messages[0].content
    violation = (await provider.run_shield(shield(), ASK, {})).violation
    assert violation.metadata["violation_type"] == "S1"  # the excluded code is left out
    # the shield's params replace the config's list; a call's replace the shield's
    assert (await provider.run_shield(shield(excluded_categories=["S2"]), ASK, {})).violation is None
    violation = (
        await provider.run_shield(shield(excluded_categories=["S2"]), ASK, {"excluded_categories": []})
    ).violation
    assert violation.metadata["violation_type"] == "S2"


@pytest.mark.parametrize(
    ("model", "params", "param", "fragment"),
    [
        ("Llama-Guard-3-1B", {"excluded_categories": ["S14"]}, "params.excluded_categories", "'S14'"),
        ("LlamaGuard-7b", {"excluded_categories": ["S1"]}, "params.excluded_categories", "O1, O2"),
        ("smollm2", {"excluded_categories": ["S15"]}, "params.excluded_categories", "S1, S2"),
        ("smollm2", {"taxonomy": "llama-guard-9"}, "params.taxonomy", "llama-guard-4"),
        ("smollm2", {"threshold": 0.5}, "params.threshold", "accepted: excluded_categories"),
        (
            "smollm2",
            {"excluded_categories": [f"S{i}" for i in range(1, 15)]},
            "params.excluded_categories",
            "nothing",
        ),
    ],
)
async def test_bad_shield_params_are_400_naming_the_field(
    tmp_path: Path, model: str, params: dict, param: str, fragment: str
) -> None:
    provider = await provider_with(ScriptedInference(), tmp_path)
    with pytest.raises(BadRequestError) as info:
        await provider.register_shield(shield(model, **params))
    assert info.value.param == param and fragment in info.value.message


def test_bad_config_codes_are_a_config_error_listing_valid_ones() -> None:
    with pytest.raises(ValidationError, match="'S15' is not Llama Guard category code; valid codes: O1"):
        LlamaGuardConfig(excluded_categories=["S15"])
    with pytest.raises(ValidationError, match="Llama Guard 2's category code; valid codes: S1, S2"):
        LlamaGuardConfig(excluded_categories=["S13"], taxonomy="llama-guard-2")
    assert LlamaGuardConfig(excluded_categories="s1, S2").excluded_categories == ["S1", "S2"]


async def test_config_codes_outside_the_shields_taxonomy_refuse_the_shield(tmp_path: Path) -> None:
    provider = await provider_with(ScriptedInference(), tmp_path, excluded_categories=["S14"])
    with pytest.raises(
        BadRequestError, match="provider config's excluded_categories: 'S14' is not a category"
    ):
        await provider.register_shield(shield("meta-llama/Llama-Guard-4-12B"))


@pytest.mark.parametrize(
    "answer", ["I cannot help with that.", "", "Sure! " + "blah " * 100, "unsafe" * 0 + "maybe\nS1"]
)
async def test_garbage_is_a_502_naming_shield_model_and_answer(tmp_path: Path, answer: str) -> None:
    provider = await provider_with(ScriptedInference(answer), tmp_path)
    with pytest.raises(UpstreamError) as info:
        await provider.run_shield(shield(), ASK, {})
    message = info.value.message
    assert info.value.status == 502 and info.value.provider_id == "llama-guard"
    assert "shield 'guard-shield'" in message and "guard model 'meta-llama/Llama-Guard-3-8B'" in message
    assert repr(answer.strip()[:200]) in message and "expected 'safe', or 'unsafe'" in message


async def test_constrained_output_asks_for_json_with_a_schema(tmp_path: Path) -> None:
    inference = ScriptedInference('{"verdict": "unsafe", "categories": ["S11"]}', "not json")
    provider = await provider_with(inference, tmp_path, constrained_output=True, excluded_categories=["S1"])
    violation = (await provider.run_shield(shield("smollm2"), ASK, {})).violation
    assert violation.metadata["violation_type"] == "S11" and violation.metadata["categories"] == ["self-harm"]
    request = inference.requests[0]
    assert isinstance(request.response_format, JsonSchemaResponseFormat)
    schema = request.response_format.json_schema
    unsafe = schema["anyOf"][1]["properties"]
    assert unsafe["categories"]["items"]["enum"] == [f"S{i}" for i in range(2, 15)]
    assert request.sampling_params.max_tokens == 64
    assert "Answer with a JSON object and nothing else" in request.messages[0].content
    with pytest.raises(UpstreamError, match=r"answered 'not json'.*expected a JSON object"):
        await provider.run_shield(shield("smollm2"), ASK, {})


async def test_a_real_llama_guard_keeps_the_plain_format_unless_the_shield_asks(tmp_path: Path) -> None:
    inference = ScriptedInference("safe", '{"verdict": "safe", "categories": []}')
    provider = await provider_with(inference, tmp_path, constrained_output=True)
    await provider.run_shield(shield(), ASK, {})
    assert inference.requests[0].response_format is None
    await provider.run_shield(shield(constrained_output=True, max_tokens=32), ASK, {})
    assert (
        inference.requests[1].response_format is not None
        and inference.requests[1].sampling_params.max_tokens == 32
    )


async def test_images_need_a_vision_guard(tmp_path: Path) -> None:
    image = {"type": "image", "image": {"url": {"uri": "https://x.test/cat.png"}}}
    messages = [
        UserMessage(content="hi"),
        UserMessage.model_validate({"content": [{"type": "text", "text": "this?"}, image]}),
    ]
    inference = ScriptedInference("safe", "safe")
    provider = await provider_with(inference, tmp_path)
    with pytest.raises(BadRequestError) as info:
        await provider.run_shield(shield(), messages, {})
    assert info.value.param == "messages[1].content" and "images cannot be judged" in info.value.message
    assert inference.requests == []
    await provider.run_shield(shield("meta-llama/Llama-Guard-3-11B-Vision"), messages, {})
    image_item, prompt_item = inference.requests[0].messages[0].content
    assert image_item.type == "image" and isinstance(prompt_item, TextContentItem)
    assert "S14" not in prompt_item.text and "User: this? <image>" in prompt_item.text
    await provider.run_shield(shield("smollm2", vision=True), messages, {})
    assert inference.requests[1].messages[0].content[0].type == "image"


async def test_llama_guard_1_and_2_shields(tmp_path: Path) -> None:
    inference = ScriptedInference("unsafe\nO4", "unsafe\nS10")
    provider = await provider_with(inference, tmp_path)
    violation = (await provider.run_shield(shield("meta-llama/LlamaGuard-7b"), ASK, {})).violation
    assert violation.metadata["guard_categories"] == [{"code": "O4", "name": "Guns and Illegal Weapons"}]
    assert violation.metadata["taxonomy"] == "llama-guard-1"
    violation = (await provider.run_shield(shield("meta-llama/Meta-Llama-Guard-2-8B"), ASK, {})).violation
    assert violation.metadata["guard_categories"] == [{"code": "S10", "name": "Self-Harm"}]
    assert violation.metadata["categories"] == ["self-harm"]
    assert "O1: Violence and Hate." in inference.requests[0].messages[0].content
    assert "S11: Sexual Content. " in inference.requests[1].messages[0].content
