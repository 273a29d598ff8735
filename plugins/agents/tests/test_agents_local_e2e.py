"""The local distribution serves agents offline: SmolLM2 calls a real tool in a turn.

``lamina run local`` (the ``local_lamina`` session fixture): the bundled SmolLM2-135M-Instruct on
llama.cpp, the bundled embedding model, faiss and the rag-runtime; no upstream, no network. The
model is forced (``tool_choice`` = the tool's name) to call ``knowledge_search``, which searches a
vector DB bound in the agent's tool group args; greedy sampling and max_tokens 128 (room for the
tool call: 48 cut it) keep it short.
"""

from __future__ import annotations

import pytest
from llama_stack_client import LlamaStackClient
from llama_stack_client.lib.agents.agent import Agent

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

MODEL = "SmolLM2-135M-Instruct"
HANG_BOUND = 600  # seconds: "does not hang" only (SmolLM2 on 2 busy cores)


def test_smollm2_calls_knowledge_search_in_an_agent_turn(local_lamina: ServerProcess) -> None:
    ls = LlamaStackClient(base_url=local_lamina.url, max_retries=0, timeout=HANG_BOUND)
    embed = next(m for m in ls.models.list() if m.model_type == "embedding")
    vdb = "agents-local-kb"
    ls.vector_dbs.register(
        vector_db_id=vdb,
        embedding_model=embed.identifier,
        embedding_dimension=int(embed.metadata["embedding_dimension"]),
    )
    ls.tool_runtime.rag_tool.insert(
        documents=[
            {"document_id": "eiffel", "content": "The Eiffel tower is 330 metres tall.", "metadata": {}}
        ],
        vector_db_id=vdb,
        chunk_size_in_tokens=64,
    )
    agent = Agent(
        ls,
        model=MODEL,
        instructions="Answer with the knowledge_search tool.",
        tools=[{"name": "builtin::rag", "args": {"vector_db_ids": [vdb]}}],
        tool_config={"tool_choice": "knowledge_search"},
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 128},
        max_infer_iters=2,
    )
    question = [{"role": "user", "content": "How tall is the Eiffel tower?"}]
    turn = agent.create_turn(messages=question, session_id=agent.create_session("local"), stream=False)
    kinds = [s.step_type for s in turn.steps]
    assert kinds[:2] == ["inference", "tool_execution"], (kinds, turn.steps[0].api_model_response)
    call = turn.steps[1].tool_calls[0]
    assert (
        call.tool_name == "knowledge_search" and isinstance(call.arguments, dict) and call.arguments["query"]
    )
    assert "330 metres" in str(turn.steps[1].tool_responses[0].content)
    assert len(kinds) == 3 and kinds[2] == "inference"  # the model answered from the result
