"""The official llama-stack-client 0.2.12 against a real ``lamina run`` and llama.cpp upstream."""

from __future__ import annotations

import json

import pytest
from llama_stack_client import BadRequestError, LlamaStackClient, NotFoundError

pytestmark = pytest.mark.e2e

SAY = [{"role": "user", "content": "Say hello in one word."}]


def test_models_list_includes_config_models_with_both_shapes(ls_client: LlamaStackClient) -> None:
    models = {m.identifier: m for m in ls_client.models.list()}
    assert models["smollm2"].provider_id == "llamacpp"
    assert models["smollm2"].model_type == "llm"
    alias = models["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert alias.provider_resource_id == "smollm2"
    embed = models["smollm2-embed"]
    assert embed.model_type == "embedding"
    assert embed.metadata["embedding_dimension"] == 576


def test_model_ids_with_slashes_round_trip(ls_client: LlamaStackClient) -> None:
    model = ls_client.models.retrieve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert model.identifier == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert model.provider_resource_id == "smollm2"


def test_register_and_unregister_a_model(ls_client: LlamaStackClient) -> None:
    model = ls_client.models.register(
        model_id="team/chat-v1",
        provider_id="llamacpp",
        provider_model_id="smollm2",
        metadata={"owner": "team"},
    )
    assert model.identifier == "team/chat-v1"
    try:
        answer = ls_client.inference.chat_completion(
            model_id="team/chat-v1", messages=SAY, sampling_params={"max_tokens": 4}
        )
        assert answer.completion_message.content
    finally:
        ls_client.models.unregister("team/chat-v1")
    with pytest.raises(NotFoundError, match="team/chat-v1"):
        ls_client.models.retrieve("team/chat-v1")


def test_unknown_model_is_404_listing_registered_models(ls_client: LlamaStackClient) -> None:
    with pytest.raises(NotFoundError) as info:
        ls_client.inference.chat_completion(model_id="no-such-model", messages=SAY)
    assert "no-such-model" in str(info.value)
    assert "smollm2" in str(info.value)


def test_registering_on_an_unconfigured_provider_is_400(ls_client: LlamaStackClient) -> None:
    with pytest.raises(BadRequestError, match="not-a-provider"):
        ls_client.models.register(model_id="x", provider_id="not-a-provider")


def test_registering_a_model_the_upstream_does_not_serve_is_400(ls_client: LlamaStackClient) -> None:
    with pytest.raises(BadRequestError, match="does not serve model 'gpt-9'"):
        ls_client.models.register(model_id="x", provider_id="llamacpp", provider_model_id="gpt-9")


def test_embedding_model_without_dimension_is_400(ls_client: LlamaStackClient) -> None:
    with pytest.raises(BadRequestError, match="embedding_dimension"):
        ls_client.models.register(
            model_id="e2",
            provider_id="llamacpp-embed",
            provider_model_id="smollm2-embed",
            model_type="embedding",
        )


def test_chat_completion_greedy_is_deterministic(ls_client: LlamaStackClient) -> None:
    params = {"strategy": {"type": "greedy"}, "max_tokens": 12}
    first = ls_client.inference.chat_completion(model_id="smollm2", messages=SAY, sampling_params=params)
    second = ls_client.inference.chat_completion(model_id="smollm2", messages=SAY, sampling_params=params)
    assert first.completion_message.content == second.completion_message.content


def test_tools_pass_through_as_native_tool_calls(ls_client: LlamaStackClient) -> None:
    """SmolLM2 does not emit tool calls, so the tool path is checked against the fake upstream."""
    tool = {
        "tool_name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"city": {"param_type": "string", "description": "City", "required": True}},
    }
    answer = ls_client.inference.chat_completion(
        model_id="fault/ok",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[tool],
        tool_config={"tool_choice": "required"},
    )
    calls = answer.completion_message.tool_calls
    assert len(calls) == 1 and calls[0].tool_name == "get_weather"
    assert calls[0].arguments == {"city": "Paris"}
    chunks = list(
        ls_client.inference.chat_completion(
            model_id="fault/ok",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[tool],
            tool_config={"tool_choice": "required"},
            stream=True,
        )
    )
    done = [
        c.event.delta
        for c in chunks
        if c.event.delta.type == "tool_call" and c.event.delta.parse_status == "succeeded"
    ]
    assert len(done) == 1 and done[0].tool_call.tool_name == "get_weather"
    assert chunks[-1].event.stop_reason == "end_of_message"


def test_native_request_reaches_the_upstream_translated(ls_client: LlamaStackClient) -> None:
    """The echo model returns the body the upstream received, so the translation is visible."""
    answer = ls_client.inference.chat_completion(
        model_id="fault/echo",
        messages=[{"role": "system", "content": "Be brief."}, *SAY],
        sampling_params={
            "strategy": {"type": "top_p", "temperature": 0.5, "top_p": 0.9},
            "max_tokens": 7,
            "stop": ["\n\n"],
            "repetition_penalty": 1.1,
        },
    )
    sent = json.loads(answer.completion_message.content)
    assert sent["model"] == "echo"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["temperature"] == 0.5 and sent["top_p"] == 0.9
    assert sent["max_tokens"] == 7 and sent["stop"] == ["\n\n"]
    assert sent["repetition_penalty"] == 1.1
