"""The Responses API through a real ``lamina run`` (the agents provider's Responses facade), driven by
the openai SDK and llama-stack-client 0.2.12, in front of the fake upstream.

The fake upstream (``lamina.testing.fake_openai``) stands in for the model: no real model here calls a
tool on demand and deterministically; it calls the first (or the named) tool when ``tool_choice`` is
"required" or a name, with ``{"city": "Paris"}`` (``{"query": "Paris"}`` for a search tool), and
``echo`` answers with the request body it received (to see the conversation the model is given).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

MODEL = "fake/ok"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def server(
    fake_upstream: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
    agents_run_config: Callable[..., dict],
) -> Iterator[ServerProcess]:
    work: Path = tmp_path_factory.mktemp("responses")
    config = agents_run_config(fake_upstream, work / "agents.db")
    config["providers"]["agents"][0]["config"]["responses_store"] = {
        "type": "sqlite",
        "db_path": str(work / "responses.db"),
    }
    config["providers"]["files"] = [
        {"provider_id": "localfs", "provider_type": "inline::localfs", "config": {"storage_dir": str(work)}}
    ]
    with lamina_server(config, work) as lamina:
        yield lamina


@pytest.fixture(scope="module")
def oa(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1/openai/v1", api_key="none", max_retries=0, timeout=60)


def test_create_retrieve_list_input_items_and_delete(oa: OpenAI, server: ServerProcess) -> None:
    response = oa.responses.create(model=MODEL, input="hello", instructions="Be brief.", max_output_tokens=16)
    assert response.status == "completed" and response.output_text
    assert response.instructions == "Be brief." and response.usage and response.usage.output_tokens > 0
    again = oa.responses.retrieve(response.id)
    assert again.id == response.id and again.output_text == response.output_text
    items = oa.responses.input_items.list(response.id)
    assert [(i.type, i.content[0].text) for i in items.data] == [("message", "hello")]
    listed = httpx.get(f"{server.url}/v1/openai/v1/responses", params={"limit": 100}).json()
    assert response.id in [r["id"] for r in listed["data"]]
    assert listed["data"][0]["input"][0]["content"][0]["text"] == "hello"  # newest first, with its input
    # the /v1/responses alias serves the same store
    alias = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    assert alias.responses.retrieve(response.id).id == response.id
    oa.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError, match=response.id):
        oa.responses.retrieve(response.id)


def test_previous_response_id_continues_the_conversation_and_is_echoed(oa: OpenAI) -> None:
    first = oa.responses.create(model=MODEL, input="My name is Ada.", instructions="Old instructions.")
    second = oa.responses.create(model="fake/echo", input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    seen = json.loads(second.output_text)["messages"]  # what the model was given
    assert [m["role"] for m in seen] == ["user", "assistant", "user"]
    assert seen[0]["content"] == "My name is Ada." and seen[2]["content"] == "What is my name?"
    assert seen[1]["content"] == first.output_text  # the old instructions are not inherited
    items = oa.responses.input_items.list(second.id, order="asc")
    assert [i.type for i in items.data] == ["message", "message", "message"]
    with pytest.raises(openai.NotFoundError, match="resp_nope"):
        oa.responses.create(model=MODEL, input="hi", previous_response_id="resp_nope")


def test_store_false_keeps_nothing(oa: OpenAI) -> None:
    response = oa.responses.create(model=MODEL, input="hello", store=False)
    assert response.status == "completed" and response.store is False
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve(response.id)


def test_a_function_call_ends_the_response_and_its_output_continues_it(oa: OpenAI) -> None:
    first = oa.responses.create(
        model=MODEL, input="Weather in Paris?", tools=[WEATHER], tool_choice="required"
    )
    assert [o.type for o in first.output] == ["function_call"]
    call = first.output[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    second = oa.responses.create(
        model="fake/echo",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],
    )
    seen = json.loads(second.output_text)["messages"]
    assert seen[-2]["tool_calls"][0]["id"] == call.call_id
    assert seen[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21 C"}
    # an output that answers no call is the client's mistake: a 400 naming the call id
    with pytest.raises(openai.BadRequestError, match="call_unknown"):
        oa.responses.create(
            model=MODEL,
            previous_response_id=second.id,
            input=[{"type": "function_call_output", "call_id": "call_unknown", "output": "x"}],
        )


def test_parallel_tool_calls_false_reaches_the_model(oa: OpenAI) -> None:
    response = oa.responses.create(
        model="fake/echo", input="hi", tools=[WEATHER], tool_choice="auto", parallel_tool_calls=False
    )
    assert response.parallel_tool_calls is False
    assert json.loads(response.output_text)["parallel_tool_calls"] is False


def test_parallel_tool_calls_false_runs_and_returns_only_the_first_call(oa: OpenAI) -> None:
    """``fake/twocalls`` answers two calls even when asked for one: only the first is returned (and
    continues the conversation); the second is dropped, streamed or not."""
    body = {"input": "Weather?", "tools": [WEATHER], "tool_choice": "required"}
    both = oa.responses.create(model="fake/twocalls", **body)
    assert [o.call_id for o in both.output if o.type == "function_call"] == ["call_fake1", "call_fake2"]
    one = oa.responses.create(model="fake/twocalls", parallel_tool_calls=False, **body)
    assert [(o.type, o.call_id) for o in one.output] == [("function_call", "call_fake1")]
    assert [o.call_id for o in oa.responses.retrieve(one.id).output] == ["call_fake1"]
    events = list(oa.responses.create(model="fake/twocalls", parallel_tool_calls=False, stream=True, **body))
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [i.call_id for i in added] == ["call_fake1"]
    assert [o.call_id for o in events[-1].response.output] == ["call_fake1"]
    # the one call's output continues the response: the model sees one call and its result
    follow = oa.responses.create(
        model="fake/echo",
        previous_response_id=one.id,
        input=[{"type": "function_call_output", "call_id": "call_fake1", "output": "sunny"}],
    )
    seen = json.loads(follow.output_text)["messages"]
    assert [c["id"] for c in seen[-2]["tool_calls"]] == ["call_fake1"]
    assert seen[-1] == {"role": "tool", "tool_call_id": "call_fake1", "content": "sunny"}


def test_a_streamed_response_sends_openais_events_in_order(oa: OpenAI) -> None:
    events = list(
        oa.responses.create(
            model=MODEL, input="Weather?", tools=[WEATHER], tool_choice="required", stream=True
        )
    )
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in types
    assert types.index("response.output_item.added") < types.index("response.function_call_arguments.done")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output[0].type == "function_call"
    assert json.loads(final.output[0].arguments) == {"city": "Paris"}
    assert oa.responses.retrieve(final.id).output[0].call_id == final.output[0].call_id

    text = list(oa.responses.create(model=MODEL, input="hello", stream=True))
    deltas = "".join(e.delta for e in text if e.type == "response.output_text.delta")
    assert deltas and text[-1].response.output_text == deltas


def test_a_model_failure_is_the_providers_error_and_a_failed_stream(oa: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        oa.responses.create(model="fake/error500", input="hello")
    assert caught.value.status_code == 502 and "fake" in caught.value.message
    events = list(oa.responses.create(model="fake/error500", input="hello", stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.error.message
    # the server keeps serving
    assert oa.responses.create(model=MODEL, input="hello").status == "completed"


def _listed(server: ServerProcess, **params: Any) -> list[dict]:
    """GET /v1/openai/v1/responses (the openai SDK here has no responses.list)."""
    answer = httpx.get(f"{server.url}/v1/openai/v1/responses", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_a_failed_response_is_stored_with_its_error_and_listed(oa: OpenAI, server: ServerProcess) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        oa.responses.create(model="fake/error500", input="hello failed")
    assert caught.value.status_code == 502
    failed = _listed(server, limit=5, model="fake/error500")[0]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert "fake" in failed["error"]["message"]  # names the provider, as the 502 did
    stored = oa.responses.retrieve(failed["id"])
    assert stored.status == "failed" and stored.error.message == failed["error"]["message"]
    assert [i.content[0].text for i in oa.responses.input_items.list(failed["id"]).data] == ["hello failed"]
    events = list(oa.responses.create(model="fake/error500", input="hello", stream=True))
    final = events[-1].response
    assert events[-1].type == "response.failed"
    again = oa.responses.retrieve(final.id)
    assert again.status == "failed" and again.error.message == final.error.message
    assert final.id in [r["id"] for r in _listed(server, limit=5)]
    events = list(oa.responses.create(model="fake/error500", input="hello", stream=True, store=False))
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve(events[-1].response.id)


def test_a_client_leaving_a_streamed_response_leaves_it_stored_failed(
    oa: OpenAI, server: ServerProcess
) -> None:
    """``fake/slow`` answers after 5 s: the client reads response.created and goes away."""
    body = {"model": "fake/slow", "input": "hello", "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/openai/v1/responses", json=body, timeout=30) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:") and '"response.created"' in line:
                response_id = json.loads(line[5:])["response"]["id"]
                break
    deadline = time.monotonic() + 20
    while True:  # the server notices the gone client when the model answers (<= 5 s)
        try:
            stored = oa.responses.retrieve(response_id)
            break
        except openai.NotFoundError:
            assert time.monotonic() < deadline, "the abandoned response was never stored"
            time.sleep(0.2)
    assert stored.status == "failed" and "client closed the connection" in stored.error.message
    assert oa.responses.create(model=MODEL, input="hello").status == "completed"  # still serving


def test_file_search_returns_the_passage_of_the_filtered_file(oa: OpenAI) -> None:
    store = oa.vector_stores.create(name="cities")
    texts = {"paris.txt": ("Paris is the capital of France.", "fr"), "rome.txt": ("Rome is in Italy.", "it")}
    for name, (text, country) in texts.items():
        file_id = oa.files.create(file=(name, text.encode()), purpose="assistants").id
        oa.vector_stores.files.create(
            vector_store_id=store.id, file_id=file_id, attributes={"country": country}
        )
    deadline = time.monotonic() + 60
    while any(f.status == "in_progress" for f in oa.vector_stores.files.list(store.id).data):
        assert time.monotonic() < deadline, "files still in_progress after 60 s"
        time.sleep(0.2)
    tool = {
        "type": "file_search",
        "vector_store_ids": [store.id],
        "filters": {"type": "eq", "key": "country", "value": "fr"},
        "max_num_results": 3,
    }
    response = oa.responses.create(
        model=MODEL,
        input="What is the capital of France?",
        tools=[tool],
        tool_choice="required",
        include=["file_search_call.results"],
    )
    assert [o.type for o in response.output] == ["file_search_call", "message"]
    search = response.output[0]
    assert search.status == "completed" and search.queries == ["Paris"]
    assert [r.filename for r in search.results] == ["paris.txt"]
    assert "capital of France" in search.results[0].text
    # without include, the results are not returned
    plain = oa.responses.create(model=MODEL, input="France?", tools=[tool], tool_choice="required")
    assert plain.output[0].type == "file_search_call" and plain.output[0].results is None


def test_llama_stack_client_creates_and_retrieves(server: ServerProcess) -> None:
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    response = ls.responses.create(model=MODEL, input="hello")
    assert response.status == "completed" and response.output[0].content[0].text
    assert ls.responses.retrieve(response.id).id == response.id
    chunks = list(ls.responses.create(model=MODEL, input="hello", stream=True))
    assert chunks[0].type == "response.created" and chunks[-1].type == "response.completed"


# -- web_search: the Tool Runtime's builtin::websearch (remote::brave-search) -----------------------


@pytest.fixture(scope="module")
def search_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The websearch plugin's local Brave/Tavily stand-in (no real search API is reachable here)."""
    script = Path(__file__).parents[2] / "websearch" / "tests" / "fake_search.py"
    port = free_port()
    argv = [sys.executable, str(script), "--port", str(port), "--keys", "server-key"]
    with ServerProcess(argv, port, log_path=tmp_path_factory.mktemp("search") / "search.log") as api:
        yield api


@pytest.fixture(scope="module")
def web_oa(
    fake_upstream: ServerProcess,
    search_api: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
    agents_run_config: Callable[..., dict],
) -> Iterator[OpenAI]:
    work: Path = tmp_path_factory.mktemp("responses-web")
    config = agents_run_config(fake_upstream, work / "agents.db")
    config["providers"]["tool_runtime"].append(
        {
            "provider_id": "brave-search",
            "provider_type": "remote::brave-search",
            "config": {"api_key": "server-key", "max_results": 3, "base_url": f"{search_api.url}/res/v1"},
        }
    )
    with lamina_server(config, work) as lamina:
        yield OpenAI(base_url=lamina.url + "/v1/openai/v1", api_key="none", max_retries=0, timeout=60)


def test_web_search_runs_the_tool_runtimes_web_search(web_oa: OpenAI, search_api: ServerProcess) -> None:
    response = web_oa.responses.create(
        model="fake/echo", input="News about Paris?", tools=[{"type": "web_search"}], tool_choice="required"
    )
    assert [o.type for o in response.output] == ["web_search_call", "message"]
    assert response.output[0].status == "completed" and response.output[0].action.query == "Paris"
    seen_by_model = json.loads(response.output_text)["messages"]  # echo: what the model was given
    assert seen_by_model[-1]["role"] == "tool" and "About Paris" in seen_by_model[-1]["content"]
    seen = httpx.get(f"{search_api.url}/_seen").json()
    assert seen[-1]["api"] == "brave" and seen[-1]["query"] == "Paris"


def test_an_agents_builtin_websearch_is_brave_search_to_the_model_and_in_its_steps(
    web_oa: OpenAI, search_api: ServerProcess
) -> None:
    """As in Llama Stack 0.2.12 (its test_builtin_tool_web_search): an agent's builtin::websearch tool
    ``web_search`` is offered to the model as ``brave_search`` and the turn's step names the call so; the
    Tool Runtime runs ``web_search``."""
    ls = LlamaStackClient(base_url=str(web_oa.base_url).split("/v1/openai")[0], max_retries=0, timeout=60)
    config = {
        "model": "fake/echo",
        "instructions": "Search the web.",
        "toolgroups": ["builtin::websearch"],
        "tool_config": {"tool_choice": "required"},
    }
    agent_id = ls.agents.create(agent_config=config).agent_id
    session_id = ls.agents.session.create(agent_id, session_name="s").session_id
    ask = [{"role": "user", "content": "News about Paris?"}]
    turn = ls.agents.turn.create(session_id, agent_id=agent_id, messages=ask, stream=False)
    step = next(s for s in turn.steps if s.step_type == "tool_execution")
    assert step.tool_calls[0].tool_name == "brave_search"
    [answer] = step.tool_responses
    assert answer.tool_name == "brave_search" and "About Paris" in str(answer.content)
    first_call = turn.steps[0].api_model_response.tool_calls[0]
    assert first_call.tool_name == "brave_search"  # what the model was offered and called
    seen = httpx.get(f"{search_api.url}/_seen").json()
    assert seen[-1]["api"] == "brave" and seen[-1]["query"] == "Paris"


# -- mcp: a real MCP server (the mcp plugin's test server), both transports --------------------------

MCP_TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def mcp_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    here = Path(__file__).parents[2] / "mcp" / "tests"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    logs = tmp_path_factory.mktemp("mcp")
    started = {}
    for transport in ("streamable_http", "sse"):
        port = free_port()
        argv = [sys.executable, "-m", "mcp_test_server", "--port", str(port), "--transport", transport]
        argv += ["--token", MCP_TOKEN]
        started[transport] = ServerProcess(
            argv, port, log_path=logs / f"{transport}.log", env=env, ready_path="/health"
        )
    try:
        for server in started.values():
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def mcp_oa(
    fake_upstream: ServerProcess,
    mcp_servers: dict[str, ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
    agents_run_config: Callable[..., dict],
) -> Iterator[OpenAI]:
    work: Path = tmp_path_factory.mktemp("responses-mcp")
    config = agents_run_config(fake_upstream, work / "agents.db")
    config["providers"]["tool_runtime"].append(
        {
            "provider_id": "model-context-protocol",
            "provider_type": "remote::model-context-protocol",
            "config": {"timeout_seconds": 5, "tool_timeout_seconds": 5},
        }
    )
    with lamina_server(config, work) as lamina:
        yield OpenAI(base_url=lamina.url + "/v1/openai/v1", api_key="none", max_retries=0, timeout=60)


def _mcp_tool(server: ServerProcess, transport: str, approval: str) -> dict:
    path = "/mcp" if transport == "streamable_http" else "/sse"
    return {
        "type": "mcp",
        "server_label": "calc",
        "server_url": server.url + path,
        "headers": {"Authorization": f"Bearer {MCP_TOKEN}"},
        "allowed_tools": ["echo"],
        "require_approval": approval,
    }


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_an_mcp_tool_is_listed_and_called(
    mcp_oa: OpenAI, mcp_servers: dict[str, ServerProcess], transport: str
) -> None:
    tool = _mcp_tool(mcp_servers[transport], transport, "never")
    response = mcp_oa.responses.create(model=MODEL, input="Echo Paris", tools=[tool], tool_choice="required")
    assert [o.type for o in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert [t.name for t in response.output[0].tools] == ["echo"]  # allowed_tools
    call = response.output[1]
    assert call.name == "echo" and call.server_label == "calc" and "Paris" in call.output
    assert response.tools[0].headers == {"Authorization": "<redacted>"}  # no credential echoed or stored


def test_an_unreachable_mcp_server_is_a_listing_error_not_a_500(mcp_oa: OpenAI) -> None:
    tool = {"type": "mcp", "server_label": "gone", "server_url": f"http://127.0.0.1:{free_port()}/mcp"}
    response = mcp_oa.responses.create(model=MODEL, input="hi", tools=[tool])
    assert response.output[0].type == "mcp_list_tools" and response.output[0].error
    assert response.status == "completed"


def test_require_approval_is_enforced_and_an_approval_runs_the_call(
    mcp_oa: OpenAI, mcp_servers: dict[str, ServerProcess]
) -> None:
    tool = _mcp_tool(mcp_servers["streamable_http"], "streamable_http", "always")
    first = mcp_oa.responses.create(model=MODEL, input="Echo Paris", tools=[tool], tool_choice="required")
    assert [o.type for o in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert request.name == "echo" and json.loads(request.arguments) == {"text": "Paris"}
    approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    second = mcp_oa.responses.create(
        model="fake/echo", input=[approval], previous_response_id=first.id, tools=[tool]
    )
    types = [o.type for o in second.output]
    assert types == ["mcp_list_tools", "mcp_call", "message"]
    call = second.output[1]
    assert call.approval_request_id == request.id and "Paris" in call.output
    seen = json.loads(second.output_text)["messages"]  # the model got the call and its result
    assert seen[-2]["tool_calls"][0]["function"]["name"] == "echo" and "Paris" in seen[-1]["content"]
    # answering the same request twice is a 400 naming it
    with pytest.raises(openai.BadRequestError, match=request.id):
        mcp_oa.responses.create(model=MODEL, input=[approval], previous_response_id=second.id, tools=[tool])


def _assert_every_call_answered(messages: list[dict]) -> None:
    """What any OpenAI-compatible model accepts: each assistant message's calls answered by tool
    messages right after it, and no tool message answering nothing."""
    pending: set[str] = set()
    for message in messages:
        if message["role"] == "tool":
            assert message["tool_call_id"] in pending, (message, messages)
            pending.discard(message["tool_call_id"])
            continue
        assert not pending, (pending, messages)
        pending = {c["id"] for c in message.get("tool_calls") or []}
    assert not pending, (pending, messages)


def test_a_refused_approval_tells_the_model_and_makes_no_call(
    mcp_oa: OpenAI, mcp_servers: dict[str, ServerProcess]
) -> None:
    tool = _mcp_tool(mcp_servers["streamable_http"], "streamable_http", "always")
    first = mcp_oa.responses.create(model=MODEL, input="Echo Paris", tools=[tool], tool_choice="required")
    request = first.output[1]
    assert request.type == "mcp_approval_request"
    refusal = {
        "type": "mcp_approval_response",
        "approval_request_id": request.id,
        "approve": False,
        "reason": "not today",
    }
    second = mcp_oa.responses.create(
        model="fake/echo", input=[refusal], previous_response_id=first.id, tools=[tool]
    )
    assert [o.type for o in second.output] == ["mcp_list_tools", "message"]  # no mcp_call: nothing ran
    seen = json.loads(second.output_text)["messages"]
    _assert_every_call_answered(seen)
    assert seen[-2]["tool_calls"][0]["function"]["name"] == "echo"
    told = seen[-1]["content"]
    assert "denied" in told and "not today" in told and "pid" not in told  # echo's output would name a pid


def test_an_approval_request_and_a_function_call_in_one_answer(
    mcp_oa: OpenAI, mcp_servers: dict[str, ServerProcess]
) -> None:
    """``fake/twocalls`` calls the MCP tool (approval required) and the function in one answer: both
    wait for the client; the next request answers both and the model sees a valid conversation."""
    tools = [_mcp_tool(mcp_servers["streamable_http"], "streamable_http", "always"), WEATHER]
    first = mcp_oa.responses.create(
        model="fake/twocalls", input="Echo Paris and the weather", tools=tools, tool_choice="required"
    )
    types = [o.type for o in first.output]
    assert types[0] == "mcp_list_tools" and sorted(types[1:]) == ["function_call", "mcp_approval_request"]
    approval = next(o for o in first.output if o.type == "mcp_approval_request")
    call = next(o for o in first.output if o.type == "function_call")
    assert approval.name == "echo" and call.name == "get_weather"
    second = mcp_oa.responses.create(
        model="fake/echo",
        previous_response_id=first.id,
        tools=tools,
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
            {"type": "mcp_approval_response", "approval_request_id": approval.id, "approve": True},
        ],
    )
    assert [o.type for o in second.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert second.output[1].approval_request_id == approval.id and "Paris" in second.output[1].output
    seen = json.loads(second.output_text)["messages"]
    _assert_every_call_answered(seen)
    results = {m["content"] for m in seen if m["role"] == "tool"}
    assert "sunny" in results and any("Paris (pid" in r for r in results)


def test_max_output_tokens_bounds_the_whole_response(
    mcp_oa: OpenAI, mcp_servers: dict[str, ServerProcess]
) -> None:
    """The fake upstream counts 3 completion tokens for a tool call: what is left goes to the next call."""
    tool = _mcp_tool(mcp_servers["streamable_http"], "streamable_http", "never")
    body = {"input": "Echo Paris", "tools": [tool], "tool_choice": "required"}
    response = mcp_oa.responses.create(model="fake/echo", max_output_tokens=10, **body)
    assert json.loads(response.output_text)["max_tokens"] == 7  # the second model call's budget
    spent = mcp_oa.responses.create(model="fake/echo", max_output_tokens=3, **body)
    assert spent.status == "incomplete" and spent.incomplete_details.reason == "max_output_tokens"
    assert [o.type for o in spent.output] == ["mcp_list_tools", "mcp_call"]  # no model call after it


def test_a_streamed_mcp_call_sends_the_mcp_events(
    mcp_oa: OpenAI, mcp_servers: dict[str, ServerProcess]
) -> None:
    tool = _mcp_tool(mcp_servers["sse"], "sse", "never")
    events = list(
        mcp_oa.responses.create(
            model=MODEL, input="Echo Paris", tools=[tool], tool_choice="required", stream=True
        )
    )
    types = [e.type for e in events]
    for expected in ("response.mcp_list_tools.completed", "response.mcp_call.in_progress"):
        assert expected in types
    assert types.index("response.mcp_call.completed") < types.index("response.output_text.delta")
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert [o.type for o in final.output] == ["mcp_list_tools", "mcp_call", "message"]


# -- postgres as responses_store ---------------------------------------------------------------------


@pytest.mark.postgres
def test_responses_stored_in_postgres_survive_a_restart(
    fake_upstream: ServerProcess,
    start_lamina: Callable[..., ServerProcess],
    postgres_server: Any,
    tmp_path: Path,
    agents_run_config: Callable[..., dict],
) -> None:
    """Llama Stack's ``responses_store`` SQL config, ``type: postgres``, on the test PostgreSQL server."""
    pg = postgres_server
    config = agents_run_config(fake_upstream, tmp_path / "agents.db")
    config["providers"]["agents"][0]["config"]["responses_store"] = {
        "type": "postgres",
        "host": pg.host,
        "port": pg.port,
        "db": pg.db,
        "user": pg.user,
        "table_name": f"responses_{tmp_path.name[-8:].replace('-', '_')}",
    }
    server = start_lamina(config)
    oa = OpenAI(base_url=server.url + "/v1/openai/v1", api_key="none", max_retries=0, timeout=60)
    first = oa.responses.create(model=MODEL, input="hello", instructions="Be brief.")
    second = oa.responses.create(model="fake/echo", input="again", previous_response_id=first.id)
    with pytest.raises(openai.APIStatusError):
        oa.responses.create(model="fake/error500", input="boom")
    server.restart()
    assert oa.responses.retrieve(first.id).output_text == first.output_text
    listed = [r["id"] for r in _listed(server)]
    assert listed[1:] == [second.id, first.id] and oa.responses.retrieve(listed[0]).status == "failed"
    items = oa.responses.input_items.list(second.id, order="asc").data
    assert [i.role for i in items] == ["user", "assistant", "user"]
    third = oa.responses.create(model="fake/echo", input="more", previous_response_id=second.id)
    seen = json.loads(third.output_text)["messages"]
    assert [m["role"] for m in seen] == ["user", "assistant", "user", "assistant", "user"]
    oa.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve(first.id)
    assert oa.responses.retrieve(third.id).previous_response_id == second.id
