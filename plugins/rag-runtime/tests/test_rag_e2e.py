"""inline::rag-runtime through a real ``lamina run``, driven by llama-stack-client 0.2.12.

Vector IO is an inline provider (faiss, else sqlite-vec) and embeddings come from
inline::sentence-transformers (all-MiniLM-L6-v2, 384 dims): no other server is needed.
"""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from llama_stack_client import BadRequestError, LlamaStackClient, NotFoundError

from lamina.testing.pdfs import make_pdf
from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = pytest.mark.e2e

VECTOR_PROVIDER = next(
    (
        (module, provider_type)
        for module, provider_type in (
            ("lamina_faiss", "inline::faiss"),
            ("lamina_sqlite_vec", "inline::sqlite-vec"),
        )
        if importlib.util.find_spec(module) is not None
    ),
    None,
)
DB = "rag-docs"

MARKDOWN = """# Sea otters

Sea otters hold hands while they sleep so that they do not drift apart. A group of resting otters
is called a raft.

## Diet

They eat sea urchins, crabs and clams, and use stones as tools to crack the shells open.
"""
CSV = "planet,moons\nMars,2\nJupiter,95\n"
PDF_PAGES = [
    "Quarterly report\nThe bakery sold 1200 sourdough loaves in March.",
    "The new oven in Lyon halved baking time for croissants.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if VECTOR_PROVIDER is None:
        pytest.skip("no inline vector_io provider (lamina-faiss or lamina-sqlite-vec) is installed")
    work = tmp_path_factory.mktemp("rag-e2e")
    docs = work / "docs"
    docs.mkdir()
    (docs / "llamas.txt").write_text("Llamas hum when they are curious or worried.")
    run_config = {
        "version": 2,
        "image_name": "rag-e2e",
        "providers": {
            "inference": [
                {
                    "provider_id": "sentence-transformers",
                    "provider_type": "inline::sentence-transformers",
                    "config": {},
                }
            ],
            "vector_io": [{"provider_id": "vectors", "provider_type": VECTOR_PROVIDER[1], "config": {}}],
            "tool_runtime": [
                {
                    "provider_id": "rag-runtime",
                    "provider_type": "inline::rag-runtime",
                    "config": {"local_path_roots": [str(docs)]},
                }
            ],
        },
    }
    run_config["tool_groups"] = [
        {"toolgroup_id": "config-rag", "provider_id": "rag-runtime", "args": {"vector_db_ids": [DB]}}
    ]
    with lamina_server(run_config, work) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> LlamaStackClient:
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)
    client.vector_dbs.register(vector_db_id=DB, embedding_model="all-MiniLM-L6-v2")
    pdf_uri = "data:application/pdf;base64," + base64.b64encode(make_pdf(PDF_PAGES)).decode()
    client.tool_runtime.rag_tool.insert(
        vector_db_id=DB,
        chunk_size_in_tokens=64,
        documents=[
            {
                "document_id": "otters-md",
                "content": MARKDOWN,
                "mime_type": "text/markdown",
                "metadata": {"lang": "en"},
            },
            {"document_id": "planets-csv", "content": {"uri": "data:text/csv," + quote(CSV)}, "metadata": {}},
            {"document_id": "bakery-pdf", "content": {"uri": pdf_uri}, "metadata": {}},
        ],
    )
    return client


def _top(client: LlamaStackClient, question: str, **query_config) -> tuple[str, str]:
    kwargs = {"query_config": query_config} if query_config else {}
    result = client.tool_runtime.rag_tool.query(content=question, vector_db_ids=[DB], **kwargs)
    return result.metadata["document_ids"][0], result.metadata["chunks"][0]


def test_builtin_rag_is_registered_by_default(client: LlamaStackClient) -> None:
    groups = {g.identifier: g for g in client.toolgroups.list()}
    assert groups["builtin::rag"].provider_id == "rag-runtime"
    assert groups["builtin::rag"].type == "tool_group"
    assert client.toolgroups.get("builtin::rag").identifier == "builtin::rag"
    assert groups["config-rag"].args == {"vector_db_ids": [DB]}, "the run config's tool_groups"
    result = client.tool_runtime.invoke_tool(
        tool_name="config-rag/knowledge_search", kwargs={"query": "otters"}
    )
    assert result.metadata["document_ids"][0] == "otters-md"


def test_tools_list_knowledge_search_with_its_query_parameter(client: LlamaStackClient) -> None:
    tools = client.tools.list(toolgroup_id="builtin::rag")
    assert [t.identifier for t in tools] == ["knowledge_search"]
    tool = client.tools.get("knowledge_search")
    assert (tool.toolgroup_id, tool.provider_id, tool.type) == ("builtin::rag", "rag-runtime", "tool")
    [param] = tool.parameters
    assert (param.name, param.parameter_type, param.required) == ("query", "string", True)

    defs = client.tool_runtime.list_tools(tool_group_id="builtin::rag")
    assert [d.name for d in defs] == ["knowledge_search"]
    assert defs[0].parameters[0].name == "query" and defs[0].parameters[0].parameter_type == "string"
    assert "knowledge_search" in [d.name for d in client.tool_runtime.list_tools()]


@pytest.mark.parametrize(
    ("question", "document_id", "passage"),
    [
        ("Why do otters hold hands?", "otters-md", "hold hands while they sleep"),
        ("How many moons does Jupiter have?", "planets-csv", "planet: Jupiter; moons: 95"),
        ("How many sourdough loaves did the bakery sell?", "bakery-pdf", "1200 sourdough loaves"),
    ],
)
def test_query_finds_the_right_passage_of_each_format(
    client: LlamaStackClient, question: str, document_id: str, passage: str
) -> None:
    top_id, top_chunk = _top(client, question)
    assert top_id == document_id
    assert passage in top_chunk


def test_query_content_is_formatted_as_llama_stack_does(client: LlamaStackClient) -> None:
    result = client.tool_runtime.rag_tool.query(
        content="otters", vector_db_ids=[DB], query_config={"max_chunks": 2, "mode": "vector"}
    )
    texts = [item.text for item in result.content]
    assert texts[0] == "knowledge_search tool found 2 chunks:\nBEGIN of knowledge_search tool results.\n"
    assert texts[1].startswith("Result 1\nContent: ") and "\nMetadata: {" in texts[1]
    assert "'document_id': 'otters-md'" in texts[1] and "token_count" not in texts[1]
    assert texts[-2] == "END of knowledge_search tool results.\n"
    assert texts[-1].startswith(
        'The above results were retrieved to help answer the user\'s query: "otters".'
    )
    assert len(result.metadata["scores"]) == len(result.metadata["chunks"]) == 2
    assert result.metadata["scores"] == sorted(result.metadata["scores"], reverse=True)


def test_keyword_and_hybrid_modes(client: LlamaStackClient) -> None:
    assert _top(client, "croissants oven", mode="keyword")[0] == "bakery-pdf"
    assert _top(client, "croissants oven", mode="hybrid", ranker={"type": "rrf", "impact_factor": 60})[0] == (
        "bakery-pdf"
    )


def test_context_budget_and_custom_template(client: LlamaStackClient) -> None:
    result = client.tool_runtime.rag_tool.query(
        content="otters",
        vector_db_ids=[DB],
        query_config={
            "max_chunks": 5,
            "max_tokens_in_context": 1,
            "chunk_template": "{index}: {chunk.content}",
        },
    )
    assert [i.text for i in result.content][1] == "END of knowledge_search tool results.\n", "nothing fits"
    assert result.metadata["chunks"] == []
    result = client.tool_runtime.rag_tool.query(
        content="otters",
        vector_db_ids=[DB],
        query_config={"max_chunks": 1, "chunk_template": "#{index} {chunk.content}"},
    )
    assert result.content[1].text.startswith("#1 # Sea otters")


def test_invoke_knowledge_search(client: LlamaStackClient) -> None:
    result = client.tool_runtime.invoke_tool(
        tool_name="knowledge_search", kwargs={"query": "What do otters eat?", "vector_db_ids": [DB]}
    )
    assert result.error_message is None
    assert result.metadata["document_ids"][0] == "otters-md"
    assert "sea urchins" in result.metadata["chunks"][0]
    assert "BEGIN of knowledge_search tool results" in result.content[0].text


def test_a_tool_group_s_args_name_its_vector_dbs(client: LlamaStackClient) -> None:
    client.toolgroups.register(
        toolgroup_id="otter-facts", provider_id="rag-runtime", args={"vector_db_ids": [DB]}
    )
    try:
        assert client.toolgroups.get("otter-facts").args == {"vector_db_ids": [DB]}
        result = client.tool_runtime.invoke_tool(
            tool_name="otter-facts/knowledge_search", kwargs={"query": "sourdough loaves"}
        )
        assert result.metadata["document_ids"][0] == "bakery-pdf"
        with pytest.raises(BadRequestError, match=r"kwargs\.vector_db_ids: no vector DBs"):
            client.tool_runtime.invoke_tool(tool_name="knowledge_search", kwargs={"query": "x"})
    finally:
        client.toolgroups.unregister("otter-facts")
    with pytest.raises(NotFoundError, match="otter-facts"):
        client.toolgroups.get("otter-facts")


def test_local_files_inside_the_allowed_root(client: LlamaStackClient, server: ServerProcess) -> None:
    docs = Path(server.log_path).parent / "docs"
    client.tool_runtime.rag_tool.insert(
        chunk_size_in_tokens=512,
        vector_db_id=DB,
        documents=[
            {"document_id": "llamas", "content": {"uri": (docs / "llamas.txt").as_uri()}, "metadata": {}}
        ],
    )
    top_id, _ = _top(client, "When do llamas hum?")
    assert top_id == "llamas"
    result = client.tool_runtime.rag_tool.query(
        content="llamas hum", vector_db_ids=[DB], query_config={"max_chunks": 1}
    )
    assert "'filename': 'llamas.txt'" in result.content[1].text
    with pytest.raises(BadRequestError, match=r"documents\[0\]\.content: .* outside the directories"):
        client.tool_runtime.rag_tool.insert(
            chunk_size_in_tokens=512,
            vector_db_id=DB,
            documents=[{"document_id": "x", "content": {"uri": "/etc/hostname"}, "metadata": {}}],
        )


def test_unknown_tool_is_a_404_naming_it(client: LlamaStackClient) -> None:
    with pytest.raises(
        NotFoundError, match="tool 'web_search_pls' is not provided by any registered tool group"
    ):
        client.tool_runtime.invoke_tool(tool_name="web_search_pls", kwargs={})
    with pytest.raises(NotFoundError, match="web_search_pls"):
        client.tools.get("web_search_pls")
    with pytest.raises(NotFoundError, match="tool_group 'nope' is not registered"):
        client.toolgroups.get("nope")


def test_bad_input_is_a_400_naming_the_field(client: LlamaStackClient) -> None:
    with pytest.raises(BadRequestError, match=r"kwargs\.query: missing"):
        client.tool_runtime.invoke_tool(tool_name="knowledge_search", kwargs={"vector_db_ids": [DB]})
    with pytest.raises(BadRequestError, match=r"kwargs\.query: .* expects a string"):
        client.tool_runtime.invoke_tool(
            tool_name="knowledge_search", kwargs={"query": 3, "vector_db_ids": [DB]}
        )
    with pytest.raises(BadRequestError, match=r"kwargs\.vector_db_ids: expected a list"):
        client.tool_runtime.invoke_tool(
            tool_name="knowledge_search", kwargs={"query": "q", "vector_db_ids": [1]}
        )
    with pytest.raises(BadRequestError, match="chunk_size_in_tokens"):
        client.tool_runtime.rag_tool.insert(
            vector_db_id=DB,
            chunk_size_in_tokens=0,
            documents=[{"document_id": "d", "content": "x", "metadata": {}}],
        )
    with pytest.raises(BadRequestError, match=r"documents\[0\]\.content: cannot extract text from image/png"):
        client.tool_runtime.rag_tool.insert(
            chunk_size_in_tokens=512,
            vector_db_id=DB,
            documents=[
                {"document_id": "d", "content": {"uri": "data:image/png;base64,iVBORw0KGgo="}, "metadata": {}}
            ],
        )
    with pytest.raises(BadRequestError, match=r"query_config\.chunk_template.*\{index\}"):
        client.tool_runtime.rag_tool.query(
            content="q", vector_db_ids=[DB], query_config={"chunk_template": "{chunk.content}"}
        )
    with pytest.raises(BadRequestError, match=r"query_config\.chunk_template"):
        client.tool_runtime.rag_tool.query(
            content="q",
            vector_db_ids=[DB],
            query_config={"chunk_template": "{index}{chunk.content}{chunk.__class__}"},
        )
    with pytest.raises(BadRequestError, match="vector_db_ids"):
        client.tool_runtime.rag_tool.query(content="q", vector_db_ids=[])
    with pytest.raises(NotFoundError, match="no-such-db"):
        client.tool_runtime.rag_tool.insert(
            chunk_size_in_tokens=512,
            vector_db_id="no-such-db",
            documents=[{"document_id": "d", "content": "text", "metadata": {}}],
        )
    with pytest.raises(NotFoundError, match="no-such-db"):
        client.tool_runtime.rag_tool.query(content="q", vector_db_ids=["no-such-db"])


def test_registering_twice_differently_is_a_conflict(client: LlamaStackClient) -> None:
    client.toolgroups.register(toolgroup_id="dup", provider_id="rag-runtime", args={"vector_db_ids": [DB]})
    try:
        client.toolgroups.register(
            toolgroup_id="dup", provider_id="rag-runtime", args={"vector_db_ids": [DB]}
        )
        with pytest.raises(Exception, match="already registered differently") as exc:
            client.toolgroups.register(toolgroup_id="dup", provider_id="rag-runtime", args={})
        assert getattr(exc.value, "status_code", None) == 409
        with pytest.raises(
            BadRequestError, match="provider 'elsewhere' is not a configured tool_runtime provider"
        ):
            client.toolgroups.register(toolgroup_id="dup2", provider_id="elsewhere")
        with pytest.raises(BadRequestError, match="not MCP endpoints"):
            client.toolgroups.register(
                toolgroup_id="mcp", provider_id="rag-runtime", mcp_endpoint={"uri": "http://127.0.0.1:9/sse"}
            )
    finally:
        client.toolgroups.unregister("dup")
