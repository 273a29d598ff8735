"""The Agents API through a real ``lamina run`` with llama-stack-client 0.2.12, in front of the fake upstream.

The fake upstream (``lamina.testing.fake_openai``) stands in for the model: it is the only upstream
that answers instantly, deterministically and calls a tool on demand (``tool_choice`` required or
named), fails on demand (``error500``) and hangs on demand (``slow``, 5 s). The shields are the
rules provider's built-in ``pii`` rule set, RAG is the rag-runtime over faiss. The local SmolLM2
calls a real tool in ``test_agents_local_e2e.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient, NotFoundError
from llama_stack_client.lib.agents.agent import Agent
from llama_stack_client.lib.agents.client_tool import client_tool
from llama_stack_client.types.memory_retrieval_step import MemoryRetrievalStep

from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = pytest.mark.e2e

MODEL = "fake/ok"


@pytest.fixture(scope="module")
def server(
    fake_upstream: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
    agents_run_config: Callable[..., dict],
) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("agents")
    with lamina_server(agents_run_config(fake_upstream, work / "agents.db"), work) as lamina:
        yield lamina


@pytest.fixture
def ls(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def _agent(ls: LlamaStackClient, **config: Any) -> str:
    body = {"model": MODEL, "instructions": "You are a helpful assistant.", **config}
    return ls.agents.create(agent_config=body).agent_id


def _session(ls: LlamaStackClient, agent_id: str) -> str:
    return ls.agents.session.create(agent_id, session_name="s").session_id


HI = [{"role": "user", "content": "hello"}]


# -- turns ------------------------------------------------------------------------------------------


def test_a_non_streamed_turn_answers_the_finished_turn_and_keeps_its_steps(ls: LlamaStackClient) -> None:
    agent_id = _agent(ls, sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 8})
    session_id = _session(ls, agent_id)
    turn = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    assert turn.output_message.content and turn.output_message.stop_reason == "end_of_turn"
    assert [s.step_type for s in turn.steps] == ["inference"]
    assert turn.steps[0].api_model_response.content == turn.output_message.content
    again = ls.agents.turn.retrieve(turn.turn_id, agent_id=agent_id, session_id=session_id)
    assert again.output_message.content == turn.output_message.content
    step = ls.agents.steps.retrieve(
        turn.steps[0].step_id, agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id
    )
    assert step.step.step_id == turn.steps[0].step_id and step.step.step_type == "inference"
    session = ls.agents.session.retrieve(session_id, agent_id=agent_id)
    assert [t.turn_id for t in session.turns] == [turn.turn_id]
    # a second turn sees the first: the history goes to the model (echo shows what it received)
    second = ls.agents.turn.create(
        session_id, agent_id=agent_id, messages=[{"role": "user", "content": "more"}], stream=False
    )
    assert ls.agents.session.retrieve(session_id, agent_id=agent_id).turns[1].turn_id == second.turn_id
    listed = httpx.get(f"{ls.base_url}/v1/agents/{agent_id}/sessions").json()
    assert [s["session_id"] for s in listed["data"]] == [session_id]
    agents = httpx.get(f"{ls.base_url}/v1/agents").json()["data"]
    assert agent_id in [a["agent_id"] for a in agents]


def test_a_streamed_turn_sends_the_events_of_each_step(ls: LlamaStackClient) -> None:
    agent_id = _agent(ls)
    session_id = _session(ls, agent_id)
    events = [
        c.event.payload
        for c in ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=True)
    ]
    kinds = [e.event_type for e in events]
    assert kinds[0] == "turn_start" and kinds[1] == "step_start" and kinds[-1] == "turn_complete"
    assert kinds[-2] == "step_complete" and "step_progress" in kinds
    text = "".join(e.delta.text for e in events if e.event_type == "step_progress" and e.delta.type == "text")
    turn = events[-1].turn
    assert text and text == turn.output_message.content
    assert events[1].step_id == events[-2].step_id == turn.steps[0].step_id
    stored = ls.agents.turn.retrieve(turn.turn_id, agent_id=agent_id, session_id=session_id)
    assert stored.output_message.content == text


def test_the_agent_helper_runs_a_client_tool_and_resumes_the_turn(ls: LlamaStackClient) -> None:
    calls: list[str] = []

    @client_tool
    def get_weather(city: str) -> str:
        """Get the weather in a city.

        :param city: the city's name
        """
        calls.append(city)
        return f"sunny in {city}"

    agent = Agent(
        ls,
        model=MODEL,
        instructions="Use the tools.",
        tools=[get_weather],
        tool_config={"tool_choice": "required"},
    )
    session_id = agent.create_session("weather")
    turn = agent.create_turn(
        messages=[{"role": "user", "content": "weather?"}], session_id=session_id, stream=False
    )
    assert calls == ["Paris"]
    kinds = [s.step_type for s in turn.steps]
    assert kinds == ["inference", "tool_execution", "inference"], kinds
    tool_step = turn.steps[1]
    assert tool_step.tool_calls[0].tool_name == "get_weather"
    # the helper sends the tool's return value JSON-encoded
    assert json.loads(tool_step.tool_responses[0].content) == "sunny in Paris"
    assert turn.output_message.content and not turn.output_message.tool_calls
    stored = ls.agents.turn.retrieve(turn.turn_id, agent_id=agent.agent_id, session_id=session_id)
    assert [s.step_type for s in stored.steps] == kinds


def test_a_turn_awaits_client_tools_and_resume_needs_every_result(ls: LlamaStackClient) -> None:
    tool = {
        "name": "get_weather",
        "description": "weather",
        "parameters": [{"name": "city", "parameter_type": "string", "description": "city", "required": True}],
    }
    agent_id = _agent(ls, client_tools=[tool], tool_config={"tool_choice": "get_weather"})
    session_id = _session(ls, agent_id)
    chunks = list(ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=True))
    last = chunks[-1].event.payload
    assert last.event_type == "turn_awaiting_input"
    call = last.turn.output_message.tool_calls[0]
    assert call.tool_name == "get_weather" and call.arguments == {"city": "Paris"}
    turn_id = last.turn.turn_id
    bad = httpx.post(
        f"{ls.base_url}/v1/agents/{agent_id}/session/{session_id}/turn/{turn_id}/resume",
        json={"tool_responses": [{"call_id": "other", "tool_name": "get_weather", "content": "x"}]},
    )
    assert (
        bad.status_code == 400
        and "tool_responses" in bad.json()["detail"]
        and call.call_id in bad.json()["detail"]
    )
    done = ls.agents.turn.resume(
        turn_id,
        agent_id=agent_id,
        session_id=session_id,
        tool_responses=[{"call_id": call.call_id, "tool_name": "get_weather", "content": "rain"}],
        stream=False,
    )
    assert done.turn_id == turn_id and done.output_message.content
    assert [s.step_type for s in done.steps] == ["inference", "tool_execution", "inference"]
    assert done.steps[1].tool_responses[0].content == "rain"
    again = httpx.post(
        f"{ls.base_url}/v1/agents/{agent_id}/session/{session_id}/turn/{turn_id}/resume",
        json={"tool_responses": [{"call_id": call.call_id, "tool_name": "get_weather", "content": "x"}]},
    )
    assert again.status_code == 400 and "completed" in again.json()["detail"]


def test_resume_sends_the_model_the_history_with_only_the_awaited_results(ls: LlamaStackClient) -> None:
    tool = {"name": "get_weather", "description": "weather", "parameters": []}
    agent_id = _agent(ls, model="fake/echo", client_tools=[tool], tool_config={"tool_choice": "required"})
    session_id = _session(ls, agent_id)
    awaiting = list(ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=True))[-1]
    call = awaiting.event.payload.turn.output_message.tool_calls[0]
    done = ls.agents.turn.resume(
        awaiting.event.payload.turn.turn_id,
        agent_id=agent_id,
        session_id=session_id,
        tool_responses=[
            {"call_id": call.call_id, "tool_name": "get_weather", "content": "sunny"},
            {"call_id": "not-asked", "tool_name": "get_weather", "content": "stray"},
        ],
        stream=False,
    )
    sent = json.loads(done.output_message.content)["messages"]  # echo: what the upstream received
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["tool_calls"][0]["id"] == call.call_id
    assert sent[3] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}
    assert [r.call_id for r in done.steps[1].tool_responses] == [call.call_id]


def test_tool_choice_none_offers_no_tools(ls: LlamaStackClient) -> None:
    tool = {"name": "get_weather", "description": "weather", "parameters": []}
    agent_id = _agent(ls, client_tools=[tool], tool_config={"tool_choice": "none"})
    turn = ls.agents.turn.create(_session(ls, agent_id), agent_id=agent_id, messages=HI, stream=False)
    assert [s.step_type for s in turn.steps] == ["inference"] and not turn.output_message.tool_calls


def test_an_unknown_tool_choice_is_400_naming_the_field(ls: LlamaStackClient) -> None:
    agent_id = _agent(ls, tool_config={"tool_choice": "nope"})
    session_id = _session(ls, agent_id)
    resp = httpx.post(f"{ls.base_url}/v1/agents/{agent_id}/session/{session_id}/turn", json={"messages": HI})
    assert resp.status_code == 400 and "tool_config.tool_choice" in resp.json()["detail"]


# -- shields --------------------------------------------------------------------------------------


def test_an_input_shield_violation_ends_the_turn_with_the_shields_message(ls: LlamaStackClient) -> None:
    agent_id = _agent(ls, input_shields=["pii"])
    session_id = _session(ls, agent_id)
    mail = [{"role": "user", "content": "mail me at bob@example.com"}]
    turn = ls.agents.turn.create(session_id, agent_id=agent_id, messages=mail, stream=False)
    assert [s.step_type for s in turn.steps] == ["shield_call"]  # the model never saw it
    violation = turn.steps[0].violation
    assert violation.violation_level == "error" and violation.metadata["violation_type"]
    assert turn.output_message.content == violation.user_message and "personal data" in violation.user_message
    clean = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    assert [s.step_type for s in clean.steps] == ["shield_call", "inference"] and clean.steps[
        0
    ].violation is None


def test_an_output_shield_judges_the_answer(ls: LlamaStackClient) -> None:
    # The echo model answers with the request it got, so the answer carries the user's email.
    agent_id = _agent(ls, model="fake/echo", output_shields=["pii"])
    mail = [{"role": "user", "content": "write to bob@example.com"}]
    events = list(
        ls.agents.turn.create(_session(ls, agent_id), agent_id=agent_id, messages=mail, stream=True)
    )
    starts = [e.event.payload for e in events if e.event.payload.event_type == "step_start"]
    assert [(s.step_type, s.metadata) for s in starts][-1] == ("shield_call", {"touchpoint": "llm-output"})
    turn = events[-1].event.payload.turn
    assert [s.step_type for s in turn.steps] == ["inference", "shield_call"]
    assert turn.steps[1].violation and turn.output_message.content == turn.steps[1].violation.user_message


# -- RAG and documents --------------------------------------------------------------------------------


def test_builtin_rag_searches_the_vector_dbs_bound_in_the_agents_args(ls: LlamaStackClient) -> None:
    vdb = f"kb-{uuid.uuid4().hex[:8]}"
    ls.vector_dbs.register(
        vector_db_id=vdb, embedding_model="fake/embed", embedding_dimension=4, provider_id="faiss"
    )
    ls.tool_runtime.rag_tool.insert(
        documents=[{"document_id": "d1", "content": "The Eiffel tower is 330 metres tall.", "metadata": {}}],
        vector_db_id=vdb,
        chunk_size_in_tokens=64,
    )
    agent_id = _agent(
        ls,
        toolgroups=[{"name": "builtin::rag", "args": {"vector_db_ids": [vdb]}}],
        tool_config={"tool_choice": "knowledge_search"},
    )
    turn = ls.agents.turn.create(_session(ls, agent_id), agent_id=agent_id, messages=HI, stream=False)
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    step = turn.steps[1]
    assert step.tool_calls[0].tool_name == "knowledge_search" and step.tool_calls[0].arguments == {
        "query": "Paris"
    }
    text = str(step.tool_responses[0].content)
    assert "330 metres" in text and "knowledge_search tool found" in text


def test_a_turns_tool_group_args_win_over_the_agents(ls: LlamaStackClient) -> None:
    dbs = []
    for text in ("Rome is in Italy.", "Oslo is in Norway."):
        vdb = f"kb-{uuid.uuid4().hex[:8]}"
        ls.vector_dbs.register(
            vector_db_id=vdb, embedding_model="fake/embed", embedding_dimension=4, provider_id="faiss"
        )
        ls.tool_runtime.rag_tool.insert(
            documents=[{"document_id": "d", "content": text, "metadata": {}}],
            vector_db_id=vdb,
            chunk_size_in_tokens=64,
        )
        dbs.append(vdb)
    agent_id = _agent(
        ls,
        toolgroups=[{"name": "builtin::rag", "args": {"vector_db_ids": [dbs[0]]}}],
        tool_config={"tool_choice": "required"},
    )
    session_id = _session(ls, agent_id)
    mine = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    assert "Rome" in str(mine.steps[1].tool_responses[0].content)
    theirs = ls.agents.turn.create(
        session_id,
        agent_id=agent_id,
        messages=HI,
        toolgroups=[{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [dbs[1]]}}],
        stream=False,
    )
    found = str(theirs.steps[1].tool_responses[0].content)
    assert "Oslo" in found and "Rome" not in found


def test_sampling_and_response_format_reach_the_model(ls: LlamaStackClient) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    agent_id = _agent(
        ls,
        model="fake/echo",
        sampling_params={
            "strategy": {"type": "top_p", "temperature": 0.5, "top_p": 0.8},
            "max_tokens": 7,
            "stop": ["X"],
        },
        response_format={"type": "json_schema", "json_schema": schema},
    )
    turn = ls.agents.turn.create(_session(ls, agent_id), agent_id=agent_id, messages=HI, stream=False)
    sent = json.loads(turn.output_message.content)  # what the upstream received
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"]) == (0.5, 0.8, 7, ["X"])
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    assert sent["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}


def test_a_turns_toolgroups_replace_the_agents(ls: LlamaStackClient) -> None:
    agent_id = _agent(ls, toolgroups=["builtin::rag"], tool_config={"tool_choice": "required"})
    session_id = _session(ls, agent_id)
    bad = httpx.post(
        f"{ls.base_url}/v1/agents/{agent_id}/session/{session_id}/turn",
        json={"messages": HI, "toolgroups": ["builtin::nope"]},
    )
    assert (
        bad.status_code == 400
        and "toolgroups[0]" in bad.json()["detail"]
        and "builtin::nope" in bad.json()["detail"]
    )


def test_documents_reach_the_model_with_the_last_user_message(ls: LlamaStackClient) -> None:
    agent_id = _agent(ls, model="fake/echo")
    docs = [{"content": "The vault code is 4711.", "mime_type": "text/plain"}]
    turn = ls.agents.turn.create(
        _session(ls, agent_id), agent_id=agent_id, messages=HI, documents=docs, stream=False
    )
    assert "The vault code is 4711." in turn.output_message.content
    url_doc = [{"content": {"uri": "http://127.0.0.1:1/x.txt"}, "mime_type": "text/plain"}]
    bad = httpx.post(
        f"{ls.base_url}/v1/agents/{agent_id}/session/{turn.session_id}/turn",
        json={"messages": HI, "documents": url_doc},
    )
    assert bad.status_code == 400 and "documents[0].content" in bad.json()["detail"]


def test_documents_are_recorded_as_a_memory_retrieval_step_before_the_inference(ls: LlamaStackClient) -> None:
    """The issue names memory_retrieval steps (llama-stack 0.2.12 never emits them): what a turn's
    documents inserted into the context is a step of its own, checked against the client's type."""
    agent_id = _agent(ls, model="fake/echo")
    session_id = _session(ls, agent_id)
    docs = [
        {"content": "The vault code is 4711.", "mime_type": "text/plain"},
        {"content": {"uri": "data:text/plain;base64,VGhlIGRvb3IgaXMgcmVkLg=="}, "mime_type": "text/plain"},
    ]
    chunks = list(
        ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, documents=docs, stream=True)
    )
    events = [c.event.payload for c in chunks]
    assert [(e.event_type, getattr(e, "step_type", None)) for e in events[:4]] == [
        ("turn_start", None),
        ("step_start", "memory_retrieval"),
        ("step_complete", "memory_retrieval"),
        ("step_start", "inference"),
    ]
    step = events[2].step_details
    assert isinstance(step, MemoryRetrievalStep)
    assert step.inserted_context == "The vault code is 4711.\nThe door is red."
    assert step.vector_db_ids == "" and step.started_at <= step.completed_at
    turn = events[-1].turn
    assert [s.step_type for s in turn.steps] == ["memory_retrieval", "inference"]
    assert turn.steps[1].started_at >= step.completed_at
    sent = json.loads(turn.output_message.content)["messages"]  # echo: exactly that was inserted
    assert sent[-1]["content"] == "hello\n" + step.inserted_context
    got = ls.agents.steps.retrieve(
        step.step_id, agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id
    )
    assert isinstance(got.step, MemoryRetrievalStep) and got.step.inserted_context == step.inserted_context
    plain = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    assert [s.step_type for s in plain.steps] == ["inference"]  # no documents, no retrieval step


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_ids_are_404_naming_them(ls: LlamaStackClient) -> None:
    with pytest.raises(NotFoundError, match="no-agent"):
        ls.agents.session.create("no-agent", session_name="x")
    agent_id = _agent(ls)
    with pytest.raises(NotFoundError, match="no-session"):
        ls.agents.session.retrieve("no-session", agent_id=agent_id)
    session_id = _session(ls, agent_id)
    with pytest.raises(NotFoundError, match="no-turn"):
        ls.agents.turn.retrieve("no-turn", agent_id=agent_id, session_id=session_id)
    turn = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    with pytest.raises(NotFoundError, match="no-step"):
        ls.agents.steps.retrieve("no-step", agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id)
    ls.agents.session.delete(session_id, agent_id=agent_id)
    with pytest.raises(NotFoundError, match=session_id):
        ls.agents.turn.retrieve(turn.turn_id, agent_id=agent_id, session_id=session_id)
    ls.agents.delete(agent_id)
    gone = httpx.get(f"{ls.base_url}/v1/agents/{agent_id}")
    assert gone.status_code == 404 and agent_id in gone.json()["detail"]


def test_an_unknown_model_or_shield_fails_the_turn_request_before_a_turn_is_stored(
    ls: LlamaStackClient,
) -> None:
    for config, status, words in [
        ({"model": "no-such-model"}, 404, ["agent_config.model", "no-such-model", "fake/ok"]),
        ({"input_shields": ["no-shield"]}, 404, ["agent_config.input_shields", "no-shield"]),
    ]:
        agent_id = _agent(ls, **config)
        session_id = _session(ls, agent_id)
        for stream in (False, True):
            resp = httpx.post(
                f"{ls.base_url}/v1/agents/{agent_id}/session/{session_id}/turn",
                json={"messages": HI, "stream": stream},
            )
            assert resp.status_code == status, resp.text
            assert all(w in resp.json()["detail"] for w in words), resp.json()["detail"]
        assert ls.agents.session.retrieve(session_id, agent_id=agent_id).turns == []


def test_bad_agent_config_is_400_naming_the_field(ls: LlamaStackClient) -> None:
    resp = httpx.post(
        f"{ls.base_url}/v1/agents",
        json={"agent_config": {"model": MODEL, "instructions": "x", "max_infer_iters": 0}},
    )
    assert resp.status_code == 400 and "max_infer_iters" in resp.json()["detail"]


def test_an_upstream_failure_mid_turn_ends_the_stream_and_records_the_turn_failed(
    ls: LlamaStackClient,
) -> None:
    agent_id = ls.agents.create(agent_config={"model": "fake/error500", "instructions": "x"}).agent_id
    session_id = _session(ls, agent_id)
    with httpx.stream(
        "POST",
        f"{ls.base_url}/v1/agents/{agent_id}/session/{session_id}/turn",
        json={"messages": HI, "stream": True},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert "turn_start" in lines[0] and '"error"' in lines[-1] and "fake" in lines[-1]
    turn = ls.agents.session.retrieve(session_id, agent_id=agent_id).turns[0]
    assert turn.output_message.content.startswith("turn failed:") and "fake" in turn.output_message.content
    plain = httpx.post(
        f"{ls.base_url}/v1/agents/{agent_id}/session/{session_id}/turn", json={"messages": HI}, timeout=30
    )
    assert plain.status_code == 502 and "fake" in plain.json()["detail"]
    ok = _agent(ls)
    assert ls.agents.turn.create(
        _session(ls, ok), agent_id=ok, messages=HI, stream=False
    ).output_message.content


def test_the_model_calls_of_turns_and_responses_are_not_listed_as_chat_completions(
    ls: LlamaStackClient,
) -> None:
    """A turn or a response is stored whole; its model calls are not the caller's chat completions."""
    marker = f"marker-{uuid.uuid4().hex}"
    agent_id = _agent(ls)
    session_id = _session(ls, agent_id)
    ls.agents.turn.create(
        session_id, agent_id=agent_id, messages=[{"role": "user", "content": marker}], stream=False
    )
    base = f"{ls.base_url}/v1/openai/v1"
    made = httpx.post(f"{base}/responses", json={"model": MODEL, "input": marker}, timeout=60)
    assert made.status_code == 200, made.text
    # A chat completion of the caller's own, stored after the turn's and the response's model calls
    # (one writer, in order): once it is listed, anything stored before it is listed too.
    own = httpx.post(
        f"{base}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": f"own {marker}"}]},
        timeout=60,
    ).json()["id"]
    listed: list[dict] = []
    for _ in range(100):
        listed = httpx.get(f"{base}/chat/completions", params={"limit": 100}, timeout=10).json()["data"]
        if own in [c["id"] for c in listed]:
            break
        time.sleep(0.05)
    assert own in [c["id"] for c in listed]
    inputs = [json.dumps(c["input_messages"]) for c in listed if c["id"] != own]
    assert not [i for i in inputs if marker in i]
