"""The engine on its own: the events a facade gets, and the usage summed over a run's model calls.

The engine runs in the test process and reaches a real ``lamina run`` (fake upstream, rag-runtime
over faiss) through two thin HTTP adapters with the router methods it calls
(``openai_chat_completion`` streamed, ``invoke_tool``): the server's routers do the work. The fake
upstream reports usage for every streamed call (a tool call's stream: 3 completion tokens; a text
answer of 8 chunks: 8), so the sums are known.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.tools import InvokeToolRequest, ToolInvocationResult
from lamina.testing.processes import ServerProcess, lamina_server
from lamina_agents import engine as E

pytestmark = pytest.mark.e2e


class HttpInference:
    """``InferenceRouter.openai_chat_completion`` over HTTP: the server's router answers."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def openai_chat_completion(self, request: OpenAIChatCompletionRequest) -> AsyncIterator[dict]:
        body = request.model_dump(exclude_none=True)

        async def chunks() -> AsyncIterator[dict]:
            async with httpx.AsyncClient(timeout=30) as client:
                async with client.stream("POST", f"{self.url}/v1/chat/completions", json=body) as resp:
                    assert resp.status_code == 200, await resp.aread()
                    async for line in resp.aiter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            yield json.loads(line[6:])

        return chunks()


class HttpToolRuntime:
    """``ToolRuntimeRouter.invoke_tool`` over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult:
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.post(f"{self.url}/v1/tool-runtime/invoke", json=request.model_dump())
        assert resp.status_code == 200, resp.text
        return ToolInvocationResult.model_validate(resp.json())


@pytest.fixture(scope="module")
def server(
    fake_upstream: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
    agents_run_config: Callable[..., dict],
) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("engine")
    with lamina_server(agents_run_config(fake_upstream, work / "agents.db"), work) as lamina:
        yield lamina


async def _run(engine: E.AgentEngine, request: E.EngineRequest) -> list[Any]:
    return [event async for event in engine.run(request)]


async def test_a_run_with_a_server_tool_yields_each_step_and_sums_the_usage(server: ServerProcess) -> None:
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    vdb = f"kb-{uuid.uuid4().hex[:8]}"
    ls.vector_dbs.register(
        vector_db_id=vdb, embedding_model="fake/embed", embedding_dimension=4, provider_id="faiss"
    )
    ls.tool_runtime.rag_tool.insert(
        documents=[{"document_id": "d", "content": "Paris is the capital of France.", "metadata": {}}],
        vector_db_id=vdb,
        chunk_size_in_tokens=64,
    )
    search = E.EngineTool(
        "knowledge_search",
        "Search",
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        bound_args={"vector_db_ids": [vdb]},
    )
    engine = E.AgentEngine(HttpInference(server.url), HttpToolRuntime(server.url))
    request = E.EngineRequest(
        model="fake/ok",
        messages=[{"role": "user", "content": "capital?"}],
        tools=[search],
        tool_choice="required",
    )
    events = await _run(engine, request)
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["StepStarted", "ToolCallDelta"]
    assert kinds[-1] == "Finished"
    steps = [(e.step_type) for e in events if isinstance(e, E.StepStarted)]
    assert steps == ["inference", "tool_execution", "inference"]  # required, then auto: no loop
    first = next(e for e in events if isinstance(e, E.InferenceFinished))
    assert [(c.name, c.parsed_arguments()) for c in first.tool_calls] == [
        ("knowledge_search", {"query": "Paris"})
    ]
    assert "".join(e.arguments for e in events if isinstance(e, E.ToolCallDelta)) == '{"query": "Paris"}'
    tool = next(e for e in events if isinstance(e, E.ToolFinished))
    assert tool.result.error is None and "capital of France" in str(tool.result.content)
    text = "".join(e.text for e in events if isinstance(e, E.TextDelta))
    done = events[-1]
    assert done.text == text and done.stop_reason == "end_of_turn" and done.iterations_done == 2
    assert [m["role"] for m in done.added] == ["assistant", "tool", "assistant"]
    assert done.usage == {"prompt_tokens": 10, "completion_tokens": 3 + 8, "total_tokens": 21}


async def test_a_client_tool_call_ends_the_run_awaiting_its_result(server: ServerProcess) -> None:
    weather = E.EngineTool(
        "get_weather", None, {"type": "object", "properties": {"city": {"type": "string"}}}, client=True
    )
    engine = E.AgentEngine(HttpInference(server.url))
    request = E.EngineRequest(
        model="fake/ok",
        messages=[{"role": "user", "content": "w?"}],
        tools=[weather],
        tool_choice="get_weather",
    )
    events = await _run(engine, request)
    awaiting = events[-1]
    assert isinstance(awaiting, E.AwaitingClientTools)
    assert [(c.name, c.parsed_arguments()) for c in awaiting.calls] == [("get_weather", {"city": "Paris"})]
    assert awaiting.iterations_done == 1 and awaiting.usage["completion_tokens"] == 3
    assert awaiting.added[0]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_a_facade_can_run_its_own_tool_in_the_same_loop(server: ServerProcess) -> None:
    """A tool with ``invoke`` (a Responses file_search, say) is run by it, with the bound args merged."""
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    vdb = f"kb-{uuid.uuid4().hex[:8]}"
    ls.vector_dbs.register(
        vector_db_id=vdb, embedding_model="fake/embed", embedding_dimension=4, provider_id="faiss"
    )
    ls.tool_runtime.rag_tool.insert(
        documents=[{"document_id": "d", "content": "Lyon is on the Rhone.", "metadata": {}}],
        vector_db_id=vdb,
        chunk_size_in_tokens=64,
    )
    seen: list[dict] = []

    async def file_search(kwargs: dict) -> ToolInvocationResult:
        seen.append(kwargs)
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.post(
                f"{server.url}/v1/vector-io/query",
                json={"vector_db_id": kwargs["store"], "query": kwargs["query"]},
            )
        chunks = resp.json()["chunks"]
        return ToolInvocationResult(content="\n".join(c["content"] for c in chunks))

    tool = E.EngineTool(
        "file_search",
        "Search files",
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        bound_args={"store": vdb},
        invoke=file_search,
    )
    engine = E.AgentEngine(HttpInference(server.url))  # no tool runtime: the tool runs itself
    request = E.EngineRequest(
        model="fake/ok", messages=[{"role": "user", "content": "?"}], tools=[tool], tool_choice="file_search"
    )
    events = await _run(engine, request)
    assert seen == [{"query": "Paris", "store": vdb}]
    done = next(e for e in events if isinstance(e, E.ToolFinished))
    assert done.result.error is None and "Lyon is on the Rhone." in done.result.content
    assert isinstance(events[-1], E.Finished)


async def test_max_infer_iters_ends_the_run_without_leaving_unanswered_calls(server: ServerProcess) -> None:
    """The calls of the last allowed model call are not run, and the transcript a next turn builds on has
    no tool call that no tool message answers (OpenAI-compatible upstreams refuse such a history)."""
    tool = E.EngineTool("get_weather", None, {"type": "object", "properties": {"city": {"type": "string"}}})
    engine = E.AgentEngine(HttpInference(server.url))
    request = E.EngineRequest(
        model="fake/ok",
        messages=[{"role": "user", "content": "w?"}],
        tools=[tool],
        tool_choice="required",
        max_infer_iters=1,
    )
    events = await _run(engine, request)
    assert [e.step_type for e in events if isinstance(e, E.StepStarted)] == ["inference"]
    done = events[-1]
    assert isinstance(done, E.Finished) and done.iterations_done == 1
    assert not any(m.get("tool_calls") for m in done.added)


async def test_whole_tool_calls_of_an_answer_cut_by_the_token_limit_are_run(server: ServerProcess) -> None:
    """A small model writes complete calls and runs on to max_tokens (finish_reason "length", which
    the fake's ``toolcap`` model reproduces): the calls are run, as Llama Stack does, instead of ending
    the turn out of tokens with the calls unanswered."""
    echo = E.EngineTool(
        "get_weather",
        None,
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        invoke=_sunny,
    )
    engine = E.AgentEngine(HttpInference(server.url))
    request = E.EngineRequest(
        model="fake/toolcap",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[echo],
        tool_choice="required",
    )
    events = await _run(engine, request)
    tool = next(e for e in events if isinstance(e, E.ToolFinished))
    assert tool.result.content == "sunny in Paris"
    steps = [e.step_type for e in events if isinstance(e, E.StepStarted)]
    assert steps == ["inference", "tool_execution", "inference"]
    assert events[-1].stop_reason == "end_of_turn"


async def _sunny(kwargs: dict[str, Any]) -> ToolInvocationResult:
    return ToolInvocationResult(content=f"sunny in {kwargs['city']}")
