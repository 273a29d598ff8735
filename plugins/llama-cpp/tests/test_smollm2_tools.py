"""SmolLM2's tool format: choosing it, the prompt, the history it renders, its grammar, its answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.apis.models import Model
from lamina.errors import BadRequestError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_llama_cpp import smollm2_tools, tools
from lamina_llama_cpp.config import LlamaCppConfig
from lamina_llama_cpp.provider import LlamaCppProvider
from lamina_llama_cpp.runtime import GGUFInfo, bundled_path, read_gguf_info

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{% endfor %}"


def _calls(calls: list[dict]) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


def _provider(tmp_path: Path, **config) -> LlamaCppProvider:
    context = ProviderContext(
        api=Api.inference, provider_id="llama-cpp", provider_type="inline::llama-cpp", state_dir=tmp_path
    )
    return LlamaCppProvider(LlamaCppConfig(**config), context)


def _body(**extra) -> dict:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    return {"messages": messages, "tools": [WEATHER], **extra}


def test_the_bundled_gguf_is_recognised_as_smollm2() -> None:
    info = read_gguf_info(bundled_path("SmolLM2-135M-Instruct"))
    assert not info.template_knows_tools and smollm2_tools.matches(info)
    assert info.architecture == "llama" and info.tokenizer_pre == "smollm"


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (GGUFInfo(name="Smollm2 135M 8k", chat_template=CHATML), "smollm2"),
        (GGUFInfo(basename="SmolLM2", chat_template=CHATML), "smollm2"),
        (GGUFInfo(name="my-finetune", tokenizer_pre="smollm", chat_template=CHATML), "smollm2"),
        (GGUFInfo(name="Qwen2.5 0.5B", tokenizer_pre="qwen2", chat_template=CHATML), "lamina"),
        (GGUFInfo(name="SmolLM3", tokenizer_pre="smollm", chat_template="{% if tools %}..."), "native"),
    ],
)
def test_auto_picks_the_format_from_the_gguf(info: GGUFInfo, expected: str, tmp_path: Path) -> None:
    provider = _provider(tmp_path)
    runtime = type("R", (), {"info": info})()
    model = Model(identifier="m", provider_id="llama-cpp")
    assert provider._tool_format(model, runtime) == expected


def test_config_and_model_metadata_override_the_choice(tmp_path: Path) -> None:
    info = GGUFInfo(name="SmolLM2", chat_template=CHATML)
    runtime = type("R", (), {"info": info})()
    plain = Model(identifier="m", provider_id="llama-cpp")
    pinned = Model(identifier="m", provider_id="llama-cpp", metadata={"tool_format": "smollm2"})
    lamina = _provider(tmp_path, tool_format="lamina")
    assert lamina._tool_format(plain, runtime) == "lamina"
    assert lamina._tool_format(pinned, runtime) == "smollm2"


async def test_an_unknown_metadata_tool_format_is_a_400_naming_it(tmp_path: Path) -> None:
    provider = _provider(tmp_path)
    model = Model(identifier="m", provider_id="llama-cpp", metadata={"tool_format": "hermes"})
    with pytest.raises(BadRequestError) as info:
        await provider.register_model(model)
    assert info.value.param == "metadata.tool_format" and "smollm2" in str(info.value)


def test_auto_lists_the_tools_and_constrains_the_answer_to_a_possibly_empty_call_list() -> None:
    system = {"role": "system", "content": "Be brief."}
    prepared = smollm2_tools.prepare(_body(messages=[system, *_body()["messages"]]))
    system = prepared.body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\n")
    listed = system["content"].split("<tools>")[1].split("</tools>")[0]
    assert json.loads(listed) == [tools._functions([WEATHER])[0]]
    assert "<tool_call>[" in system["content"] and "'[]'" in system["content"]
    assert prepared.constrained and prepared.plan is not None and prepared.plan.mode == "auto"
    assert '"minItems": 0' in prepared.body["grammar"] and prepared.body["grammar"].startswith("%llguidance")
    assert "tools" not in prepared.body and "tool_choice" not in prepared.body
    # declining leads to a text answer without the tool prompt
    assert prepared.fallback is not None and "grammar" not in prepared.fallback
    assert prepared.fallback["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_required_and_named_need_at_least_one_call_and_have_no_text_fallback(choice) -> None:
    body = _body(tools=[TIME, WEATHER], tool_choice=choice, response_format={"type": "text"})
    prepared = smollm2_tools.prepare(body)
    assert prepared.constrained and prepared.fallback is None and "response_format" not in prepared.body
    assert '"minItems": 1' in prepared.body["grammar"]
    if isinstance(choice, dict):
        assert prepared.plan is not None and prepared.plan.names == {"get_weather"}


def test_the_grammar_follows_the_engine_llama_cpp_was_built_with() -> None:
    plan = tools.ToolPlan(tools._functions([WEATHER]), "auto", parallel=False)
    lark = smollm2_tools.grammar(plan, min_items=0, to_grammar=lambda s: "%llguidance {}\nstart: %json " + s)
    assert lark.splitlines()[1] == 'start: "<tool_call>" calls "</tool_call>"'
    schema = json.loads(lark.splitlines()[2].removeprefix("calls: %json "))
    assert schema["maxItems"] == 1 and schema["minItems"] == 0
    assert schema["items"]["properties"]["arguments"]["additionalProperties"] is False  # no invented keys
    gbnf = smollm2_tools.grammar(
        plan, min_items=1, to_grammar=lambda s: 'root ::= "[" item "]"\nitem ::= "{}"'
    )
    assert gbnf.splitlines() == [
        'root ::= "<tool_call>" calls "</tool_call>"',
        'calls ::= "[" item "]"',
        'item ::= "{}"',
    ]


def test_the_real_converter_gives_a_grammar_llama_cpp_takes() -> None:
    xllamacpp = pytest.importorskip("xllamacpp")
    plan = tools.ToolPlan(tools._functions([WEATHER, TIME]), "required")
    text = smollm2_tools.grammar(plan, min_items=1, to_grammar=xllamacpp.json_schema_to_grammar)
    assert '"<tool_call>"' in text and '"</tool_call>"' in text


def test_history_renders_calls_as_a_list_and_results_as_tool_response_turns() -> None:
    oslo, rome = '{"city": "Oslo"}', '{"city": "Rome"}'
    messages = [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": oslo}},
                {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": rome}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "3 degrees"},
        {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "21 degrees"}]},
    ]
    prepared = smollm2_tools.prepare({"messages": messages, "tools": [WEATHER]})
    rendered = prepared.body["messages"][1:]
    assert rendered[1] == {
        "role": "assistant",
        "content": '<tool_call>[{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
        '{"name": "get_weather", "arguments": {"city": "Rome"}}]</tool_call>',
    }
    assert rendered[2] == {"role": "user", "content": "<tool_response>\n3 degrees\n</tool_response>"}
    assert rendered[3] == {"role": "user", "content": "<tool_response>\n21 degrees\n</tool_response>"}
    # after a tool result the auto answer is free text (a call is still read if the model writes one)
    assert not prepared.constrained and "grammar" not in prepared.body and prepared.plan is not None
    assert prepared.echo_tags == smollm2_tools.ECHO_TAGS


def test_a_plain_chat_is_left_to_the_template_and_its_stream_untouched() -> None:
    prepared = smollm2_tools.prepare({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    assert prepared.plan is None and not prepared.echo_tags and prepared.text_filter() is None
    assert prepared.body == {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def test_a_call_list_answer_parses_into_several_calls_and_the_empty_list_into_none() -> None:
    plan = tools.ToolPlan(tools._functions([WEATHER, TIME]), "auto")
    text = (
        '<tool_call>[\n{"name": "get_weather", "arguments": {"city": "Paris"}},\n'
        '{"name": "get_time", "arguments": {"city": "Paris"}}\n]</tool_call>'
    )
    assert _calls(tools.parse_forced(text, plan)) == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Paris"}),
    ]
    assert tools.parse_forced("<tool_call>[]</tool_call>", plan) is None
    content, calls = tools.parse_answer(text, plan)
    assert content == "" and len(calls) == 2


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_echoed_tool_response_tags_are_dropped_from_streamed_text(step: int) -> None:
    text = "<tool_response>\nParis: 18 degrees, sunny\n</tool_response> a < b"
    echo = tools.EchoFilter(smollm2_tools.ECHO_TAGS)
    out = "".join(echo.feed(text[i : i + step]) for i in range(0, len(text), step)) + echo.finish()
    assert out == "\nParis: 18 degrees, sunny\n a < b"
    assert tools.EchoFilter(smollm2_tools.ECHO_TAGS).whole(text) == "Paris: 18 degrees, sunny\n a < b"


class _Slot:
    def release_unused(self) -> None:
        pass


class _ScriptedRuntime:
    """Answers ``<tool_call>[]</tool_call>`` under the call grammar and "Hello there." without it.

    A scripted runtime, not the real model: SmolLM2-135M never declines a call (docs/benchmarks.md),
    so the decline path can only be driven this way.
    """

    info = GGUFInfo(name="SmolLM2", chat_template=CHATML)
    context_length = 4096

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    async def acquire(self, n: int = 1, weight: int = 1) -> list[_Slot]:
        return [_Slot() for _ in range(n)]

    async def stream(self, method: str, body: dict, slot: object = None):
        self.bodies.append(body)
        text = "<tool_call>[]</tool_call>" if "grammar" in body else "Hello there."
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        yield {"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
        yield {"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        yield {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}

    async def call(self, method: str, body: dict, slot: object = None) -> dict:
        from lamina_llama_cpp.assemble import chat_from_chunks

        return chat_from_chunks([chunk async for chunk in self.stream(method, body, slot)])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_declined_call_is_answered_in_text_by_a_second_generation(
    tmp_path: Path, stream: bool
) -> None:
    from lamina.apis.inference import OpenAIChatCompletionRequest

    provider = _provider(tmp_path)
    runtime = _ScriptedRuntime()

    async def scripted(model: Model) -> _ScriptedRuntime:
        return runtime

    provider._runtime = scripted  # type: ignore[method-assign]
    model = Model(identifier="m", provider_id="llama-cpp", provider_resource_id="SmolLM2-135M-Instruct")
    request = OpenAIChatCompletionRequest.model_validate({**_body(), "model": "m", "stream": stream})
    result = await provider.openai_chat_completion(model, request)
    if stream:
        chunks = [chunk async for chunk in result]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"])
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
        usage = chunks[-1]["usage"]
    else:
        message = result["choices"][0]["message"]
        text, usage = message["content"], result["usage"]
        assert not message.get("tool_calls") and result["choices"][0]["finish_reason"] == "stop"
    assert text == "Hello there."
    assert usage["total_tokens"] == 30  # both generations count
    first, second = runtime.bodies
    assert "grammar" in first and "<tools>" in first["messages"][0]["content"]
    assert "grammar" not in second and all("<tools>" not in m["content"] for m in second["messages"])
