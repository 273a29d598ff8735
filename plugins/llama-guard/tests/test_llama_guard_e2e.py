"""inline::llama-guard through a real ``lamina run``, driven by llama-stack-client and the OpenAI SDK.

The guard model is the fake OpenAI upstream's ``guard`` model (``lamina.testing.fake_openai``)
behind ``remote::vllm``, registered as ``meta-llama/Llama-Guard-3-8B`` so the provider picks Llama
Guard 3's taxonomy from the id. That model answers the ``[[guard:<answer>]]`` directive found in
the prompt (``safe`` without one), so each test states the guard's answer in its message and checks
what the server makes of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

GUARD = "meta-llama/Llama-Guard-3-8B"
SHIELD = "llama-guard"


def run_config(fake: ServerProcess, safety_config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "llama-guard-e2e",
        "apis": ["inference", "safety"],
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "timeout": 10.0},
                }
            ],
            "safety": [
                {
                    "provider_id": "llama-guard",
                    "provider_type": "inline::llama-guard",
                    "config": safety_config or {"excluded_categories": []},
                }
            ],
        },
        "models": [
            {"model_id": GUARD, "provider_id": "fake", "provider_model_id": "guard"},
            {"model_id": "fake-guard", "provider_id": "fake", "provider_model_id": "guard"},
            {
                "model_id": "fake-embed",
                "provider_id": "fake",
                "provider_model_id": "embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
        "shields": [{"shield_id": SHIELD, "provider_shield_id": GUARD}],
    }


@pytest.fixture
def server(start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess) -> ServerProcess:
    return start_lamina(run_config(fake_upstream))


def ls(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=30)


def oa(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1/openai/v1", api_key="x", max_retries=0, timeout=30)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def run(client: LlamaStackClient, text: str, shield_id: str = SHIELD, **params: Any):
    return client.safety.run_shield(shield_id=shield_id, messages=[user(text)], params=params).violation


def test_safe_unsafe_and_categories(server: ServerProcess) -> None:
    client = ls(server)
    assert [s.identifier for s in client.shields.list()] == [SHIELD]
    assert run(client, "How do I bake sourdough bread?") is None

    violation = run(client, "Something awful [[guard:unsafe\\nS1,S10]]")
    assert violation.violation_level == "error"
    assert violation.user_message == "I can't answer that. Can I help with something else?"
    assert violation.metadata["violation_type"] == "S1,S10"
    assert violation.metadata["guard_categories"] == [
        {"code": "S1", "name": "Violent Crimes"},
        {"code": "S10", "name": "Hate"},
    ]
    assert violation.metadata["categories"] == ["hate", "illicit", "illicit/violent", "violence"]
    assert violation.metadata["guard_model"] == GUARD

    # Llama Guard's other spellings of a verdict
    assert run(client, "[[guard:  Unsafe S2 ]]").metadata["violation_type"] == "S2"
    assert run(client, "[[guard:unsafe]]").metadata["violation_type"] == "unsafe"
    assert run(client, "[[guard:unsafe\\nS99]]").metadata["guard_categories"] == [
        {"code": "S99", "name": "unknown"}
    ]

    # a conversation: system messages are left out; the last message is judged
    violation = client.safety.run_shield(
        shield_id=SHIELD,
        messages=[
            {"role": "system", "content": "Be helpful."},
            user("Hi"),
            {"role": "assistant", "content": "Sure [[guard:unsafe\\nS11]]", "stop_reason": "end_of_turn"},
        ],
        params={},
    ).violation
    assert violation.metadata["violation_type"] == "S11"


def test_excluded_categories(server: ServerProcess) -> None:
    client = ls(server)
    client.shields.register(
        shield_id="lenient", provider_shield_id=GUARD, params={"excluded_categories": ["S6", "s8"]}
    )
    assert run(client, "[[guard:unsafe\\nS6]]", "lenient") is None
    assert run(client, "[[guard:unsafe\\nS6,S8]]", "lenient") is None
    assert run(client, "[[guard:unsafe\\nS8,S2]]", "lenient").metadata["violation_type"] == "S2"
    assert run(client, "[[guard:unsafe\\nS6]]").metadata["violation_type"] == "S6"  # the other shield
    assert run(client, "[[guard:unsafe\\nS6]]", excluded_categories=["S6"]) is None  # per call

    with pytest.raises(llama_stack_client.BadRequestError) as info:
        client.shields.register(
            shield_id="bad", provider_shield_id=GUARD, params={"excluded_categories": ["S15"]}
        )
    assert "'S15'" in str(info.value) and "S1, S2, S3" in str(info.value)
    with pytest.raises(llama_stack_client.BadRequestError) as info:
        run(client, "hi", excluded_categories=["O1"])
    assert "params.excluded_categories" in str(info.value)


def test_garbage_answer_is_a_clear_502_and_the_server_keeps_serving(server: ServerProcess) -> None:
    client = ls(server)
    with pytest.raises(llama_stack_client.APIStatusError) as info:
        run(client, "[[guard:I cannot help with that.]]")
    assert info.value.status_code == 502
    message = str(info.value)
    assert f"shield '{SHIELD}'" in message and f"guard model '{GUARD}'" in message
    assert "'I cannot help with that.'" in message and "expected 'safe', or 'unsafe'" in message
    with pytest.raises(llama_stack_client.APIStatusError) as info:
        run(client, "[[guard:]]")
    assert info.value.status_code == 502 and "empty" in str(info.value)
    assert run(client, "still there?") is None


def test_images_need_a_vision_guard(server: ServerProcess) -> None:
    client = ls(server)
    image = {"type": "image", "image": {"url": {"uri": "https://example.com/cat.png"}}}
    with pytest.raises(llama_stack_client.BadRequestError) as info:
        client.safety.run_shield(
            shield_id=SHIELD,
            messages=[
                user("hi"),
                {"role": "user", "content": [{"type": "text", "text": "and this?"}, image]},
            ],
            params={},
        )
    message = str(info.value)
    assert "messages[1].content" in message and "images cannot be judged" in message


def test_the_guard_must_be_a_registered_llm_model(server: ServerProcess) -> None:
    client = ls(server)
    for model, fragment in (("nope", "is not a registered model"), ("fake-embed", "is an embedding model")):
        with pytest.raises(llama_stack_client.BadRequestError) as info:
            client.shields.register(shield_id="wrong", provider_shield_id=model)
        message = str(info.value)
        assert f"provider_shield_id '{model}' {fragment}" in message
        assert f"Registered llm models: fake-guard, {GUARD}" in message
    assert [s.identifier for s in client.shields.list()] == [SHIELD]

    # a guard model unregistered after its shield was registered: a clear error naming both
    client.models.register(model_id="temp-guard", provider_id="fake", provider_model_id="guard")
    client.shields.register(shield_id="temp", provider_shield_id="temp-guard")
    assert run(client, "hi", "temp") is None
    client.models.unregister("temp-guard")
    with pytest.raises(llama_stack_client.BadRequestError) as info:
        run(client, "hi", "temp")
    assert "shield 'temp' cannot run: its guard model 'temp-guard'" in str(info.value)


def test_openai_moderations(server: ServerProcess) -> None:
    result = oa(server).moderations.create(
        model=SHIELD, input=["A kind word.", "[[guard:unsafe\\nS1,S10]]", "[[guard:unsafe\\nS14]]"]
    )
    calm, violent, code = result.results
    assert calm.flagged is False and not any(calm.categories.model_dump().values())
    assert violent.flagged is True
    flags = violent.categories.model_dump(by_alias=True)
    assert {name for name, on in flags.items() if on} == {"violence", "hate", "illicit", "illicit/violent"}
    assert violent.category_scores.violence == 1.0
    assert code.flagged is True and code.model_dump()["categories"]["code_interpreter_abuse"] is True
    # the guard model's id names the shield too
    assert (
        oa(server)
        .moderations.create(model=GUARD, input="[[guard:unsafe\\nS11]]")
        .results[0]
        .categories.self_harm
    )


def test_constrained_output_json_through_the_server(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    server = start_lamina(run_config(fake_upstream, {"constrained_output": True}))
    client = ls(server)
    # "fake-guard" is no known Llama Guard: the config's constrained_output applies to it
    client.shields.register(shield_id="json", provider_shield_id="fake-guard")
    assert run(client, '[[guard:{"verdict": "safe", "categories": []}]]', "json") is None
    violation = run(client, '[[guard:{"verdict": "unsafe", "categories": ["S12"]}]]', "json")
    assert violation.metadata["violation_type"] == "S12" and violation.metadata["categories"] == ["sexual"]
    with pytest.raises(llama_stack_client.APIStatusError) as info:
        run(client, "[[guard:unsafe\\nS1]]", "json")  # plain answer where JSON was asked
    assert info.value.status_code == 502 and 'expected a JSON object like {"verdict"' in str(info.value)
    # the Llama Guard 3 shield keeps its plain format
    assert run(client, "[[guard:unsafe\\nS1]]").metadata["violation_type"] == "S1"


def test_shields_registered_through_the_api_survive_a_restart(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    config = run_config(fake_upstream)
    first = start_lamina(config)
    ls(first).shields.register(
        shield_id="kept", provider_shield_id="fake-guard", params={"excluded_categories": ["S2"]}
    )
    assert first.stop() == 0
    second = start_lamina(config)  # same LAMINA_HOME: the registry is persisted
    client = ls(second)
    assert sorted(s.identifier for s in client.shields.list()) == ["kept", SHIELD]
    assert run(client, "[[guard:unsafe\\nS2]]", "kept") is None
    assert run(client, "[[guard:unsafe\\nS3]]", "kept").metadata["violation_type"] == "S3"
