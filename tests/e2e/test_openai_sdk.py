"""The official OpenAI SDK against a real ``lamina run`` and llama.cpp upstream."""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

pytestmark = pytest.mark.e2e

SAY = [{"role": "user", "content": "Say hello in one word."}]


def test_models_list_and_retrieve(oa_client: OpenAI) -> None:
    ids = {m.id for m in oa_client.models.list()}
    assert {"smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-embed"} <= ids
    model = oa_client.models.retrieve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert model.id == "HuggingFaceTB/SmolLM2-135M-Instruct" and model.owned_by == "llamacpp"


@pytest.mark.parametrize("client_fixture", ["oa_client", "oa_client_v1"])
def test_chat_completion_on_both_prefixes(client_fixture: str, request: pytest.FixtureRequest) -> None:
    client: OpenAI = request.getfixturevalue(client_fixture)
    answer = client.chat.completions.create(
        model="HuggingFaceTB/SmolLM2-135M-Instruct", messages=SAY, max_tokens=8, seed=7, temperature=0
    )
    assert answer.model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens >= 1


def test_n_choices(oa_client: OpenAI) -> None:
    answer = oa_client.chat.completions.create(model="smollm2", messages=SAY, max_tokens=4, n=2)
    assert [c.index for c in answer.choices] == [0, 1]


def test_stop(oa_client: OpenAI) -> None:
    answer = oa_client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Count from 1 to 10 with commas."}],
        max_tokens=40,
        stop=["5"],
        temperature=0,
    )
    assert "5" not in answer.choices[0].message.content
    assert "6" not in answer.choices[0].message.content


def test_tools_and_tool_choice_pass_through(oa_client: OpenAI) -> None:
    """SmolLM2 emits no tool calls, so the pass-through is checked against the fake upstream."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    answer = oa_client.chat.completions.create(
        model="fault/ok",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    stream = oa_client.chat.completions.create(
        model="fault/ok",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=tools,
        tool_choice="required",
        stream=True,
    )
    args = "".join(
        tc.function.arguments or ""
        for c in stream
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
    )
    assert json.loads(args) == {"city": "Paris"}


def test_unknown_fields_pass_through_to_the_upstream(oa_client: OpenAI) -> None:
    answer = oa_client.chat.completions.create(
        model="fault/echo",
        messages=SAY,
        max_tokens=5,
        seed=3,
        n=1,
        stop=["x"],
        logprobs=True,
        extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
    )
    sent = json.loads(answer.choices[0].message.content)
    assert (
        sent["model"] == "echo" and sent["seed"] == 3 and sent["stop"] == ["x"] and sent["logprobs"] is True
    )
    assert sent["top_k"] == 20 and sent["chat_template_kwargs"] == {"enable_thinking": False}


def test_unknown_model_is_404(oa_client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oa_client.chat.completions.create(model="gpt-nope", messages=SAY)
    assert "gpt-nope" in info.value.message and "smollm2" in info.value.message


def test_missing_field_is_400_naming_it(oa_client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oa_client.chat.completions.create(model="smollm2", messages="not a list")  # type: ignore[arg-type]
    assert "messages" in info.value.message
