"""The inline::rag-runtime provider in process, over a fake Vector IO router and a fake inference router."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lamina.apis.tools import InsertDocumentsRequest, RAGQueryConfig, RAGQueryRequest, ToolGroup
from lamina.apis.vector_io import Chunk, InsertChunksRequest, QueryChunksRequest, QueryChunksResponse
from lamina.errors import BadRequestError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_rag_runtime.config import RagToolRuntimeConfig
from lamina_rag_runtime.provider import RagToolRuntimeProvider


class FakeVectorIO:
    def __init__(self) -> None:
        self.inserts: list[InsertChunksRequest] = []
        self.queries: list[QueryChunksRequest] = []
        self.answers: dict[str, QueryChunksResponse] = {}

    async def insert_chunks(self, request: InsertChunksRequest) -> None:
        self.inserts.append(request)

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        self.queries.append(request)
        return self.answers.get(request.vector_db_id, QueryChunksResponse(chunks=[], scores=[]))


class FakeInference:
    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def chat_completion(self, request: Any) -> Any:
        self.prompts.append(request.messages[0].content)
        return SimpleNamespace(completion_message=SimpleNamespace(content="rewritten query"))


def chunk(doc: str, text: str, tokens: int) -> Chunk:
    return Chunk(
        content=text, metadata={"document_id": doc, "token_count": tokens, "metadata_token_count": 5}
    )


@pytest.fixture
def provider(tmp_path: Path) -> RagToolRuntimeProvider:
    context = ProviderContext(Api.tool_runtime, "rag", "inline::rag-runtime", tmp_path)
    return RagToolRuntimeProvider(
        RagToolRuntimeConfig(insert_batch_size=3), context, FakeVectorIO(), FakeInference()
    )


async def test_insert_chunks_with_a_quarter_overlap_in_batches(provider: RagToolRuntimeProvider) -> None:
    text = " ".join(["alpha"] * 40)
    await provider.insert(
        InsertDocumentsRequest(
            vector_db_id="db",
            chunk_size_in_tokens=8,
            documents=[{"document_id": "d1", "content": text, "metadata": {"k": "v"}}],
        )
    )
    chunks = [c for r in provider.vector_io.inserts for c in r.chunks]
    assert [len(r.chunks) for r in provider.vector_io.inserts] == [3, 3, 1], "insert_batch_size"
    assert {r.vector_db_id for r in provider.vector_io.inserts} == {"db"}
    assert [c.metadata["token_count"] for c in chunks] == [8, 8, 8, 8, 8, 8, 4], "windows step by 8 - 8 // 4"
    assert chunks[0].metadata["k"] == "v" and chunks[6].metadata["chunk_index"] == 6


async def test_insert_refuses_empty_documents_and_bad_overlap(provider: RagToolRuntimeProvider) -> None:
    with pytest.raises(BadRequestError, match=r"documents\[1\]\.content: document 'blank' has no text"):
        await provider.insert(
            InsertDocumentsRequest(
                vector_db_id="db",
                documents=[
                    {"document_id": "ok", "content": "text"},
                    {"document_id": "blank", "content": " "},
                ],
            )
        )
    assert provider.vector_io.inserts == [], "nothing is inserted when a document fails"
    with pytest.raises(BadRequestError, match="chunk_overlap_in_tokens"):
        await provider.insert(
            InsertDocumentsRequest(
                vector_db_id="db",
                chunk_size_in_tokens=4,
                chunk_overlap_in_tokens=4,
                documents=[{"document_id": "d", "content": "x"}],
            )
        )


async def test_query_merges_vector_dbs_by_score_within_the_budget(provider: RagToolRuntimeProvider) -> None:
    vio = provider.vector_io
    vio.answers["a"] = QueryChunksResponse(
        chunks=[chunk("d1", "one", 10), chunk("d2", "two", 10)], scores=[0.9, 0.5]
    )
    vio.answers["b"] = QueryChunksResponse(chunks=[chunk("d3", "three", 10)], scores=[0.7])
    config = RAGQueryConfig(
        max_chunks=3, max_tokens_in_context=30, mode="hybrid", ranker={"type": "weighted"}
    )
    result = await provider.query(RAGQueryRequest(content="q", vector_db_ids=["a", "b"], query_config=config))
    assert [q.params for q in vio.queries] == [
        {
            "max_chunks": 3,
            "score_threshold": 0.0,
            "mode": "hybrid",
            "ranker": {"type": "weighted", "alpha": 0.5},
        }
    ] * 2
    texts = [item.text for item in result.content]
    assert texts[0] == "knowledge_search tool found 3 chunks:\nBEGIN of knowledge_search tool results.\n"
    assert texts[1] == "Result 1\nContent: one\nMetadata: {'document_id': 'd1'}\n"
    assert texts[2] == "Result 2\nContent: three\nMetadata: {'document_id': 'd3'}\n"
    assert texts[3] == "END of knowledge_search tool results.\n", (
        "the third chunk is over the 30 token budget"
    )
    assert result.metadata == {"document_ids": ["d1", "d3"], "chunks": ["one", "three"], "scores": [0.9, 0.7]}


async def test_no_results_is_no_content(provider: RagToolRuntimeProvider) -> None:
    result = await provider.query(RAGQueryRequest(content="q", vector_db_ids=["empty"]))
    assert result.content is None and result.metadata == {}


async def test_default_and_llm_query_generators(provider: RagToolRuntimeProvider) -> None:
    content = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    config = RAGQueryConfig(query_generator_config={"type": "default", "separator": " | "})
    await provider.query(RAGQueryRequest(content=content, vector_db_ids=["a"], query_config=config))
    assert provider.vector_io.queries[-1].query == "first | second"
    llm = RAGQueryConfig(
        query_generator_config={
            "type": "llm",
            "model": "m",
            "template": "Rewrite: {{ messages | join(', ') }}",
        }
    )
    await provider.query(RAGQueryRequest(content=content, vector_db_ids=["a"], query_config=llm))
    assert provider.inference.prompts == ["Rewrite: first, second"]
    assert provider.vector_io.queries[-1].query == "rewritten query"
    unsafe = RAGQueryConfig(
        query_generator_config={
            "type": "llm",
            "model": "m",
            "template": "{{ messages.__class__.__mro__[1].__subclasses__() }}",
        }
    )
    with pytest.raises(BadRequestError, match=r"query_generator_config\.template"):
        await provider.query(RAGQueryRequest(content="x", vector_db_ids=["a"], query_config=unsafe))


async def test_knowledge_search_takes_vector_dbs_from_kwargs_or_the_group(
    provider: RagToolRuntimeProvider,
) -> None:
    group = ToolGroup(identifier="g", provider_id="rag", args={"vector_db_ids": ["from-args"]})
    await provider.invoke_tool(group, "knowledge_search", {"query": "q"})
    assert provider.vector_io.queries[-1].vector_db_id == "from-args"
    await provider.invoke_tool(group, "knowledge_search", {"query": "q", "vector_db_ids": "from-kwargs"})
    assert provider.vector_io.queries[-1].vector_db_id == "from-kwargs"
    with pytest.raises(BadRequestError, match=r"kwargs\.query_config: .*max_chunks"):
        await provider.invoke_tool(
            group, "knowledge_search", {"query": "q", "query_config": {"max_chunks": 0}}
        )
    with pytest.raises(BadRequestError, match="not MCP endpoints"):
        await provider.register_toolgroup(
            ToolGroup(identifier="m", provider_id="rag", mcp_endpoint={"uri": "x"})
        )
    with pytest.raises(BadRequestError, match=r"args\.vector_db_ids: expected a list"):
        await provider.register_toolgroup(
            ToolGroup(identifier="m", provider_id="rag", args={"vector_db_ids": 3})
        )
