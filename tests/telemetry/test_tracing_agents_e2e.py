"""The span trees of an agent turn with a tool call and of RAG queries, from a real ``lamina run`` driven by
llama-stack-client 0.2.12, exported over OTLP/HTTP to the test's receiver.

The model is the fake upstream's ``tools3`` (lamina.testing.fake_openai: it calls the offered tools in
turn, three calls, then answers) and ``embed`` (4-dimensional embeddings): a real model cannot be made
to call a tool on demand. The tool is a real MCP server (plugins/mcp/tests/mcp_test_server.py), which
records the ``traceparent`` headers it receives; the vector store is faiss, in process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.otlp_receiver import OtlpReceiver, ReceivedSpan
from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

MCP_TESTS = Path(__file__).resolve().parents[2] / "plugins" / "mcp" / "tests"


def traceparent(trace_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{'e' * 16}-01"}


def run_config(fake: ServerProcess, mcp_url: str, traces_endpoint: str) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "tracing-agents",
        "apis": ["inference", "vector_io", "tool_runtime", "agents", "telemetry"],
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss", "config": {}}],
            "tool_runtime": [
                {"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime", "config": {}},
                {"provider_id": "mcp", "provider_type": "remote::model-context-protocol", "config": {}},
            ],
            "agents": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": {}}
            ],
            "telemetry": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "sinks": ["otel_trace"],
                        "otel_trace_endpoint": traces_endpoint,
                        "capture_content": True,
                    },
                }
            ],
        },
        "models": [
            {
                "model_id": "fake/tools3",
                "provider_id": "fake",
                "provider_model_id": "tools3",
                "model_type": "llm",
            },
            {
                "model_id": "embed",
                "provider_id": "fake",
                "provider_model_id": "embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
        "tool_groups": [
            {"toolgroup_id": "mcp::t", "provider_id": "mcp", "mcp_endpoint": {"uri": mcp_url}},
            {"toolgroup_id": "builtin::rag", "provider_id": "rag-runtime"},
        ],
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MCP_TESTS), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "mcp_test_server", "--port", str(port), "--transport", "streamable_http"]
    log = tmp_path_factory.mktemp("mcp") / "mcp.log"
    with ServerProcess(argv, port, log_path=log, env=env, ready_path="/health") as server:
        yield server


@pytest.fixture(scope="module")
def server(
    fake_upstream: ServerProcess,
    mcp: ServerProcess,
    receiver: OtlpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    config = run_config(fake_upstream, f"{mcp.url}/mcp", receiver.traces_endpoint)
    with lamina_server(config, tmp_path_factory.mktemp("tracing-agents")) as lamina:
        yield lamina


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def tree(receiver: OtlpReceiver, trace_id: str, *names: str) -> list[ReceivedSpan]:
    """The trace's spans once every name in ``names`` (a prefix each) has arrived."""

    def arrived() -> list[ReceivedSpan] | None:
        spans = receiver.trace(trace_id)
        return spans if all(any(s.name.startswith(n) for s in spans) for n in names) else None

    return receiver.wait_for(arrived, what=f"spans {names} of trace {trace_id}")


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent(spans: list[ReceivedSpan], span: ReceivedSpan) -> ReceivedSpan:
    return next(s for s in spans if s.span_id == span.parent_span_id)


def test_an_agent_turn_with_a_tool_call(
    client: LlamaStackClient, receiver: OtlpReceiver, mcp: ServerProcess
) -> None:
    agent_id = client.agents.create(
        agent_config={
            "model": "fake/tools3",
            "instructions": "be brief",
            "toolgroups": ["mcp::t"],
            "name": "helper",
        }
    ).agent_id
    session_id = client.agents.session.create(agent_id, session_name="s").session_id
    trace_id = "1a" * 16
    turn = client.agents.turn.create(
        agent_id=agent_id,
        session_id=session_id,
        messages=[{"role": "user", "content": "add one and one"}],
        stream=False,
        extra_headers=traceparent(trace_id),
    )
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution"] * 3 + ["inference"]

    spans = tree(receiver, trace_id, "POST /v1/agents/", "invoke_agent helper", "execute_tool add")
    http = next(s for s in spans if s.kind == "SERVER")
    assert http.attributes["http.route"] == "/v1/agents/{agent_id}/session/{session_id}/turn"
    assert (http.attributes["lamina.api"], http.attributes["lamina.method"]) == (
        "agents",
        "create_agent_turn",
    )
    assert http.attributes["lamina.resource.id"] == agent_id
    provider = one(spans, "agents.create_agent_turn")
    turn_span = one(spans, "invoke_agent helper")
    assert parent(spans, provider) is http
    assert parent(spans, turn_span) is provider
    attrs = turn_span.attributes
    assert attrs["session_id"] == session_id and attrs["gen_ai.conversation.id"] == session_id
    assert attrs["gen_ai.agent.id"] == agent_id and attrs["lamina.turn.id"] == turn.turn_id
    assert "add one and one" in attrs["input"] and attrs["output"] == turn.output_message.content
    # Only the turn span carries session_id (Llama Stack's clients find the turn by it).
    assert [s.name for s in spans if "session_id" in s.attributes] == ["invoke_agent helper"]

    steps = sorted((s for s in spans if s.name.startswith("agent_step ")), key=lambda s: s.start_ns)
    kinds = [s.name.removeprefix("agent_step ") for s in steps]
    assert kinds == [step.step_type for step in turn.steps]
    assert all(parent(spans, s) is turn_span for s in steps)
    assert [s.attributes["lamina.step.id"] for s in steps] == [step.step_id for step in turn.steps]
    chats = [s for s in spans if s.name == "chat fake/tools3"]
    inference_steps = [s.span_id for s in steps if s.name == "agent_step inference"]
    assert sorted(parent(spans, c).span_id for c in chats) == sorted(inference_steps)
    assert all(c.attributes["lamina.stream"] is True for c in chats)
    tool = one(spans, "execute_tool add")
    assert parent(spans, tool) is steps[1]
    assert tool.attributes["lamina.tool_group.id"] == "mcp::t"
    assert tool.attributes["lamina.provider.type"] == "remote::model-context-protocol"
    assert steps[1].attributes["gen_ai.tool.name"] == "add" and tool.status != "ERROR"
    # The MCP server got the caller's trace, from the tool call's span.
    seen = httpx.get(f"{mcp.url}/traceparents").json()
    assert f"00-{trace_id}-{tool.span_id}-01" in seen


def test_rag_queries(client: LlamaStackClient, receiver: OtlpReceiver) -> None:
    client.vector_dbs.register(
        vector_db_id="docs", embedding_model="embed", embedding_dimension=4, provider_id="faiss"
    )
    client.tool_runtime.rag_tool.insert(
        documents=[
            {"document_id": "d1", "content": "Lamina traces every request.", "metadata": {}},
            {"document_id": "d2", "content": "Spans go to a collector over OTLP.", "metadata": {}},
        ],
        vector_db_id="docs",
        chunk_size_in_tokens=64,
    )
    trace_id = "2b" * 16
    result = client.tool_runtime.rag_tool.query(
        content="what is traced?", vector_db_ids=["docs"], extra_headers=traceparent(trace_id)
    )
    assert result.content

    spans = tree(
        receiver, trace_id, "POST /v1/tool-runtime/rag-tool/query", "query_chunks docs", "embeddings embed"
    )
    http = one(spans, "POST /v1/tool-runtime/rag-tool/query")
    assert (http.attributes["lamina.api"], http.attributes["lamina.method"]) == ("tool_runtime", "query")
    provider = one(spans, "tool_runtime.query")
    assert parent(spans, provider) is http
    assert provider.attributes["lamina.provider.type"] == "inline::rag-runtime"
    query = one(spans, "query_chunks docs")
    assert query.attributes["lamina.vector_db.id"] == "docs" and query.attributes["lamina.vector.k"] >= 1
    assert query.attributes["lamina.vector.hits"] >= 1
    assert query.attributes["lamina.provider.type"] == "inline::faiss"
    embed = one(spans, "embeddings embed")
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"
    # Both inside the RAG provider's call.
    ancestors = {provider.span_id}
    for span in (query, embed):
        chain, current = [], span
        while current.parent_span_id and current.parent_span_id not in ancestors:
            current = parent(spans, current)
            chain.append(current.name)
        assert current.parent_span_id in ancestors, (span.name, chain)

    trace_id = "3c" * 16
    chunks = client.vector_io.query(
        vector_db_id="docs", query="collector", extra_headers=traceparent(trace_id)
    )
    assert chunks.chunks
    spans = tree(receiver, trace_id, "POST /v1/vector-io/query", "query_chunks docs")
    http = one(spans, "POST /v1/vector-io/query")
    assert http.attributes["lamina.resource.id"] == "docs" and http.attributes["lamina.api"] == "vector_io"
    assert one(spans, "query_chunks docs").attributes["lamina.vector.hits"] == len(chunks.chunks)


def test_a_streamed_agent_turn_has_the_same_tree(client: LlamaStackClient, receiver: OtlpReceiver) -> None:
    agent_id = client.agents.create(
        agent_config={
            "model": "fake/tools3",
            "instructions": "be brief",
            "toolgroups": ["mcp::t"],
            "name": "streamer",
        }
    ).agent_id
    session_id = client.agents.session.create(agent_id, session_name="s").session_id
    trace_id = "4d" * 16
    chunks = list(
        client.agents.turn.create(
            agent_id=agent_id,
            session_id=session_id,
            messages=[{"role": "user", "content": "go"}],
            stream=True,
            extra_headers=traceparent(trace_id),
        )
    )
    assert chunks[-1].event.payload.event_type == "turn_complete"
    spans = tree(receiver, trace_id, "invoke_agent streamer", "execute_tool describe")
    http = next(s for s in spans if s.kind == "SERVER")
    turn_span = one(spans, "invoke_agent streamer")
    assert parent(spans, parent(spans, turn_span)) is http
    assert turn_span.attributes["session_id"] == session_id
    steps = [s for s in spans if s.name.startswith("agent_step ")]
    assert len(steps) == 7 and all(parent(spans, s) is turn_span for s in steps)
    for name in ("execute_tool add", "execute_tool echo", "execute_tool describe"):
        assert parent(spans, one(spans, name)).name == "agent_step tool_execution"
    # Every span of the turn ended within the request's span.
    assert all(s.end_ns <= http.end_ns for s in spans if s is not http)
