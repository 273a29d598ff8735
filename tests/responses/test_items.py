"""Responses items <-> chat shapes, with OpenAI-shaped examples, checked against the openai SDK's own types.

Chat messages, tools and request bodies validate as the SDK's chat params (what an OpenAI-compatible
upstream takes) and as the Inference router's request; output items and responses as the SDK's
Responses types.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseItemList, ResponseOutputItem
from pydantic import TypeAdapter

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.responses import (
    CreateResponseRequest,
    FileSearchResult,
    FunctionCall,
    InputMessage,
    McpApprovalRequest,
    McpListedTool,
    OutputMessage,
    OutputText,
    ResponseObject,
    Usage,
)
from lamina.errors import BadRequestError
from lamina.providers.responses_items import (
    FILE_SEARCH_FUNCTION,
    REDACTED,
    approval_decisions,
    chat_request,
    check_request,
    conversation,
    denied_result,
    file_search_item,
    file_search_params,
    input_items,
    input_to_messages,
    mcp_call_item,
    message_item,
    needs_approval,
    new_response,
    offer_tools,
    own_input_items,
    plan_tool_calls,
    remaining_output_tokens,
    stored_messages,
    tool_exchange,
    web_search_item,
)
from lamina.storage.responses_store import StoredResponse

CHAT_MESSAGE = TypeAdapter(ChatCompletionMessageParam)
CHAT_TOOL = TypeAdapter(ChatCompletionToolParam)
CHAT_REQUEST = TypeAdapter(CompletionCreateParamsStreaming)
OUTPUT_ITEM = TypeAdapter(ResponseOutputItem)
OPENAI_ID = re.compile(r"^[a-z]+_[0-9a-f]{48}$")


def validated(adapter: TypeAdapter, value: Any) -> Any:
    """``value`` validated by ``adapter``; the SDK's params hold lazy iterables: walking them checks them."""
    return _walk(adapter.validate_python(value))


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator) or type(value).__name__ == "ValidatorIterator":
        return [_walk(v) for v in value]
    return value


def request(**fields: Any) -> CreateResponseRequest:
    return CreateResponseRequest.model_validate({"model": "smollm2", "input": "hi", **fields})


def chat_valid(messages: list[dict]) -> None:
    for m in messages:
        validated(CHAT_MESSAGE, m)
    OpenAIChatCompletionRequest(model="m", messages=messages)


# -- input -> messages -------------------------------------------------------------------------

EVERY_INPUT = [
    {"role": "developer", "content": "Answer in French."},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "low"},
        ],
    },
    {
        "type": "message",
        "role": "assistant",
        "id": "msg_0",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
    },
    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
    {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": '{"city":"Lyon"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    {"type": "function_call_output", "call_id": "call_2", "output": "rain"},
    {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "geo", "tools": []},
    {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "geo",
        "name": "capital",
        "arguments": "{}",
        "output": "Paris",
    },
    {
        "type": "mcp_call",
        "id": "mcp_2",
        "server_label": "geo",
        "name": "capital",
        "arguments": "{}",
        "error": "boom",
    },
    {
        "type": "mcp_approval_request",
        "id": "mcpr_1",
        "server_label": "geo",
        "name": "capital",
        "arguments": "{}",
    },
    {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "x"},
    },
    {
        "type": "file_search_call",
        "id": "fs_1",
        "queries": ["capital"],
        "results": [
            {"file_id": "file-1", "filename": "geo.txt", "text": "Paris is the capital.", "score": 0.9}
        ],
    },
    {"type": "file_search_call", "id": "fs_2", "queries": ["no results kept"]},
]


def test_every_input_item_becomes_the_chat_messages_a_model_reads() -> None:
    items = request(input=EVERY_INPUT).input
    messages = input_to_messages(items)
    fs_text = messages[-1]["content"]
    assert messages == [
        {"role": "system", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [  # the calls of one answer share its message
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        *tool_exchange("mcp_1", "capital", "{}", "Paris"),
        *tool_exchange("mcp_2", "capital", "{}", "error: boom"),
        *tool_exchange("fs_1", FILE_SEARCH_FUNCTION, '{"query": "capital"}', fs_text),
    ]
    assert "Paris is the capital." in fs_text and "geo.txt" in fs_text
    chat_valid(messages)


def test_a_string_input_is_one_user_message_with_an_openai_id() -> None:
    (item,) = own_input_items("Bonjour")
    assert OPENAI_ID.match(item.id) and item.id.startswith("msg_")
    assert item.role == "user" and item.content[0].text == "Bonjour" and item.status == "completed"
    assert conversation(request(input="Bonjour", instructions="Be brief."), None) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Bonjour"},
    ]


def test_stored_input_items_all_have_ids_and_read_as_the_sdks_items() -> None:
    items = own_input_items(request(input=EVERY_INPUT).input)
    assert all(
        OPENAI_ID.match(i.id)
        or i.id in {"msg_0", "mcpl_1", "mcp_1", "mcp_2", "mcpr_1", "ws_1", "fs_1", "fs_2"}
        for i in items
    )
    prefixes = [i.id.split("_")[0] for i in items]
    assert prefixes == [
        "msg",
        "msg",
        "msg",
        "fc",
        "fc",
        "fco",
        "fco",
        "mcpl",
        "mcp",
        "mcp",
        "mcpr",
        "mcpa",
        "ws",
        "fs",
        "fs",
    ]
    # The openai SDK now types mcp_call.error as an object ({"type": "mcp_tool_execution_error", ...});
    # Lamina's wire model (and llama-stack-client 0.2.12's) keeps a string: left to the wire models' owner.
    items = [i for i in items if getattr(i, "error", None) is None]
    wire = {
        "object": "list",
        "data": [i.model_dump(mode="json") for i in items],
        "first_id": "a",
        "last_id": "b",
        "has_more": False,
    }
    theirs = ResponseItemList.model_validate(wire)
    assert [t.type for t in theirs.data] == [i.type for i in items]
    assert theirs.data[0].content[0].text == "Answer in French."  # string content became a list


def test_what_cannot_be_served_is_a_400_naming_the_field() -> None:
    with pytest.raises(
        BadRequestError, match=r"include: \['message.output_text.logprobs'\] not supported"
    ) as err:
        check_request(request(include=["file_search_call.results", "message.output_text.logprobs"]))
    assert err.value.param == "include"
    image = [
        {
            "role": "user",
            "content": [{"type": "input_text", "text": "x"}, {"type": "input_image", "file_id": "file-1"}],
        }
    ]
    with pytest.raises(
        BadRequestError, match=r"input\[0\]\.content\[1\]: an input_image needs image_url"
    ) as err:
        check_request(request(input=image))
    assert err.value.param == "input[0].content[1].image_url"
    check_request(request(input=EVERY_INPUT, include=["file_search_call.results"]))  # all servable


# -- the response and its continuation ---------------------------------------------------------


def test_a_new_response_echoes_the_request_and_reads_in_the_openai_sdk() -> None:
    req = request(
        instructions="Be brief.",
        previous_response_id="resp_prev",
        store=False,
        temperature=0.2,
        max_output_tokens=32,
        parallel_tool_calls=False,
        metadata={"k": "v"},
        tool_choice="required",
        text={"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}},
        tools=[
            {
                "type": "mcp",
                "server_label": "geo",
                "server_url": "http://127.0.0.1:9/mcp",
                "headers": {"Authorization": "Bearer s3cret"},
            }
        ],
    )
    response = new_response(req, created_at=1765000000)
    assert OPENAI_ID.match(response.id) and response.id.startswith("resp_")
    assert response.status == "in_progress" and response.output == []
    assert response.previous_response_id == "resp_prev"  # echoed, as Llama Stack 0.2.12 does not
    assert (
        response.store is False
        and response.parallel_tool_calls is False
        and response.tool_choice == "required"
    )
    assert response.tools[0].headers == {"Authorization": REDACTED}  # no credential is stored or echoed
    assert "s3cret" not in response.model_dump_json()
    theirs = OpenAIResponse.model_validate(response.model_dump(mode="json", by_alias=True))
    assert theirs.previous_response_id == "resp_prev" and theirs.instructions == "Be brief."
    assert theirs.text.format.type == "json_schema" and theirs.max_output_tokens == 32


def _previous() -> StoredResponse:
    response = ResponseObject(
        id="resp_prev",
        created_at=1,
        model="smollm2",
        status="completed",
        output=[
            McpApprovalRequest(id="mcpr_1", server_label="geo", name="capital", arguments='{"c":"FR"}'),
            OutputMessage(id="msg_out", content=[OutputText(text="Paris.")]),
        ],
    )
    earlier = own_input_items("What is the capital of France?")
    messages = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    return StoredResponse(response, earlier, messages)


def test_a_continuation_starts_from_the_stored_conversation_without_the_old_instructions() -> None:
    previous = _previous()
    req = request(input="And Spain?", previous_response_id="resp_prev", instructions="Answer in one word.")
    messages = conversation(req, previous)
    assert messages == [
        {"role": "system", "content": "Answer in one word."},
        *previous.messages,
        {"role": "user", "content": "And Spain?"},
    ]
    items = input_items(req.input, previous)
    assert [i.id for i in items[:3]] == [previous.input_items[0].id, "mcpr_1", "msg_out"]
    assert items[2].role == "assistant" and items[3].content[0].text == "And Spain?"
    # what is stored for the next continuation leaves this request's instructions out
    answer = [*messages, {"role": "assistant", "content": "Madrid."}]
    assert stored_messages(answer, req) == answer[1:]
    assert stored_messages(answer, request(input="x")) == answer


# -- tools -------------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "name": "book",
        "description": "Book a table.",
        "parameters": {"type": "object", "properties": {"day": {"type": "string"}}},
        "strict": True,
    },
    {
        "type": "file_search",
        "vector_store_ids": ["vs_1"],
        "max_num_results": 3,
        "filters": {"type": "eq", "key": "lang", "value": "en"},
        "ranking_options": {"score_threshold": 0.2},
    },
    {"type": "web_search_preview"},
    {
        "type": "mcp",
        "server_label": "geo",
        "server_url": "http://127.0.0.1:9/mcp",
        "allowed_tools": ["capital", "border"],
        "require_approval": {"never": {"tool_names": ["capital"]}},
    },
    {
        "type": "mcp",
        "server_label": "down",
        "server_url": "http://127.0.0.1:9/sse",
        "require_approval": "never",
    },
]
LISTINGS = {
    "geo": [
        McpListedTool(
            name="capital",
            description="Capital of a country.",
            input_schema={"type": "object", "properties": {"c": {"type": "string"}}},
        ),
        McpListedTool(name="border", input_schema={"type": "object", "properties": {}}),
        McpListedTool(
            name="secret", input_schema={"type": "object", "properties": {}}
        ),  # not in allowed_tools
    ],
    "down": "connection refused by http://127.0.0.1:9/sse",
}


def test_request_tools_become_the_functions_the_model_is_offered() -> None:
    offer = offer_tools(request(tools=TOOLS).tools, LISTINGS)
    names = [t["function"]["name"] for t in offer.chat_tools]
    assert names == ["book", FILE_SEARCH_FUNCTION, "web_search", "capital", "border"]
    assert offer.chat_tools[0]["function"]["strict"] is True
    assert offer.chat_tools[3]["function"]["parameters"]["properties"] == {"c": {"type": "string"}}
    assert {n: o.kind for n, o in offer.by_name.items()} == {
        "book": "function",
        FILE_SEARCH_FUNCTION: "file_search",
        "web_search": "web_search",
        "capital": "mcp",
        "border": "mcp",
    }
    for tool in offer.chat_tools:
        validated(CHAT_TOOL, tool)
    geo, down = offer.list_items
    assert [t.name for t in geo.tools] == ["capital", "border"] and geo.error is None
    assert down.tools == [] and "connection refused" in down.error
    for item in offer.list_items:
        assert OUTPUT_ITEM.validate_python(item.model_dump(mode="json")).type == "mcp_list_tools"


def test_two_tools_with_one_name_are_a_400_naming_both() -> None:
    tools = [{"type": "function", "name": "capital"}, *TOOLS[3:4]]
    with pytest.raises(
        BadRequestError,
        match="two tools are named 'capital' \\(the function tool and a tool of MCP server 'geo'\\)",
    ):
        offer_tools(request(tools=tools).tools, LISTINGS)


@pytest.mark.parametrize(
    ("rule", "name", "expected"),
    [
        ("always", "capital", True),
        ("never", "capital", False),
        ({"never": {"tool_names": ["capital"]}}, "capital", False),
        ({"never": {"tool_names": ["capital"]}}, "border", True),  # not listed: asks (the safe side)
        ({"always": {"tool_names": ["border"]}, "never": {"tool_names": ["capital"]}}, "border", True),
    ],
)
def test_require_approval(rule: Any, name: str, expected: bool) -> None:
    tool = request(
        tools=[{"type": "mcp", "server_label": "geo", "server_url": "http://x", "require_approval": rule}]
    ).tools[0]
    assert needs_approval(tool, name) is expected


def _call(call_id: str, name: str, arguments: str = "{}") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_models_tool_calls_are_sorted_by_who_runs_them() -> None:
    offer = offer_tools(request(tools=TOOLS).tools, LISTINGS)
    calls = [
        _call("c1", "book", '{"day":"mon"}'),
        _call("c2", "capital", '{"c":"FR"}'),  # never needs approval
        _call("c3", "border"),  # needs approval
        _call("c4", FILE_SEARCH_FUNCTION, '{"query":"capital"}'),
        _call("c5", "web_search", '{"query":"news"}'),
        _call("c6", "nonexistent"),
    ]
    plan = plan_tool_calls(calls, offer)
    assert [(f.call_id, f.name, f.arguments) for f in plan.function_calls] == [
        ("c1", "book", '{"day":"mon"}')
    ]
    assert [(s.call_id, s.kind) for s in plan.server_calls] == [
        ("c2", "mcp"),
        ("c4", "file_search"),
        ("c5", "web_search"),
        ("c6", "unknown"),
    ]
    assert plan.server_calls[1].query() == "capital" and plan.server_calls[3].query() == ""
    assert [(a.server_label, a.name) for a in plan.approvals] == [("geo", "border")]
    assert plan.stops_run
    message = plan.assistant_message("Working on it.")
    assert [c["id"] for c in message["tool_calls"]] == ["c1", "c2", "c4", "c5", "c6"]  # not c3: it waits
    chat_valid([message])
    for item in [*plan.function_calls, *plan.approvals]:
        assert OUTPUT_ITEM.validate_python(item.model_dump(mode="json")).type == item.type
    # only an approval request: nothing goes into the conversation until it is answered
    assert plan_tool_calls([_call("c3", "border")], offer).assistant_message(None) is None
    one = plan_tool_calls(calls, offer, parallel_tool_calls=False)
    assert (
        [f.call_id for f in one.function_calls] == ["c1"] and not one.server_calls and len(one.dropped) == 5
    )


def test_approval_responses_match_their_requests_or_name_the_bad_id() -> None:
    previous = _previous()
    req = request(
        input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True}],
        previous_response_id="resp_prev",
    )
    (decision,) = approval_decisions(req.input, previous)
    assert (
        decision.approve and decision.request.name == "capital" and decision.request.arguments == '{"c":"FR"}'
    )
    item = mcp_call_item(decision.request, output="Paris", approval_request_id="mcpr_1")
    assert item.approval_request_id == "mcpr_1" and item.status == "completed"
    assert OUTPUT_ITEM.validate_python(item.model_dump(mode="json")).type == "mcp_call"

    bad = request(input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": True}])
    with pytest.raises(
        BadRequestError,
        match=r"input\[0\]\.approval_request_id: 'mcpr_x' names no mcp_approval_request.*\['mcpr_1'\]",
    ):
        approval_decisions(bad.input, previous)
    twice = request(input=[req.input[0].model_dump(), req.input[0].model_dump()])
    with pytest.raises(BadRequestError, match=r"input\[1\].*'mcpr_1' was already answered"):
        approval_decisions(twice.input, previous)
    # without a stored response the client may send the request item along with its answer
    stateless = request(
        input=[
            {
                "type": "mcp_approval_request",
                "id": "mcpr_9",
                "server_label": "geo",
                "name": "border",
                "arguments": "{}",
            },
            {
                "type": "mcp_approval_response",
                "approval_request_id": "mcpr_9",
                "approve": False,
                "reason": "not now",
            },
        ]
    )
    (denied,) = approval_decisions(stateless.input, None)
    assert not denied.approve and "denied" in denied_result(denied) and "not now" in denied_result(denied)


# -- model calls -------------------------------------------------------------------------------


def test_each_model_call_is_a_chat_request_the_router_and_the_sdk_accept() -> None:
    req = request(
        tools=TOOLS[:1],
        tool_choice={"type": "function", "name": "book"},
        parallel_tool_calls=False,
        temperature=0.3,
        max_output_tokens=50,
        text={
            "format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}
        },
    )
    offer = offer_tools(req.tools, {})
    messages = conversation(req, None)
    first = chat_request(req, messages, offer)
    assert first["tool_choice"] == {"type": "function", "function": {"name": "book"}}
    assert first["parallel_tool_calls"] is False and first["max_tokens"] == 50 and first["temperature"] == 0.3
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    # later calls: the forced choice is spent, and the output budget is what is left
    spent = Usage(input_tokens=10, output_tokens=20, total_tokens=30)
    later = chat_request(req, messages, offer, call_index=1, usage=spent)
    assert later["tool_choice"] == "auto" and later["max_tokens"] == 30
    assert remaining_output_tokens(req, Usage(input_tokens=1, output_tokens=60, total_tokens=61)) == 0
    for body in (first, later):
        OpenAIChatCompletionRequest.model_validate(body)
        validated(CHAT_REQUEST, body)
    plain = chat_request(
        request(text={"format": {"type": "json_object"}}), messages, offer_tools(None, {}), stream=False
    )
    assert plain == {
        "model": "smollm2",
        "messages": messages,
        "stream": False,
        "response_format": {"type": "json_object"},
    }
    with pytest.raises(BadRequestError, match="tool_choice: no tool is named 'nope'") as err:
        chat_request(
            request(tools=TOOLS[:1], tool_choice={"type": "function", "name": "nope"}), messages, offer
        )
    assert err.value.param == "tool_choice"


def test_usage_is_summed_over_every_model_call() -> None:
    from lamina.providers.responses_items import add_usage

    total = add_usage(None, None)
    assert total is None
    total = add_usage(
        total,
        {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    )
    total = add_usage(
        total,
        {"prompt_tokens": 30, "completion_tokens": 6, "completion_tokens_details": {"reasoning_tokens": 1}},
    )
    assert (total.input_tokens, total.output_tokens, total.total_tokens) == (40, 10, 50)
    assert total.input_tokens_details.cached_tokens == 2 and total.output_tokens_details.reasoning_tokens == 1


def test_answers_and_tool_runs_become_output_items_the_sdk_reads() -> None:
    results = [
        FileSearchResult(file_id="file-1", filename="geo.txt", text="Paris is the capital.", score=0.9)
    ]
    hidden = file_search_item("capital", results, None)
    shown = file_search_item("capital", results, ["file_search_call.results"])
    assert hidden.results is None and shown.results[0].text == "Paris is the capital."
    items = [
        message_item("Paris."),
        message_item("", refusal="I cannot help."),
        hidden,
        shown,
        web_search_item("news"),
        web_search_item("x", failed=True),
    ]
    for item in items:
        theirs = OUTPUT_ITEM.validate_python(item.model_dump(mode="json"))
        assert theirs.type == item.type and OPENAI_ID.match(theirs.id)
    assert (
        items[-1].status == "failed"
        and OpenAIResponse.model_validate(
            {
                "id": "resp_1",
                "object": "response",
                "created_at": 1,
                "model": "m",
                "output": [items[0].model_dump(mode="json")],
                "tools": [],
                "tool_choice": "auto",
                "parallel_tool_calls": True,
            }
        ).output_text
        == "Paris."
    )
    file_search = request(tools=TOOLS[1:2]).tools[0]
    assert file_search_params(file_search, "capital") == {
        "query": "capital",
        "max_num_results": 3,
        "rewrite_query": False,
        "filters": {"type": "eq", "key": "lang", "value": "en"},
        "ranking_options": {"score_threshold": 0.2},
    }


def test_an_input_message_with_ids_from_an_earlier_output_keeps_them() -> None:
    items = own_input_items(request(input=EVERY_INPUT[2:4]).input)
    assert items[0].id == "msg_0" and isinstance(items[0], InputMessage)
    assert (
        isinstance(items[1], FunctionCall)
        and items[1].id.startswith("fc_")
        and items[1].status == "completed"
    )


def test_function_calls_left_without_output_are_a_400_naming_their_call_ids() -> None:
    """The chat format (and every upstream) rejects a tool call with no result after it: say so first."""
    previous = _previous()
    previous.messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [_call("call_a", "book"), _call("call_b", "book")],
        }
    )
    answered = [
        {"type": "function_call_output", "call_id": "call_a", "output": "ok"},
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(
        BadRequestError, match=r"input: .*no function_call_output for call_id\(s\) \['call_b'\]"
    ) as err:
        conversation(request(input=answered, previous_response_id="resp_prev"), previous)
    assert err.value.param == "input"
    stateless = [EVERY_INPUT[3]]  # a function_call item with no output after it
    with pytest.raises(BadRequestError, match=r"\['call_1'\]"):
        conversation(request(input=stateless), None)
    # outputs may come in any order, after other input: each goes right after the call it answers
    both = [*answered, {"type": "function_call_output", "call_id": "call_b", "output": "ok b"}]
    messages = conversation(request(input=both, previous_response_id="resp_prev"), previous)
    assert messages[-4:] == [
        previous.messages[-1],
        {"role": "tool", "tool_call_id": "call_a", "content": "ok"},
        {"role": "tool", "tool_call_id": "call_b", "content": "ok b"},
        {"role": "user", "content": "and?"},
    ]
    chat_valid(messages)
    orphan = [{"type": "function_call_output", "call_id": "call_zz", "output": "?"}]
    with pytest.raises(
        BadRequestError, match=r"input: function_call_output call_id\(s\) \['call_zz'\] answer no"
    ):
        conversation(request(input=orphan), None)


def test_a_spent_output_budget_is_never_sent_as_max_tokens() -> None:
    req = request(max_output_tokens=10)
    spent = Usage(input_tokens=1, output_tokens=10, total_tokens=11)
    with pytest.raises(ValueError, match="no output tokens left"):
        chat_request(req, conversation(req, None), offer_tools(None, {}), usage=spent)


def test_include_is_checked_alone_for_the_input_items_route() -> None:
    from lamina.providers.responses_items import check_include

    check_include(["file_search_call.results"])
    check_include(None)
    with pytest.raises(BadRequestError, match=r"include: \['reasoning.encrypted_content'\] not supported"):
        check_include(["reasoning.encrypted_content"])


def test_a_call_id_reused_from_one_turn_to_the_next_pairs_with_its_own_result() -> None:
    """Some servers number calls per answer ("call_0" every turn): results pair by position too."""
    previous = _previous()
    previous.messages += [
        {"role": "assistant", "content": None, "tool_calls": [_call("call_0", "book")]},
        {"role": "tool", "tool_call_id": "call_0", "content": "first"},
        {"role": "assistant", "content": None, "tool_calls": [_call("call_0", "book")]},
    ]
    req = request(
        input=[{"type": "function_call_output", "call_id": "call_0", "output": "second"}],
        previous_response_id="resp_prev",
    )
    messages = conversation(req, previous)
    assert [m.get("content") for m in messages[-4:]] == [None, "first", None, "second"]
