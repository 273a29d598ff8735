"""The calls a Responses facade makes, in order, over a real store (SQLite and PostgreSQL), with the
model's answers scripted: an MCP approval round-trip across two requests, a client function call
answered in a third, then the first two responses deleted and the chain continued from the third.

No model runs here (these are the data layer's functions; the engine and routes are built elsewhere):
the scripted answers stand where the Inference router's chat completions will be.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseItemList

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.responses import CreateResponseRequest, McpListedTool
from lamina.errors import NotFoundError
from lamina.providers.responses_events import ResponseEvents
from lamina.providers.responses_items import (
    add_usage,
    approval_decisions,
    chat_request,
    check_request,
    conversation,
    input_items,
    mcp_call_item,
    new_response,
    offer_tools,
    plan_tool_calls,
    stored_messages,
    tool_exchange,
)
from lamina.storage.responses_store import ResponsesStore

TOOLS = [
    {
        "type": "mcp",
        "server_label": "geo",
        "server_url": "http://127.0.0.1:9/mcp",
        "require_approval": "always",
    },
    {"type": "function", "name": "book", "parameters": {"type": "object", "properties": {}}},
]
LISTINGS = {"geo": [McpListedTool(name="capital", input_schema={"type": "object", "properties": {}})]}


async def respond(store: ResponsesStore, body: dict, answers: list[dict], seen: list[list[dict]]) -> Any:
    """One request through the data layer; ``answers`` are the model calls' scripted chat messages."""
    request = CreateResponseRequest.model_validate({"model": "smollm2", **body})
    check_request(request)
    previous = await store.get(request.previous_response_id) if request.previous_response_id else None
    offer = offer_tools(request.tools, LISTINGS)
    events = ResponseEvents(new_response(request), offer)
    events.start()
    for item in offer.list_items:
        events.add_item(item)
    approved: list[dict] = []
    for decision in approval_decisions(request.input, previous):
        assert decision.approve
        item = mcp_call_item(decision.request, output="Paris", approval_request_id=decision.request.id)
        events.add_item(item)
        approved += tool_exchange(item.id, item.name, item.arguments, item.output)
    messages = conversation(request, previous, approved)
    usage = None
    for n, answer in enumerate(answers):
        body = chat_request(request, messages, offer, call_index=n, usage=usage)
        OpenAIChatCompletionRequest.model_validate(body)
        seen.append(list(body["messages"]))
        usage = add_usage(usage, {"prompt_tokens": 10, "completion_tokens": 2})
        plan = plan_tool_calls(answer.get("tool_calls", []), offer)
        if answer.get("content"):
            events.text_delta(answer["content"])
        events.finish_model_call(plan.function_calls)
        for approval in plan.approvals:
            events.add_item(approval)
        if (reply := plan.assistant_message(answer.get("content"))) is not None:
            messages.append(reply)
        if plan.stops_run:
            break
    events.complete(usage)
    if request.store is not False:
        items = input_items(request.input, previous)
        await store.store(events.response, items, stored_messages(messages, request))
    return events.response


def _call(call_id: str, name: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


async def test_approval_round_trip_client_call_and_deleted_ancestors(store: ResponsesStore) -> None:
    seen: list[list[dict]] = []
    first = await respond(
        store,
        {"input": "Capital of France?", "tools": TOOLS, "instructions": "Be brief."},
        [{"tool_calls": [_call("c1", "capital")]}],
        seen,
    )
    assert [o.type for o in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request_id = first.output[1].id

    second = await respond(
        store,
        {
            "input": [{"type": "mcp_approval_response", "approval_request_id": request_id, "approve": True}],
            "previous_response_id": first.id,
            "tools": TOOLS,
        },
        [{"content": "Paris. Shall I book?", "tool_calls": [_call("c2", "book")]}],
        seen,
    )
    assert second.previous_response_id == first.id
    assert [o.type for o in second.output] == ["mcp_list_tools", "mcp_call", "message", "function_call"]
    assert second.output[1].approval_request_id == request_id and second.output[1].output == "Paris"
    # the model saw the question, then the approved call and its result (not the old instructions)
    assert seen[1][0] == {"role": "user", "content": "Capital of France?"}
    assert seen[1][1]["tool_calls"][0]["function"]["name"] == "capital" and seen[1][2]["content"] == "Paris"

    third = await respond(
        store,
        {
            "input": [{"type": "function_call_output", "call_id": "c2", "output": "booked"}],
            "previous_response_id": second.id,
        },
        [{"content": "Booked."}],
        seen,
    )
    assert (
        OpenAIResponse.model_validate(third.model_dump(mode="json", by_alias=True)).output_text == "Booked."
    )
    assert seen[2][-2]["tool_calls"][0]["id"] == "c2" and seen[2][-1] == {
        "role": "tool",
        "tool_call_id": "c2",
        "content": "booked",
    }

    await store.delete(first.id)
    await store.delete(second.id)
    with pytest.raises(NotFoundError):
        await store.get(first.id)
    page = await store.list_input_items(third.id, order="asc")
    assert [i.type for i in page.data] == [
        "message",  # the first question
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_list_tools",
        "mcp_call",
        "message",
        "function_call",
        "function_call_output",
    ]
    ResponseItemList.model_validate(page.model_dump(mode="json", by_alias=True))
    fourth = await respond(
        store, {"input": "Thanks!", "previous_response_id": third.id}, [{"content": "You're welcome."}], seen
    )
    assert (
        seen[3][0] == {"role": "user", "content": "Capital of France?"}
        and seen[3][-1]["content"] == "Thanks!"
    )
    assert (await store.get(fourth.id)).response.usage.input_tokens == 10


async def test_store_false_keeps_nothing(store: ResponsesStore) -> None:
    response = await respond(store, {"input": "hi", "store": False}, [{"content": "hello"}], [])
    assert response.store is False
    assert (await store.list()).data == []
