"""The Agents API's models against llama-stack-client 0.2.12's own types and routes.

The client parses what the server sends with its generated pydantic models: every turn, step and
stream event Lamina can send must validate there, with the fields the client reads intact. What the
client sends (its TypedDict params, and the agent configs of Llama Stack's own integration tests) must
validate here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import llama_stack_client
import pytest
from llama_stack_client.types.agents import AgentTurnResponseStreamChunk as ClientChunk
from llama_stack_client.types.agents import Session as ClientSession
from llama_stack_client.types.agents import Turn as ClientTurn
from pydantic import ValidationError

from lamina.apis.agents import (
    Agent,
    AgentConfig,
    Agents,
    AgentTurnCreateRequest,
    AgentTurnResponseEvent,
    AgentTurnResponseStepCompletePayload,
    AgentTurnResponseStepProgressPayload,
    AgentTurnResponseStepStartPayload,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnAwaitingInputPayload,
    AgentTurnResponseTurnCompletePayload,
    AgentTurnResponseTurnStartPayload,
    AgentTurnResumeRequest,
    InferenceStep,
    MemoryRetrievalStep,
    Session,
    ShieldCallStep,
    ToolExecutionStep,
    ToolResponse,
    Turn,
)
from lamina.apis.inference import CompletionMessage, TextDelta, ToolCall, ToolCallDelta, UserMessage
from lamina.apis.safety import SafetyViolation
from lamina.apis.webmethod import routes_of

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
CALL = ToolCall(call_id="c1", tool_name="get_boiling_point", arguments={"liquid_name": "polyjuice"})


def _turn(**overrides) -> Turn:
    steps = [
        ShieldCallStep(turn_id="t1", step_id="s0", violation=None, started_at=NOW, completed_at=NOW),
        MemoryRetrievalStep(
            turn_id="t1", step_id="s1", vector_db_ids="docs", inserted_context="Polyjuice boils at -100."
        ),
        InferenceStep(
            turn_id="t1",
            step_id="s2",
            model_response=CompletionMessage(content="", stop_reason="end_of_turn", tool_calls=[CALL]),
        ),
        ToolExecutionStep(
            turn_id="t1",
            step_id="s3",
            tool_calls=[CALL],
            tool_responses=[ToolResponse(call_id="c1", tool_name="get_boiling_point", content="-100")],
        ),
        ShieldCallStep(
            turn_id="t1",
            step_id="s4",
            violation=SafetyViolation(violation_level="error", user_message="Sorry.", metadata={"x": 1}),
        ),
    ]
    fields = {
        "turn_id": "t1",
        "session_id": "sess",
        "input_messages": [UserMessage(content="What is the boiling point of polyjuice?")],
        "steps": steps,
        "output_message": CompletionMessage(content="-100 degrees Celsius.", stop_reason="end_of_turn"),
        "started_at": NOW,
        "completed_at": NOW,
    }
    return Turn(**{**fields, **overrides})


def test_a_turn_with_every_step_type_reads_in_the_client() -> None:
    turn = _turn()
    client = ClientTurn.model_validate(turn.model_dump(mode="json"))
    assert [s.step_type for s in client.steps] == [
        "shield_call",
        "memory_retrieval",
        "inference",
        "tool_execution",
        "shield_call",
    ]
    assert client.steps[2].api_model_response.tool_calls[0].tool_name == "get_boiling_point"  # its alias
    assert client.steps[3].tool_responses[0].content == "-100"
    assert client.steps[4].violation.user_message == "Sorry."
    assert client.output_message.content == "-100 degrees Celsius." and client.started_at == NOW
    session = Session(session_id="sess", session_name="s", turns=[turn], started_at=NOW)
    assert ClientSession.model_validate(session.model_dump(mode="json")).turns[0].turn_id == "t1"


@pytest.mark.parametrize(
    ("payload", "event_type"),
    [
        (AgentTurnResponseTurnStartPayload(turn_id="t1"), "turn_start"),
        (AgentTurnResponseStepStartPayload(step_type="inference", step_id="s2"), "step_start"),
        (
            AgentTurnResponseStepProgressPayload(
                step_type="inference", step_id="s2", delta=TextDelta(text="-10")
            ),
            "step_progress",
        ),
        (
            AgentTurnResponseStepProgressPayload(
                step_type="inference",
                step_id="s2",
                delta=ToolCallDelta(tool_call=CALL, parse_status="succeeded"),
            ),
            "step_progress",
        ),
        (
            AgentTurnResponseStepCompletePayload(
                step_type="tool_execution", step_id="s3", step_details=_turn().steps[3]
            ),
            "step_complete",
        ),
        (AgentTurnResponseTurnCompletePayload(turn=_turn()), "turn_complete"),
        (AgentTurnResponseTurnAwaitingInputPayload(turn=_turn()), "turn_awaiting_input"),
    ],
)
def test_every_stream_event_reads_in_the_client(payload, event_type: str) -> None:
    chunk = AgentTurnResponseStreamChunk(event=AgentTurnResponseEvent(payload=payload))
    wire = chunk.model_dump(mode="json")
    client = ClientChunk.model_validate(wire)
    assert client.event.payload.event_type == event_type
    # and back: what the server sends parses into the server's own model (stream consumers, tests)
    assert AgentTurnResponseStreamChunk.model_validate(wire) == chunk
    if event_type == "step_progress" and payload.delta.type == "tool_call":
        assert client.event.payload.delta.tool_call.tool_name == "get_boiling_point"


def test_llama_stacks_own_test_agent_config_validates() -> None:
    """The agent_config fixture of Llama Stack's tests/integration/agents/test_agents.py, with the
    client's Agent helper's client_tools shape and an unknown key it sends (``tools``)."""
    config = AgentConfig.model_validate(
        {
            "model": "smollm2",
            "instructions": "You are a helpful assistant",
            "sampling_params": {"strategy": {"type": "top_p", "temperature": 0.0001, "top_p": 0.9}},
            "tools": [],
            "input_shields": ["llama-guard"],
            "output_shields": ["llama-guard"],
            "enable_session_persistence": False,
            "toolgroups": [
                "builtin::websearch",
                {"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": ["v"]}},
            ],
            "client_tools": [
                {
                    "name": "get_boiling_point",
                    "description": "Returns the boiling point of a liquid",
                    "parameters": [
                        {
                            "name": "liquid_name",
                            "parameter_type": "string",
                            "description": "The liquid",
                            "required": True,
                        },
                        {
                            "name": "celcius",
                            "parameter_type": "boolean",
                            "description": "Celsius?",
                            "required": False,
                            "default": True,
                        },
                    ],
                }
            ],
            "tool_choice": "required",
        }
    )
    assert config.tool_config is not None and config.tool_config.tool_choice == "required"
    assert config.max_infer_iters == 10 and config.toolgroups[1].args == {"vector_db_ids": ["v"]}
    agent = Agent(agent_id="a1", agent_config=config, created_at=NOW)
    assert (
        agent.model_dump(mode="json")["agent_config"]["client_tools"][0]["parameters"][1]["default"] is True
    )


def test_deprecated_tool_fields_that_disagree_with_tool_config_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"tool_choice and tool_config\.tool_choice disagree"):
        AgentConfig(model="m", instructions="i", tool_choice="none", tool_config={"tool_choice": "auto"})
    same = AgentConfig(model="m", instructions="i", tool_choice="auto", tool_config={"tool_choice": "auto"})
    assert same.tool_config.tool_choice == "auto"


def test_turn_and_resume_requests_need_something_to_do() -> None:
    with pytest.raises(ValidationError, match="messages"):
        AgentTurnCreateRequest(agent_id="a", session_id="s", messages=[])
    with pytest.raises(ValidationError, match="tool_responses"):
        AgentTurnResumeRequest(agent_id="a", session_id="s", turn_id="t", tool_responses=[])
    turn = AgentTurnCreateRequest.model_validate(
        {
            "agent_id": "a",
            "session_id": "s",
            "messages": [{"role": "tool", "call_id": "c1", "content": "-100"}],
        }
    )
    assert turn.toolgroups is None and turn.tool_config is None  # absent: the agent's own


def test_the_routes_are_the_clients() -> None:
    """Every agents path llama-stack-client 0.2.12 calls is a route of the Agents API (its paths read
    from the client's source, with its f-string placeholders)."""
    source = Path(llama_stack_client.__file__).parent / "resources" / "agents"
    client_paths = {
        m for f in source.glob("*.py") for m in re.findall(r'f?"(/v1/agents[^"]*)"', f.read_text())
    }
    ours = {route.path for route in routes_of(Agents)}
    assert client_paths and client_paths <= ours, client_paths - ours
    assert "/v1/agents/{agent_id}/sessions" in ours  # Llama Stack's server has it; the client does not
