"""An agent turn calls a tool of a real MCP server: llama-stack-client 0.2.12's ``Agent`` helper against
a real ``lamina run``, tool groups registered with ``mcp_endpoint``, both MCP transports.

The MCP servers are the mcp plugin's test server (``plugins/mcp/tests/mcp_test_server.py``: the mcp
package's MCPServer) on 127.0.0.1. The model is the fake upstream (``lamina.testing.fake_openai``):
no model here calls a tool on demand; with ``tool_choice`` required it calls the offered tool with
each required parameter set to "Paris", and ``echo`` answers with the request it received, so the
test sees the tool's result reach the next model call.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llama_stack_client import APIStatusError, LlamaStackClient
from llama_stack_client.lib.agents.agent import Agent

from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

TOKEN = "agent-s3cret"
MCP_TESTS = Path(__file__).parents[2] / "mcp" / "tests"


def _mcp_server(logs: Path, name: str, *args: str) -> ServerProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MCP_TESTS), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    argv = [sys.executable, "-m", "mcp_test_server", "--port", str(port), *args]
    return ServerProcess(argv, port, log_path=logs / f"{name}.log", env=env, ready_path="/health")


@pytest.fixture(scope="module")
def mcp_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("agent-mcp")
    started = {
        "streamable_http": _mcp_server(logs, "http", "--transport", "streamable_http"),
        "sse": _mcp_server(logs, "sse", "--transport", "sse"),
        "auth": _mcp_server(logs, "auth", "--transport", "streamable_http", "--token", TOKEN),
    }
    try:
        for server in started.values():
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def ls(
    fake_upstream: ServerProcess,
    mcp_servers: dict[str, ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
    agents_run_config: Callable[..., dict],
) -> Iterator[LlamaStackClient]:
    work = tmp_path_factory.mktemp("agents-mcp")
    config = agents_run_config(fake_upstream, work / "agents.db")
    config["providers"]["tool_runtime"].append(
        {
            "provider_id": "model-context-protocol",
            "provider_type": "remote::model-context-protocol",
            "config": {"timeout_seconds": 5, "tool_timeout_seconds": 5},
        }
    )
    with lamina_server(config, work) as lamina:
        client = LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=60)
        uris = {
            "mcp::http": mcp_servers["streamable_http"].url + "/mcp",
            "mcp::sse": mcp_servers["sse"].url + "/sse",
            "mcp::auth": mcp_servers["auth"].url + "/mcp",
        }
        for group, uri in uris.items():
            client.toolgroups.register(
                toolgroup_id=group, provider_id="model-context-protocol", mcp_endpoint={"uri": uri}
            )
        yield client


def _auth(uri: str) -> dict[str, str]:
    return {
        "X-LlamaStack-Provider-Data": json.dumps({"mcp_headers": {uri: {"Authorization": f"Bearer {TOKEN}"}}})
    }


def _echo_turn(agent: Agent, **kwargs: object) -> object:
    session_id = agent.create_session("mcp")
    return agent.create_turn(
        messages=[{"role": "user", "content": "Echo Paris"}], session_id=session_id, stream=False, **kwargs
    )


@pytest.mark.parametrize(("group", "transport"), [("mcp::http", "streamable_http"), ("mcp::sse", "sse")])
def test_an_agent_turn_calls_an_mcp_tool_and_the_model_gets_its_result(
    ls: LlamaStackClient, mcp_servers: dict[str, ServerProcess], group: str, transport: str
) -> None:
    agent = Agent(
        ls,
        model="fake/echo",
        instructions="Use the tools.",
        tools=[f"{group}/echo"],
        tool_config={"tool_choice": "required"},
    )
    turn = _echo_turn(agent)
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    tool_step = turn.steps[1]
    assert tool_step.tool_calls[0].tool_name == "echo" and tool_step.tool_calls[0].arguments == {
        "text": "Paris"
    }
    pid = mcp_servers[transport].pid
    result = tool_step.tool_responses[0].content
    text = result if isinstance(result, str) else "".join(c.text for c in result)
    assert text == f"Paris (pid {pid})"  # the server of this transport answered
    sent = json.loads(turn.output_message.content)["messages"]  # echo: what the second model call got
    assert sent[-1] == {"role": "tool", "tool_call_id": tool_step.tool_calls[0].call_id, "content": text}
    step = ls.agents.steps.retrieve(
        tool_step.step_id, agent_id=agent.agent_id, session_id=turn.session_id, turn_id=turn.turn_id
    )
    assert step.step.step_type == "tool_execution"


def test_an_mcp_server_that_refuses_the_caller_is_a_401_naming_the_group(
    ls: LlamaStackClient, mcp_servers: dict[str, ServerProcess]
) -> None:
    uri = mcp_servers["auth"].url + "/mcp"
    config = {"tools": ["mcp::auth/echo"], "tool_config": {"tool_choice": "required"}}
    with pytest.raises(APIStatusError) as refused:  # the helper lists the group's tools first
        Agent(ls, model="fake/echo", instructions="Use the tools.", **config)
    assert refused.value.status_code == 401 and "mcp::auth" in str(refused.value.body)
    agent_id = ls.agents.create(
        agent_config={"model": "fake/echo", "instructions": "x", "toolgroups": ["mcp::auth/echo"]}
    ).agent_id
    session_id = ls.agents.session.create(agent_id, session_name="s").session_id
    with pytest.raises(APIStatusError) as turn_refused:
        ls.agents.turn.create(
            session_id, agent_id=agent_id, messages=[{"role": "user", "content": "x"}], stream=True
        )
    body = json.dumps(turn_refused.value.body)
    assert turn_refused.value.status_code == 401 and "mcp::auth" in body and "mcp_headers" in body, body
    # with the caller's credentials the same turn runs end to end
    agent = Agent(ls, model="fake/echo", instructions="Use the tools.", extra_headers=_auth(uri), **config)
    turn = _echo_turn(agent)
    assert turn.steps[1].tool_responses[0].content[0].text == f"Paris (pid {mcp_servers['auth'].pid})"


def test_an_mcp_server_that_is_down_fails_the_turn_request_naming_the_group(ls: LlamaStackClient) -> None:
    uri = f"http://127.0.0.1:{free_port()}/mcp"
    ls.toolgroups.register(
        toolgroup_id="mcp::down", provider_id="model-context-protocol", mcp_endpoint={"uri": uri}
    )
    try:
        agent_id = ls.agents.create(
            agent_config={"model": "fake/ok", "instructions": "x", "toolgroups": ["mcp::down"]}
        ).agent_id
        session_id = ls.agents.session.create(agent_id, session_name="s").session_id
        with pytest.raises(APIStatusError) as failed:
            ls.agents.turn.create(
                session_id, agent_id=agent_id, messages=[{"role": "user", "content": "x"}], stream=False
            )
        body = json.dumps(failed.value.body)
        assert failed.value.status_code == 502 and "mcp::down" in body and uri in body, body
        assert ls.agents.session.retrieve(session_id, agent_id=agent_id).turns == []  # no turn left running
    finally:
        ls.toolgroups.unregister("mcp::down")
    # the server keeps serving agents
    agent = Agent(
        ls,
        model="fake/echo",
        instructions="x",
        tools=["mcp::http/echo"],
        tool_config={"tool_choice": "required"},
    )
    assert [s.step_type for s in _echo_turn(agent).steps] == ["inference", "tool_execution", "inference"]


def test_an_mcp_server_failing_a_call_mid_turn_gives_the_model_the_error_naming_the_group(
    ls: LlamaStackClient,
) -> None:
    """The server answers the call with a JSON-RPC error (``protocol_fail``): a 502 for the Tool
    Runtime API; in a turn the model gets it as the tool's result and the turn goes on."""
    agent = Agent(
        ls,
        model="fake/echo",
        instructions="Use the tools.",
        tools=["mcp::http/protocol_fail"],
        tool_config={"tool_choice": "required"},
    )
    session_id = agent.create_session("mcp-fail")
    turn = agent.create_turn(
        messages=[{"role": "user", "content": "Fail [[args:{}]]"}], session_id=session_id, stream=False
    )
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    result = turn.steps[1].tool_responses[0].content
    assert "mcp::http" in result and "internal failure on purpose" in result, result
    sent = json.loads(turn.output_message.content)["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == result
