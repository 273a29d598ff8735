"""The Tool Runtime conformance kit.

Subclass ``ToolRuntimeConformance`` in a test module (its name must start with ``Test``), say
which tool group to register and which tool to call, and give it a server whose run config has
your provider under ``tool_runtime`` (``run_config``, or a class-scoped ``conformance_lamina``
fixture). Every test must pass::

    from lamina.testing.conformance import ToolRuntimeConformance

    class TestAcmeTools(ToolRuntimeConformance):
        tool_group = {"provider_id": "acme"}           # toolgroups.register fields besides the id
        tool_name = "acme_search"                       # a tool of that group
        tool_kwargs = {"query": "llamas"}               # valid arguments for it
        expected_text = "llama"                         # found in the answer's content
        run_config = {"version": 2, "providers": {"tool_runtime": [
            {"provider_id": "acme", "provider_type": "remote::acme-tools", "config": {...}}]}}

The kit registers tool groups of its own (ids start with ``conformance/``) and checks the contract of
``lamina.apis.tools.ToolRuntimeProvider``: a registered group's tools are listed with names,
descriptions and parameters (``/v1/tools`` and ``/v1/tool-runtime/list-tools``); invoking a tool
answers a ``ToolInvocationResult``; a missing required argument is a 400 naming ``kwargs.<name>``; an
unknown tool or group is a 404; an unregistered group's tools are gone; groups survive a restart.

A provider serving ``builtin::rag`` (the RAG tool, ``RAGToolRuntime``) sets ``supports_rag = True``
(``tool_group`` may then stay None: the group under test is its plugin's default, ``builtin::rag``)
and gives an ``embedding_model`` its run config registers (with a ``vector_io`` provider): the kit
then inserts documents through
``/v1/tool-runtime/rag-tool/insert`` and finds them with ``rag-tool/query`` and the
``knowledge_search`` tool.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import httpx
import pytest
from llama_stack_client import BadRequestError, LlamaStackClient, NotFoundError

from lamina.testing.conformance.base import ConformanceKit
from lamina.testing.processes import ServerProcess

RAG_GROUP = "builtin::rag"
RAG_TOOL = "knowledge_search"


@pytest.mark.e2e
class ToolRuntimeConformance(ConformanceKit):
    tool_group: ClassVar[dict[str, Any] | None] = None  # toolgroups.register fields besides toolgroup_id
    tool_name: ClassVar[str | None] = None  # a tool of the group; None: no generic invocation test
    tool_kwargs: ClassVar[dict[str, Any]] = {}
    expected_text: ClassVar[str | None] = None  # must appear in the invocation's content
    supports_rag: ClassVar[bool] = False
    embedding_model: ClassVar[str] = "all-MiniLM-L6-v2"
    embedding_dimension: ClassVar[int] = 384

    # -- helpers -------------------------------------------------------------------------------

    @classmethod
    def register(cls, ls: LlamaStackClient, name: str) -> str:
        if cls.tool_group is None:
            pytest.skip(f"{cls.__name__} registers no tool group of its own (tool_group is None)")
        group_id = f"conformance/{name}-{uuid.uuid4().hex[:8]}"
        ls.toolgroups.register(toolgroup_id=group_id, **cls.tool_group)
        return group_id

    @pytest.fixture(scope="class")
    @classmethod
    def group_id(cls, conformance_lamina: ServerProcess) -> str:
        """The group under test: one the kit registers, or ``builtin::rag`` for a RAG provider."""
        if cls.tool_group is None:
            if not cls.supports_rag:
                pytest.fail(f"{cls.__name__}: set tool_group, or supports_rag for a builtin::rag provider")
            return RAG_GROUP
        client = LlamaStackClient(base_url=conformance_lamina.url, max_retries=0, timeout=cls.client_timeout)
        return cls.register(client, "main")

    def _text(self, content: Any) -> str:
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(self._text(item) for item in content)
        return str(getattr(content, "text", "") or "")

    # -- tool groups and their tools -----------------------------------------------------------

    def test_a_registered_group_is_listed_with_its_tools(self, ls: LlamaStackClient, group_id: str) -> None:
        assert ls.toolgroups.get(group_id).identifier == group_id
        assert group_id in [g.identifier for g in ls.toolgroups.list()]
        tools = ls.tools.list(toolgroup_id=group_id)
        assert tools, f"tool group {group_id} lists no tools"
        for tool in tools:
            assert tool.identifier and tool.toolgroup_id == group_id and tool.description
            for param in tool.parameters:
                assert param.name and param.parameter_type and isinstance(param.required, bool)
        defs = ls.tool_runtime.list_tools(tool_group_id=group_id)
        assert sorted(d.name for d in defs) == sorted(t.identifier for t in tools)
        if self.tool_name:
            assert self.tool_name in [t.identifier for t in tools]
            assert ls.tools.get(self.tool_name).identifier == self.tool_name

    def test_invoking_a_tool_answers_a_result(self, ls: LlamaStackClient, group_id: str) -> None:
        if not self.tool_name:
            pytest.skip(f"{type(self).__name__} names no tool_name to invoke")
        result = ls.tool_runtime.invoke_tool(tool_name=self.tool_name, kwargs=self.tool_kwargs)
        assert result.error_message is None, result.error_message
        assert result.content is not None
        if self.expected_text:
            assert self.expected_text in self._text(result.content)

    def test_a_missing_required_argument_is_a_400_naming_it(
        self, ls: LlamaStackClient, group_id: str
    ) -> None:
        tools = {t.identifier: t for t in ls.tools.list(toolgroup_id=group_id)}
        required = [
            (name, p.name)
            for name, tool in tools.items()
            for p in tool.parameters
            if p.required and p.default is None
        ]
        if not required:
            pytest.skip(f"no tool of {group_id} has a required parameter")
        tool_name, param = required[0]
        with pytest.raises(BadRequestError, match=f"kwargs.{param}"):
            ls.tool_runtime.invoke_tool(tool_name=tool_name, kwargs={})

    def test_unknown_tools_and_groups_are_404s(self, ls: LlamaStackClient, group_id: str) -> None:
        with pytest.raises(NotFoundError, match="conformance/no-such-tool"):
            ls.tool_runtime.invoke_tool(tool_name="conformance/no-such-tool", kwargs={})
        with pytest.raises(NotFoundError, match="conformance/no-such-group"):
            ls.toolgroups.get("conformance/no-such-group")

    def test_unregistered_groups_are_gone_with_their_tools(
        self, ls: LlamaStackClient, conformance_lamina: ServerProcess
    ) -> None:
        group_id = self.register(ls, "gone")
        tools = [t.identifier for t in ls.tools.list(toolgroup_id=group_id)]
        response = httpx.delete(f"{conformance_lamina.url}/v1/toolgroups/{group_id}", timeout=60)
        assert response.status_code == 200, response.text
        with pytest.raises(NotFoundError):
            ls.toolgroups.get(group_id)
        assert group_id not in [g.identifier for g in ls.toolgroups.list()]
        remaining = {t.identifier: t.toolgroup_id for t in ls.tools.list()}
        assert all(remaining.get(t) != group_id for t in tools)

    def test_restart_keeps_tool_groups(self, ls: LlamaStackClient, conformance_lamina: ServerProcess) -> None:
        if self.tool_group is None:
            group_id = RAG_GROUP  # a plugin default: registered again at every start
        else:
            group_id = self.register(ls, "kept")
        self.restart_lamina(conformance_lamina)
        assert group_id in [g.identifier for g in ls.toolgroups.list()]
        assert ls.tools.list(toolgroup_id=group_id)

    # -- the RAG tool (builtin::rag) -----------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def rag_db(cls, conformance_lamina: ServerProcess) -> str:
        """A vector DB holding two documents, inserted through the RAG tool."""
        if not cls.supports_rag:
            pytest.skip(f"{cls.__name__} serves no builtin::rag (supports_rag is False)")
        client = LlamaStackClient(base_url=conformance_lamina.url, max_retries=0, timeout=cls.client_timeout)
        db = f"conformance/rag-{uuid.uuid4().hex[:8]}"
        client.vector_dbs.register(
            vector_db_id=db, embedding_model=cls.embedding_model, embedding_dimension=cls.embedding_dimension
        )
        client.tool_runtime.rag_tool.insert(
            documents=[
                {
                    "document_id": "otters",
                    "content": "Sea otters hold hands while they sleep so that they do not drift apart.",
                    "mime_type": "text/plain",
                    "metadata": {},
                },
                {
                    "document_id": "bakery",
                    "content": "The bakery in Lyon sold twelve hundred sourdough loaves in March.",
                    "mime_type": "text/plain",
                    "metadata": {},
                },
            ],
            vector_db_id=db,
            chunk_size_in_tokens=64,
        )
        return db

    def test_rag_query_finds_inserted_documents(self, ls: LlamaStackClient, rag_db: str) -> None:
        result = ls.tool_runtime.rag_tool.query(
            content="How do otters sleep?", vector_db_ids=[rag_db], query_config={"max_chunks": 1}
        )
        assert "hold hands" in self._text(result.content)
        assert "sourdough" not in self._text(result.content)

    def test_knowledge_search_finds_inserted_documents(self, ls: LlamaStackClient, rag_db: str) -> None:
        result = ls.tool_runtime.invoke_tool(
            tool_name=RAG_TOOL,
            kwargs={
                "query": "bread sold in Lyon",
                "vector_db_ids": [rag_db],
                "query_config": {"max_chunks": 1},
            },
        )
        assert result.error_message is None, result.error_message
        assert "sourdough" in self._text(result.content)

    def test_rag_insert_into_an_unknown_vector_db_is_a_404(self, ls: LlamaStackClient, rag_db: str) -> None:
        with pytest.raises(NotFoundError, match="conformance/no-such-db"):
            ls.tool_runtime.rag_tool.insert(
                documents=[{"document_id": "x", "content": "x", "metadata": {}}],
                vector_db_id="conformance/no-such-db",
                chunk_size_in_tokens=64,
            )
