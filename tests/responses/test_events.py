"""The event builder's sequences, each event validated by the openai SDK's ResponseStreamEvent and the
whole stream replayed through the SDK's own stream accumulator (what ``client.responses.stream()``
runs), whose final response must equal the builder's."""

from __future__ import annotations

from typing import Any

import pytest
from llama_stack_client.types import ResponseObjectStream as LSEvent
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from lamina.apis.responses import (
    CreateResponseRequest,
    FileSearchResult,
    McpListedTool,
    ResponseStreamChunk,
    Usage,
)
from lamina.providers.responses_events import ResponseEvents
from lamina.providers.responses_items import (
    file_search_item,
    mcp_call_item,
    new_response,
    offer_tools,
    plan_tool_calls,
    web_search_item,
)

OPENAI_EVENT = TypeAdapter(ResponseStreamEvent)
LS_EVENT = TypeAdapter(LSEvent)
LS_KNOWS = {  # the event types llama-stack-client 0.2.12 has a model for, named as OpenAI names them
    "response.created",
    "response.output_item.added",
    "response.output_item.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.web_search_call.in_progress",
    "response.web_search_call.searching",
    "response.web_search_call.completed",
    "response.mcp_list_tools.in_progress",
    "response.mcp_list_tools.failed",
    "response.mcp_list_tools.completed",
    "response.mcp_call.in_progress",
    "response.mcp_call.failed",
    "response.mcp_call.completed",
    "response.completed",
}
USAGE = Usage(input_tokens=12, output_tokens=5, total_tokens=17)


class Client:
    """What an openai SDK client sees: every event parsed by the SDK, and its accumulated response."""

    def __init__(self) -> None:
        self.state = ResponseStreamState(input_tools=omit, text_format=omit)
        self.events: list[Any] = []

    def receive(self, events: list[Any]) -> None:
        for event in events:
            wire = ResponseStreamChunk(event).model_dump(mode="json", by_alias=True)
            assert ResponseStreamChunk.model_validate(wire).root == event
            theirs = OPENAI_EVENT.validate_python(_without_string_mcp_error(wire))
            assert theirs.sequence_number == len(self.events), "sequence numbers run 0, 1, 2, ... with no gap"
            self.state.handle_event(theirs)
            self.events.append(theirs)
            if wire["type"] in LS_KNOWS and not _has_approval_request(wire):  # 0.2.12 predates approvals
                assert LS_EVENT.validate_python(wire).type == wire["type"]

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def _has_approval_request(wire: dict) -> bool:
    items = [wire.get("item") or {}, *((wire.get("response") or {}).get("output") or [])]
    return any(i.get("type") == "mcp_approval_request" for i in items)


def _without_string_mcp_error(wire: dict) -> dict:
    """The openai SDK now types ``mcp_call.error`` as an object; Lamina's wire model (like
    llama-stack-client 0.2.12's) sends a string (see ``test_a_failed_mcp_calls_error_shape``): the SDK
    checks everything else of such an event."""
    item = wire.get("item")
    if isinstance(item, dict) and item.get("type") == "mcp_call" and isinstance(item.get("error"), str):
        return {**wire, "item": {**item, "error": None}}
    response = wire.get("response")
    if isinstance(response, dict):
        output = [
            o for o in response["output"] if not (o["type"] == "mcp_call" and isinstance(o.get("error"), str))
        ]
        return (
            {**wire, "response": {**response, "output": output}}
            if len(output) < len(response["output"])
            else wire
        )
    return wire


@pytest.mark.xfail(
    strict=True,
    reason="wire model mismatch left to its owner: openai SDK 3.x types mcp_call.error as "
    '{"type": "mcp_tool_execution_error" | "http_error" | "mcp_protocol_error", ...}; Lamina sends a string',
)
def test_a_failed_mcp_calls_error_shape() -> None:
    events, offer, _client = run(
        [{"type": "mcp", "server_label": "geo", "server_url": "http://x", "require_approval": "never"}],
        {"geo": [McpListedTool(name="capital", input_schema={"type": "object"})]},
    )
    plan = plan_tool_calls([{"id": "c1", "function": {"name": "capital", "arguments": "{}"}}], offer)
    failed = mcp_call_item(plan.server_calls[0], error="server 'geo' answered 500")
    (done,) = [e for e in events.add_item(failed) if e.type == "response.output_item.done"]
    OPENAI_EVENT.validate_python(ResponseStreamChunk(done).model_dump(mode="json", by_alias=True))


def run(tools: list[dict] | None = None, listings: dict | None = None) -> tuple[ResponseEvents, Any, Client]:
    request = CreateResponseRequest(model="smollm2", input="hi", tools=tools)
    offer = offer_tools(request.tools, listings or {})
    events = ResponseEvents(new_response(request), offer)
    client = Client()
    client.receive(events.start())
    return events, offer, client


def test_a_streamed_text_answer() -> None:
    events, _, client = run()
    for piece in ["Par", "is", "."]:
        client.receive(events.text_delta(piece))
    client.receive(events.finish_model_call())
    client.receive(events.complete(USAGE))
    assert client.types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert client.events[0].response.status == "in_progress" and client.events[0].response.output == []
    assert client.events[7].text == "Paris."
    final = client.events[-1].response
    assert final.status == "completed" and final.output_text == "Paris." and final.usage.total_tokens == 17
    assert events.response.status == "completed" and events.response.output[0].content[0].text == "Paris."
    assert client.state._completed_response.output_text == "Paris."  # the SDK's accumulator agrees


FUNCTION = [{"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}}]


def test_text_then_a_streamed_function_call_ends_the_run_for_the_client() -> None:
    events, offer, client = run(FUNCTION)
    client.receive(events.text_delta("Checking."))
    client.receive(events.tool_call_delta(0, call_id="call_1", name="weather", arguments='{"ci'))
    client.receive(events.tool_call_delta(0, arguments='ty":"Paris"}'))
    plan = plan_tool_calls(
        [{"id": "call_1", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}], offer
    )
    client.receive(events.finish_model_call(plan.function_calls))
    client.receive(events.complete(USAGE))
    assert client.types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # the message
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_item.added",  # the function call
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    _message, call = events.response.output
    assert (
        call.type == "function_call" and call.arguments == '{"city":"Paris"}' and call.status == "completed"
    )
    assert call.id == client.events[5].item.id  # the streamed item keeps its id
    assert call.call_id == "call_1" and client.events[11].arguments == '{"city":"Paris"}'
    final = client.events[-1].response
    assert [o.type for o in final.output] == ["message", "function_call"]


def test_an_mcp_run_lists_tools_calls_one_and_answers() -> None:
    mcp = [
        {
            "type": "mcp",
            "server_label": "geo",
            "server_url": "http://127.0.0.1:9/mcp",
            "require_approval": "never",
        }
    ]
    listing = {"geo": [McpListedTool(name="capital", input_schema={"type": "object", "properties": {}})]}
    events, offer, client = run(mcp, listing)
    client.receive(events.add_item(offer.list_items[0]))
    # an MCP call's arguments are not streamed as the model writes them: it is shown when it runs
    assert events.tool_call_delta(0, call_id="call_1", name="capital", arguments="{}") == []
    plan = plan_tool_calls(
        [{"id": "call_1", "function": {"name": "capital", "arguments": '{"c":"FR"}'}}], offer
    )
    client.receive(events.finish_model_call(plan.function_calls))
    running = mcp_call_item(plan.server_calls[0])
    client.receive(events.begin_item(running))
    client.receive(events.finish_item(running.model_copy(update={"output": "Paris"})))
    client.receive(events.text_delta("Paris."))
    client.receive(events.complete(USAGE))
    assert client.types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert client.events[6].item.status == "in_progress" and client.events[6].item.output is None
    final = client.events[-1].response
    assert [o.type for o in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output[1].output == "Paris" and final.output[1].status == "completed"
    assert final.output[0].tools[0].name == "capital"


def test_a_failed_mcp_call_and_an_approval_request() -> None:
    mcp = [
        {
            "type": "mcp",
            "server_label": "geo",
            "server_url": "http://x",
            "require_approval": {"never": {"tool_names": ["capital"]}},
        }
    ]
    listing = {"geo": [McpListedTool(name=n, input_schema={"type": "object"}) for n in ("capital", "border")]}
    events, offer, client = run(mcp, listing)
    plan = plan_tool_calls(
        [
            {"id": "c1", "function": {"name": "capital", "arguments": "{}"}},
            {"id": "c2", "function": {"name": "border", "arguments": "{}"}},
        ],
        offer,
    )
    failed = mcp_call_item(plan.server_calls[0], error="server 'geo' answered 500")
    client.receive(events.begin_item(failed))
    client.receive(events.finish_item(failed))
    client.receive(events.add_item(plan.approvals[0]))
    client.receive(events.complete(USAGE))
    assert client.types[2:] == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.failed",
        "response.output_item.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    assert [o.type for o in events.response.output] == ["mcp_call", "mcp_approval_request"]
    assert events.response.output[0].status == "failed"


def test_searches_show_their_progress_and_results_only_when_included() -> None:
    tools = [{"type": "file_search", "vector_store_ids": ["vs_1"]}, {"type": "web_search"}]
    events, _, client = run(tools)
    results = [
        FileSearchResult(file_id="file-1", filename="geo.txt", text="Paris is the capital.", score=0.9)
    ]
    search = file_search_item("capital", results, ["file_search_call.results"])
    client.receive(events.begin_item(search))
    client.receive(events.finish_item(search))
    web = web_search_item("news", failed=True)
    client.receive(events.add_item(web))
    client.receive(events.add_item(events.response.output[0].model_copy(update={"id": "fs_other"})))
    client.receive(events.complete())
    assert client.types[2:] == [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.output_item.done",  # a failed search has no completed event: its item says failed
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
        "response.completed",
    ]
    assert client.events[2].item.results is None  # in progress: no results yet
    final = client.events[-1].response
    assert final.output[0].results[0].text == "Paris is the capital." and final.output[1].status == "failed"


def test_a_failure_mid_answer_closes_what_is_open_and_ends_the_stream() -> None:
    events, _, client = run(FUNCTION)
    client.receive(events.text_delta("Par"))
    client.receive(events.tool_call_delta(0, call_id="call_1", name="weather", arguments="{"))
    client.receive(events.fail("provider 'llama-cpp' stopped answering (timeout after 60 s)", usage=USAGE))
    assert client.types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    failed = client.events[-1].response
    assert (
        failed.status == "failed"
        and "llama-cpp" in failed.error.message
        and failed.error.code == "server_error"
    )
    assert [(o.type, o.status) for o in failed.output] == [
        ("message", "incomplete"),
        ("function_call", "incomplete"),
    ]
    with pytest.raises(ValueError, match="already ended"):
        events.complete()


def test_the_output_budget_running_out_is_incomplete() -> None:
    events, _, client = run()
    client.receive(events.text_delta("Paris is"))
    client.receive(events.incomplete("max_output_tokens", USAGE))
    final = client.events[-1]
    assert final.type == "response.incomplete"
    assert (
        final.response.status == "incomplete"
        and final.response.incomplete_details.reason == "max_output_tokens"
    )
    assert final.response.output[0].content[0].text == "Paris is"


def test_a_streamed_call_dropped_by_parallel_tool_calls_false_ends_incomplete() -> None:
    events, offer, client = run(FUNCTION)
    client.receive(events.tool_call_delta(0, call_id="c1", name="weather", arguments="{}"))
    client.receive(events.tool_call_delta(1, call_id="c2", name="weather", arguments="{}"))
    calls = [{"id": c, "function": {"name": "weather", "arguments": "{}"}} for c in ("c1", "c2")]
    plan = plan_tool_calls(calls, offer, parallel_tool_calls=False)
    client.receive(events.finish_model_call(plan.function_calls))
    client.receive(events.complete())
    assert [(o.call_id, o.status) for o in events.response.output] == [
        ("c1", "completed"),
        ("c2", "incomplete"),
    ]


def test_a_whole_answer_added_at_once_streams_like_a_streamed_one() -> None:
    """A non-streaming model call: the facade adds the finished message and function calls."""
    events, offer, client = run(FUNCTION)
    from lamina.providers.responses_items import message_item

    client.receive(events.add_item(message_item("Let me check.")))
    plan = plan_tool_calls(
        [{"id": "c1", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}], offer
    )
    client.receive(events.finish_model_call(plan.function_calls))
    client.receive(events.complete(USAGE))
    assert client.types[2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert client.events[-1].response.output_text == "Let me check."
    assert events.response.output[1].call_id == "c1"
