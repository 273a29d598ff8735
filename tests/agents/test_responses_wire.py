"""The Responses API's models against the openai SDK's and llama-stack-client 0.2.12's own types.

Both clients parse answers and stream events with their generated pydantic models: every output item
and event Lamina can send must validate there. What the openai SDK sends must validate here.
"""

from __future__ import annotations

import pytest
from llama_stack_client.types import ResponseObject as LSResponse
from llama_stack_client.types import ResponseObjectStream as LSEvent
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseItemList, ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

from lamina.apis.responses import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ContentPartEvent,
    CreateResponseRequest,
    ErrorEvent,
    FileSearchCall,
    FileSearchResult,
    FunctionCall,
    InputItemList,
    InputMessage,
    McpApprovalRequest,
    McpCall,
    McpListedTool,
    McpListTools,
    OutputItemEvent,
    OutputMessage,
    OutputText,
    OutputTextDeltaEvent,
    OutputTextDoneEvent,
    ResponseLifecycleEvent,
    ResponseObject,
    ResponseStreamChunk,
    ToolCallProgressEvent,
    Usage,
    WebSearchAction,
    WebSearchCall,
)

OPENAI_EVENT = TypeAdapter(ResponseStreamEvent)
MESSAGE = OutputMessage(id="msg_1", content=[OutputText(text="Paris.")])
ITEMS = [
    McpListTools(
        id="mcpl_1",
        server_label="weather",
        tools=[McpListedTool(name="get_weather", input_schema={"type": "object", "properties": {}})],
    ),
    FileSearchCall(
        id="fs_1",
        queries=["capital of France"],
        results=[FileSearchResult(file_id="file-1", filename="f.txt", text="Paris is...", score=0.9)],
    ),
    WebSearchCall(id="ws_1", action=WebSearchAction(query="weather in Paris")),
    McpCall(
        id="mcp_1", server_label="weather", name="get_weather", arguments='{"city":"Paris"}', output="sunny"
    ),
    FunctionCall(id="fc_1", call_id="call_1", name="book", arguments='{"city":"Paris"}', status="completed"),
    McpApprovalRequest(id="mcpr_1", server_label="weather", name="get_weather", arguments="{}"),
    MESSAGE,
]


def _response(**overrides) -> ResponseObject:
    fields = {
        "id": "resp_1",
        "created_at": 1765000000,
        "model": "smollm2",
        "status": "completed",
        "output": ITEMS,
        "previous_response_id": "resp_0",
        "tools": [
            {"type": "function", "name": "book", "parameters": {"type": "object", "properties": {}}},
            {"type": "file_search", "vector_store_ids": ["vs_1"]},
            {"type": "web_search"},
            {"type": "mcp", "server_label": "weather", "server_url": "http://127.0.0.1:9/mcp"},
        ],
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}},
        "usage": Usage(input_tokens=10, output_tokens=5, total_tokens=15),
    }
    return ResponseObject.model_validate({**fields, **overrides})


def test_a_response_with_every_output_item_reads_in_both_clients() -> None:
    wire = _response().model_dump(mode="json", by_alias=True)
    theirs = OpenAIResponse.model_validate(wire)
    assert [item.type for item in theirs.output] == [item.type for item in ITEMS]
    assert theirs.output_text == "Paris."  # the SDK's convenience property reads our message
    assert theirs.previous_response_id == "resp_0" and theirs.usage.total_tokens == 15
    assert theirs.text.format.type == "json_schema" and theirs.text.format.schema_ == {"type": "object"}
    assert theirs.output[1].results[0].filename == "f.txt"
    # llama-stack-client 0.2.12 predates MCP approvals: it reads every other item (and, building its
    # answers without validation, passes an approval request through as a plain object)
    known = {**wire, "output": [i for i in wire["output"] if i["type"] != "mcp_approval_request"]}
    ls = LSResponse.model_validate(known)
    assert ls.id == "resp_1" and [i.type for i in ls.output] == [i["type"] for i in known["output"]]


EVENTS = [
    ResponseLifecycleEvent(
        type="response.created", response=_response(status="in_progress", output=[]), sequence_number=0
    ),
    ResponseLifecycleEvent(
        type="response.in_progress", response=_response(status="in_progress", output=[]), sequence_number=1
    ),
    OutputItemEvent(
        type="response.output_item.added",
        response_id="resp_1",
        output_index=0,
        item=ITEMS[3],
        sequence_number=2,
    ),
    ToolCallProgressEvent(
        type="response.mcp_call.in_progress", item_id="mcp_1", output_index=0, sequence_number=3
    ),
    ArgumentsDeltaEvent(
        type="response.mcp_call_arguments.delta",
        item_id="mcp_1",
        output_index=0,
        delta='{"ci',
        sequence_number=4,
    ),
    ArgumentsDoneEvent(
        type="response.mcp_call_arguments.done",
        item_id="mcp_1",
        output_index=0,
        arguments="{}",
        sequence_number=5,
    ),
    ToolCallProgressEvent(
        type="response.mcp_call.completed", item_id="mcp_1", output_index=0, sequence_number=6
    ),
    ToolCallProgressEvent(
        type="response.file_search_call.searching", item_id="fs_1", output_index=1, sequence_number=7
    ),
    ArgumentsDeltaEvent(
        type="response.function_call_arguments.delta",
        item_id="fc_1",
        output_index=2,
        delta="{",
        sequence_number=8,
    ),
    ArgumentsDoneEvent(
        type="response.function_call_arguments.done",
        item_id="fc_1",
        output_index=2,
        arguments="{}",
        sequence_number=9,
    ),
    ContentPartEvent(
        type="response.content_part.added",
        item_id="msg_1",
        output_index=3,
        content_index=0,
        part=OutputText(text=""),
        sequence_number=10,
    ),
    OutputTextDeltaEvent(item_id="msg_1", output_index=3, content_index=0, delta="Par", sequence_number=11),
    OutputTextDoneEvent(item_id="msg_1", output_index=3, content_index=0, text="Paris.", sequence_number=12),
    OutputItemEvent(
        type="response.output_item.done",
        response_id="resp_1",
        output_index=3,
        item=MESSAGE,
        sequence_number=13,
    ),
    ResponseLifecycleEvent(type="response.completed", response=_response(), sequence_number=14),
    ResponseLifecycleEvent(
        type="response.failed",
        response=_response(status="failed", error={"code": "server_error", "message": "upstream down"}),
        sequence_number=15,
    ),
    ErrorEvent(code="server_error", message="provider 'x' is down", sequence_number=16),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_every_stream_event_reads_in_the_openai_sdk(event) -> None:
    wire = ResponseStreamChunk(event).model_dump(mode="json", by_alias=True)
    assert wire["type"] == event.type  # the event itself on the wire, not wrapped
    theirs = OPENAI_EVENT.validate_python(wire)
    assert theirs.type == event.type and theirs.sequence_number == event.sequence_number
    assert ResponseStreamChunk.model_validate(wire).root == event


@pytest.mark.parametrize(
    "event",
    [
        e
        for e in EVENTS
        if e.type
        in {
            "response.created",
            "response.completed",
            "response.output_text.delta",
            "response.output_item.added",
        }
    ],
    ids=lambda e: e.type,
)
def test_the_events_llama_stack_client_knows_read_there(event) -> None:
    wire = ResponseStreamChunk(event).model_dump(mode="json", by_alias=True)
    if "response" in wire:  # 0.2.12 predates MCP approvals (see above)
        output = wire["response"]["output"]
        wire["response"]["output"] = [i for i in output if i["type"] != "mcp_approval_request"]
    assert TypeAdapter(LSEvent).validate_python(wire).type == event.type


def test_what_the_openai_sdk_sends_validates() -> None:
    request = CreateResponseRequest.model_validate(
        {
            "model": "smollm2",
            "input": [
                {"role": "user", "content": "What is the weather in Paris?"},  # no type: a message
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_0",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
                },
                {"type": "function_call", "call_id": "call_1", "name": "book", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "booked"},
                {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "And?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
                    ],
                },
            ],
            "tools": [
                {"type": "function", "name": "book", "parameters": {"type": "object"}, "strict": True},
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
                    "server_label": "weather",
                    "server_url": "http://127.0.0.1:9/sse",
                    "headers": {"Authorization": "Bearer t"},
                    "allowed_tools": ["get_weather"],
                    "require_approval": {"never": {"tool_names": ["get_weather"]}},
                },
            ],
            "tool_choice": {"type": "function", "name": "book"},
            "text": {
                "format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}
            },
            "include": ["file_search_call.results"],
            "previous_response_id": "resp_0",
            "store": False,
            "max_output_tokens": 64,
        }
    )
    kinds = [type(item).__name__ for item in request.input]
    assert kinds == [
        "InputMessage",
        "InputMessage",
        "FunctionCall",
        "FunctionCallOutput",
        "McpApprovalResponse",
        "InputMessage",
    ]
    assert [t.type for t in request.tools] == ["function", "file_search", "web_search_preview", "mcp"]
    assert request.tools[3].require_approval.never.tool_names == ["get_weather"]
    assert request.text.format.json_schema == {"type": "object"}


def test_an_mcp_tool_defaults_to_approval_and_bad_input_names_the_field() -> None:
    request = CreateResponseRequest(
        model="m", input="hi", tools=[{"type": "mcp", "server_label": "s", "server_url": "http://x"}]
    )
    assert request.tools[0].require_approval == "always"
    with pytest.raises(ValidationError, match="vector_store_ids"):
        CreateResponseRequest(model="m", input="hi", tools=[{"type": "file_search", "vector_store_ids": []}])
    with pytest.raises(ValidationError, match="input"):
        CreateResponseRequest(model="m", input=[{"type": "no_such_item"}])


def test_input_items_page_reads_in_the_openai_sdk() -> None:
    page = InputItemList(
        data=[
            InputMessage(
                id="msg_in_1", role="user", content=[{"type": "input_text", "text": "hi"}], status="completed"
            )
        ],
        first_id="msg_in_1",
        last_id="msg_in_1",
    )
    theirs = ResponseItemList.model_validate(page.model_dump(mode="json"))
    assert theirs.data[0].type == "message" and theirs.first_id == "msg_in_1"
