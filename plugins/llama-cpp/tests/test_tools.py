"""Lamina's tool prompt format: rendering, the forced-call schema and the lenient parsers."""

from __future__ import annotations

import json

import pytest

from lamina.errors import BadRequestError
from lamina_llama_cpp import tools

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def _plan(mode: str = "auto", parallel: bool = True) -> tools.ToolPlan:
    return tools.ToolPlan(tools._functions([WEATHER, TIME]), mode, parallel)  # type: ignore[arg-type]


def _calls(calls: list[dict]) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


def test_auto_prompt_lists_tools_and_keeps_the_users_system_prompt() -> None:
    body, plan = tools.prepare(
        {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "tools": [WEATHER],
        }
    )
    assert plan is not None and plan.mode == "auto" and plan.names == {"get_weather"}
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.")
    assert '"name": "get_weather"' in system["content"] and tools.OPEN in system["content"]
    assert "tools" not in body and "tool_choice" not in body and "response_format" not in body


def test_required_and_named_choices_constrain_the_answer_with_a_schema() -> None:
    body, plan = tools.prepare(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER, TIME],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    schema = body["response_format"]["json_schema"]["schema"]
    assert plan is not None and plan.mode == "required" and not plan.parallel
    assert schema["minItems"] == 1 and schema["maxItems"] == 1
    assert [v["properties"]["name"]["const"] for v in schema["items"]["anyOf"]] == ["get_weather", "get_time"]

    body, plan = tools.prepare(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER, TIME],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        }
    )
    items = body["response_format"]["json_schema"]["schema"]["items"]
    assert (
        plan is not None and plan.names == {"get_time"} and items["properties"]["name"]["const"] == "get_time"
    )


def test_tool_choice_none_drops_tools_but_still_renders_history() -> None:
    body, plan = tools.prepare(
        {
            "tools": [WEATHER],
            "tool_choice": "none",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "3 degrees"},
            ],
        }
    )
    assert plan is None and "tools" not in body
    assistant, result = body["messages"][1], body["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
    }
    assert result["role"] == "user"
    assert json.loads(result["content"].removeprefix("<tool_response>").removesuffix("</tool_response>")) == {
        "name": "get_weather",
        "content": "3 degrees",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0]"),
    ],
)
def test_bad_tool_requests_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(BadRequestError) as info:
        tools.prepare({"messages": [{"role": "user", "content": "x"}], **body})
    assert info.value.param == param


def test_image_content_is_refused_naming_the_part() -> None:
    with pytest.raises(BadRequestError) as info:
        tools.render_messages(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                    ],
                }
            ]
        )
    assert info.value.param == "messages[0].content[1]"


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        (
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
            "",
            [("get_weather", {"city": "Paris"})],
        ),
        (
            'Sure.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>\n'
            '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>',
            "Sure.",
            [("get_weather", {"city": "Rome"}), ("get_time", {})],
        ),
        # arguments as a JSON string, "parameters" for "arguments", a missing closing tag
        (
            '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}</tool_call>',
            "",
            [("get_weather", {"city": "Oslo"})],
        ),
        (
            '<tool_call>{"name": "get_weather", "parameters": {"city": "Lima"}}',
            "",
            [("get_weather", {"city": "Lima"})],
        ),
        ('```json\n{"name": "get_time", "arguments": {}}\n```', "", [("get_time", {})]),
        (
            '{"name": "get_weather", "arguments": {"city": "Kyiv"}} and some rambling',
            "",
            [("get_weather", {"city": "Kyiv"})],
        ),
        # not calls: an unknown tool, prose, malformed JSON
        (
            '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>',
            '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>',
            [],
        ),
        ("The weather is nice.", "The weather is nice.", []),
        (
            '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',
            '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',
            [],
        ),
    ],
)
def test_parse_answer(text: str, content: str, calls: list) -> None:
    got_content, got_calls = tools.parse_answer(text, _plan())
    assert got_content == content and _calls(got_calls) == calls
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in got_calls)


def test_parse_answer_keeps_one_call_when_parallel_calls_are_off() -> None:
    text = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>' * 3
    assert len(tools.parse_answer(text, _plan(parallel=False))[1]) == 1


def test_parse_forced_salvages_the_whole_calls_of_a_cut_answer() -> None:
    plan = _plan("required")
    whole = '[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]'
    assert _calls(tools.parse_forced(whole, plan)) == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    cut = '[\n  {"name": "get_weather", "arguments": {"city": "Paris"}},\n  {"name": "get_weather", "argu'
    assert _calls(tools.parse_forced(cut, plan)) == [("get_weather", {"city": "Paris"})]
    assert tools.parse_forced('[{"name": "get_w', plan) is None


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_stream_splitter_gives_the_same_result_however_the_text_is_chunked(step: int) -> None:
    text = (
        'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
        ' a < b <tool_ <tool_call>{"name": "get_time", "arguments": {}}</tool_call> done'
    )
    splitter = tools.StreamSplitter(_plan())
    events = []
    for i in range(0, len(text), step):
        events.extend(splitter.feed(text[i : i + step]))
    events.extend(splitter.finish())
    shown = "".join(v for k, v in events if k == "text")
    calls = [v for k, v in events if k == "call"]
    assert shown == "Let me check.  a < b <tool_  done"
    assert _calls(calls) == [("get_weather", {"city": "Paris"}), ("get_time", {})]


def test_stream_splitter_never_holds_back_plain_text() -> None:
    splitter = tools.StreamSplitter(_plan())
    assert splitter.feed("Hello") == [("text", "Hello")]
    assert splitter.feed(" wor<") == [("text", " wor")]  # '<' may start a tag
    assert splitter.feed("ld") == [("text", "<ld")]


def test_stream_splitter_unterminated_call_at_the_end() -> None:
    splitter = tools.StreamSplitter(_plan())
    events = splitter.feed('<tool_call>{"name": "get_time", "arguments": {}}') + splitter.finish()
    assert [k for k, _ in events] == ["call"]
    splitter = tools.StreamSplitter(_plan())
    events = splitter.feed("<tool_call>not json") + splitter.finish()
    assert events == [("text", "<tool_call>not json")]
