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
    model = ls_client.models.register(model_id="team/chat-v1", provider_id="llamacpp",
                                      provider_model_id="smollm2", metadata={"owner": "team"})
    assert model.identifier == "team/chat-v1"
    try:
        answer = ls_client.inference.chat_completion(model_id="team/chat-v1", messages=SAY,
                                                     sampling_params={"max_tokens": 4})
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
        ls_client.models.register(model_id="e2", provider_id="llamacpp-embed", provider_model_id="smollm2-embed",
                                  model_type="embedding")


def test_chat_completion(ls_client: LlamaStackClient) -> None:
    answer = ls_client.inference.chat_completion(
        model_id="smollm2", messages=SAY, sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 8})
    message = answer.completion_message
    assert message.role == "assistant"
    assert isinstance(message.content, str) and message.content.strip()
    assert message.stop_reason in ("end_of_turn", "out_of_tokens")
    metrics = {m.metric: m.value for m in answer.metrics}
    assert metrics["completion_tokens"] >= 1
    assert metrics["total_tokens"] == metrics["prompt_tokens"] + metrics["completion_tokens"]


def test_chat_completion_greedy_is_deterministic(ls_client: LlamaStackClient) -> None:
    params = {"strategy": {"type": "greedy"}, "max_tokens": 12}
    first = ls_client.inference.chat_completion(model_id="smollm2", messages=SAY, sampling_params=params)
    second = ls_client.inference.chat_completion(model_id="smollm2", messages=SAY, sampling_params=params)
    assert first.completion_message.content == second.completion_message.content


def test_chat_completion_stream(ls_client: LlamaStackClient) -> None:
    chunks = list(ls_client.inference.chat_completion(
        model_id="smollm2", messages=SAY, stream=True, sampling_params={"max_tokens": 8}))
    kinds = [c.event.event_type for c in chunks]
    assert kinds[0] == "start" and kinds[-1] == "complete"
    assert set(kinds[1:-1]) == {"progress"}
    text = "".join(c.event.delta.text for c in chunks if c.event.delta.type == "text")
    assert text.strip()
    assert chunks[-1].event.stop_reason in ("end_of_turn", "out_of_tokens")


def test_chat_completion_json_schema(ls_client: LlamaStackClient) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    answer = ls_client.inference.chat_completion(
        model_id="smollm2", messages=[{"role": "user", "content": "Invent a person."}],
        response_format={"type": "json_schema", "json_schema": schema},
        sampling_params={"max_tokens": 60})
    doc = json.loads(answer.completion_message.content)
    assert isinstance(doc["name"], str) and isinstance(doc["age"], int)


def test_chat_completion_logprobs(ls_client: LlamaStackClient) -> None:
    answer = ls_client.inference.chat_completion(model_id="smollm2", messages=SAY, logprobs={"top_k": 2},
                                                 sampling_params={"max_tokens": 3})
    assert answer.logprobs and len(answer.logprobs) >= 1
    first = answer.logprobs[0].logprobs_by_token
    assert 1 <= len(first) <= 2 and all(v <= 0 for v in first.values())


def test_chat_completion_stop_sequence(ls_client: LlamaStackClient) -> None:
    answer = ls_client.inference.chat_completion(
        model_id="smollm2", messages=[{"role": "user", "content": "Count from 1 to 10 with commas."}],
        sampling_params={"max_tokens": 40, "stop": ["5"], "strategy": {"type": "greedy"}})
    assert "5" not in answer.completion_message.content
    assert "6" not in answer.completion_message.content


def test_completion(ls_client: LlamaStackClient) -> None:
    answer = ls_client.inference.completion(model_id="smollm2", content="The capital of France is",
                                            sampling_params={"max_tokens": 5})
    assert answer.content
    assert answer.stop_reason in ("end_of_turn", "out_of_tokens")


def test_completion_stream(ls_client: LlamaStackClient) -> None:
    chunks = list(ls_client.inference.completion(model_id="smollm2", content="Once upon a time",
                                                 stream=True, sampling_params={"max_tokens": 6}))
    assert "".join(c.delta for c in chunks).strip()
    assert chunks[-1].stop_reason in ("end_of_turn", "out_of_tokens")


def test_embeddings(ls_client: LlamaStackClient) -> None:
    answer = ls_client.inference.embeddings(model_id="smollm2-embed", contents=["a cat", "a dog", "an invoice"])
    vectors = answer.embeddings
    assert len(vectors) == 3 and all(len(v) == 576 for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])


def test_embeddings_on_an_llm_is_400(ls_client: LlamaStackClient) -> None:
    with pytest.raises(BadRequestError, match="embedding"):
        ls_client.inference.embeddings(model_id="smollm2", contents=["x"])


def test_chat_on_an_embedding_model_is_400(ls_client: LlamaStackClient) -> None:
    with pytest.raises(BadRequestError, match="embedding"):
        ls_client.inference.chat_completion(model_id="smollm2-embed", messages=SAY)


def test_tools_pass_through_as_native_tool_calls(ls_client: LlamaStackClient) -> None:
    """SmolLM2 does not emit tool calls, so the tool path is checked against the fake upstream."""
    tool = {"tool_name": "get_weather", "description": "Weather for a city",
            "parameters": {"city": {"param_type": "string", "description": "City", "required": True}}}
    answer = ls_client.inference.chat_completion(
        model_id="fault/ok", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[tool],
        tool_config={"tool_choice": "required"})
    calls = answer.completion_message.tool_calls
    assert len(calls) == 1 and calls[0].tool_name == "get_weather"
    assert calls[0].arguments == {"city": "Paris"}
    chunks = list(ls_client.inference.chat_completion(
        model_id="fault/ok", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[tool],
        tool_config={"tool_choice": "required"}, stream=True))
    done = [c.event.delta for c in chunks if c.event.delta.type == "tool_call"
            and c.event.delta.parse_status == "succeeded"]
    assert len(done) == 1 and done[0].tool_call.tool_name == "get_weather"
    assert chunks[-1].event.stop_reason == "end_of_message"


def test_native_request_reaches_the_upstream_translated(ls_client: LlamaStackClient) -> None:
    """The echo model returns the body the upstream received, so the translation is visible."""
    answer = ls_client.inference.chat_completion(
        model_id="fault/echo", messages=[{"role": "system", "content": "Be brief."}, *SAY],
        sampling_params={"strategy": {"type": "top_p", "temperature": 0.5, "top_p": 0.9}, "max_tokens": 7,
                         "stop": ["\n\n"], "repetition_penalty": 1.1})
    sent = json.loads(answer.completion_message.content)
    assert sent["model"] == "echo"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["temperature"] == 0.5 and sent["top_p"] == 0.9
    assert sent["max_tokens"] == 7 and sent["stop"] == ["\n\n"]
    assert sent["repetition_penalty"] == 1.1
